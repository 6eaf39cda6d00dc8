-- nn.SpatialAdaptiveAveragePooling(oW, oH): average pooling to a fixed oH x oW output.
local nd = require('nd')
local util = require('nn.util')

local Pool, parent = nd.class('nn.SpatialAdaptiveAveragePooling', 'nn.Module')

function Pool:__init(oW, oH)
  parent.__init(self)
  self.oW, self.oH = oW, oH or oW
end

function Pool:updateOutput(input)
  util.check_dims(self, input, {3, 4})
  self.output = nd.core.adaptive_avgpool2d_forward(nil, input, self.oW, self.oH)
  return self.output
end

function Pool:updateGradInput(input, gradOutput)
  self.gradInput = nd.core.adaptive_avgpool2d_backward(nil, input, gradOutput)
  return self.gradInput
end

function Pool:__tostring__() return string.format('nn.SpatialAdaptiveAveragePooling(%dx%d)', self.oW, self.oH) end

return Pool
