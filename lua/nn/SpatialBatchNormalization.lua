-- nn.SpatialBatchNormalization(nPlanes [, eps, momentum, affine]): batch norm of N x C x H x W
-- inputs, statistics per plane over N, H and W (see nn.BatchNormalization).
local nd = require('nd')
require('nn.BatchNormalization')

local SBN = nd.class('nn.SpatialBatchNormalization', 'nn.BatchNormalization')
SBN.nDim = 4

return SBN
