-- nn.BatchNormalization(nFeature [, eps=1e-5, momentum=0.1, affine=true]) over N x C inputs;
-- nn.SpatialBatchNormalization (N x C x H x W) shares the code. Training uses batch statistics
-- (biased variance) and updates the running mean/var (unbiased variance, PyTorch momentum);
-- evaluation uses the running statistics. weight init 1, bias 0.
local nd = require('nd')
local util = require('nn.util')

local BN, parent = nd.class('nn.BatchNormalization', 'nn.Module')
BN.nDim = 2

function BN:__init(nFeature, eps, momentum, affine)
  parent.__init(self)
  if math.type(nFeature) ~= 'integer' or nFeature < 1 then
    error(nd.typename(self) .. ': expected a positive number of features, got ' .. tostring(nFeature), 2)
  end
  self.nFeature = nFeature
  self.eps = eps or 1e-5
  self.momentum = momentum or 0.1
  self.affine = affine ~= false
  if self.affine then
    self.weight = nd.ones(nFeature)
    self.bias = nd.zeros(nFeature)
    self.gradWeight = nd.zeros(nFeature)
    self.gradBias = nd.zeros(nFeature)
  end
  self.running_mean = nd.zeros(nFeature)
  self.running_var = nd.ones(nFeature)
  self._stateFields = {'save_mean', 'save_std'}
end

function BN:reset()
  if self.weight then self.weight:fill(1); self.bias:zero() end
  self.running_mean:zero()
  self.running_var:fill(1)
  return self
end

local function check(self, input)
  util.check_dims(self, input, {self.nDim})
  if input:size(2) ~= self.nFeature then
    util.fail(self, 'expected input of %d %s, got %d (input %s)', self.nFeature,
      self.nDim == 4 and 'planes' or 'features', input:size(2), nd.shape(input))
  end
end

function BN:updateOutput(input)
  check(self, input)
  local core = nd.core
  if self.train then
    self.output, self.save_mean, self.save_std = core.batchnorm_forward_train(self.output, self.save_mean, self.save_std, input,
      self.weight or false, self.bias or false, self.running_mean, self.running_var, self.momentum, self.eps)
  else
    self.output = core.batchnorm_forward_eval(self.output, input, self.weight or false, self.bias or false,
      self.running_mean, self.running_var, self.eps)
  end
  return self.output
end

local function backward(self, input, gradOutput, scale, wantInput, wantParams)
  local gi_out = self.gradInput -- reused when it fits; false: skip it
  if not wantInput then gi_out = false end
  local gi = nd.core.batchnorm_backward(gi_out,
    wantParams and self.gradWeight or false, wantParams and self.gradBias or false,
    input, gradOutput, self.weight or false, self.save_mean or false, self.save_std or false,
    self.running_mean, self.running_var, self.train, scale or 1, self.eps)
  if wantInput then self.gradInput = gi end
  return self.gradInput
end

function BN:updateGradInput(input, gradOutput) return backward(self, input, gradOutput, 1, true, false) end
function BN:accGradParameters(input, gradOutput, scale)
  if self.affine then backward(self, input, gradOutput, scale, false, true) end
end
function BN:backward(input, gradOutput, scale)
  return parent.guard(self, backward, self, input, gradOutput, scale, true, self.affine)
end

function BN:__tostring__()
  return string.format('%s(%d, eps %g, momentum %g%s)', nd.typename(self), self.nFeature, self.eps, self.momentum,
    self.affine and '' or ', no affine')
end

return BN
