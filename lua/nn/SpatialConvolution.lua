-- nn.SpatialConvolution(nIn, nOut, kW, kH [, dW=1, dH=1, padW=0, padH=0] [, opt]):
-- 2-d convolution (cross-correlation) of N x nIn x H x W (or nIn x H x W) inputs.
-- opt: bias=true, groups=1, dilation=1. Weight nOut x nIn/groups x kH x kW, bias nOut;
-- default init U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = nIn/groups * kW * kH.
-- im2col over the whole batch (chunked) and one GEMM per chunk and group.
local nd = require('nd')
local util = require('nn.util')
local conv = require('nn.conv_ops')

local SpatialConvolution, parent = nd.class('nn.SpatialConvolution', 'nn.Module')

function SpatialConvolution:__init(nIn, nOut, kW, kH, dW, dH, padW, padH, opt)
  parent.__init(self)
  if type(dW) == 'table' then opt, dW = dW, nil end
  if type(padW) == 'table' then opt, padW = padW, nil end
  opt = opt or {}
  kH = kH or kW
  self.nInputPlane, self.nOutputPlane = nIn, nOut
  self.kW, self.kH = kW, kH
  self.dW, self.dH = dW or 1, dH or dW or 1
  self.padW, self.padH = padW or 0, padH or padW or 0
  self.groups = opt.groups or 1
  self.dilW = opt.dilation or opt.dilW or 1
  self.dilH = opt.dilation or opt.dilH or 1
  if nIn % self.groups ~= 0 or nOut % self.groups ~= 0 then
    error(string.format('nn.SpatialConvolution: %d input and %d output planes do not split into %d groups', nIn, nOut, self.groups), 2)
  end
  self.weight = nd.Tensor(nOut, nIn // self.groups, kH, kW)
  self.gradWeight = nd.zeros(nOut, nIn // self.groups, kH, kW)
  if opt.bias ~= false then
    self.bias = nd.Tensor(nOut)
    self.gradBias = nd.zeros(nOut)
  end
  self:reset()
end

function SpatialConvolution:reset(stdv)
  stdv = stdv or 1 / math.sqrt(self.nInputPlane // self.groups * self.kW * self.kH)
  self.weight:uniform(-stdv, stdv)
  if self.bias then self.bias:uniform(-stdv, stdv) end
  return self
end

function SpatialConvolution:noBias()
  self.bias, self.gradBias = nil, nil
  return self
end

function SpatialConvolution:params()
  return {kW = self.kW, kH = self.kH, dW = self.dW, dH = self.dH, padW = self.padW, padH = self.padH,
          dilW = self.dilW, dilH = self.dilH, groups = self.groups}
end

local function check(self, input) return util.check_conv_input(self, input, self:params()) end

function SpatialConvolution:updateOutput(input)
  check(self, input)
  self.output = conv.forward(input, self.weight, self.bias, self:params(), self.output)
  return self.output
end

function SpatialConvolution:updateGradInput(input, gradOutput)
  if self.skipGradInput then return self.gradInput end
  local p = self:params()
  self.gradInput = nd.core.conv2d_backward_input(self.gradInput, input, gradOutput, self.weight, p.kW, p.kH, p.dW, p.dH,
                                                 p.padW, p.padH, p.dilW, p.dilH, p.groups)
  return self.gradInput
end

function SpatialConvolution:accGradParameters(input, gradOutput, scale)
  local p = self:params()
  nd.core.conv2d_backward_params(self.gradWeight, self.gradBias or false, input, gradOutput, scale or 1,
                                 p.kW, p.kH, p.dW, p.dH, p.padW, p.padH, p.dilW, p.dilH, p.groups)
end

-- Both at once (one rearrangement of gradOutput).
local function backward(self, input, gradOutput, scale)
  if self.skipGradInput then
    self:accGradParameters(input, gradOutput, scale)
    return self.gradInput
  end
  local p = self:params()
  self.gradInput = nd.core.conv2d_backward(self.gradInput, self.gradWeight, self.gradBias or false, input, gradOutput,
                                           self.weight, scale or 1, p.kW, p.kH, p.dW, p.dH, p.padW, p.padH,
                                           p.dilW, p.dilH, p.groups)
  return self.gradInput
end
function SpatialConvolution:backward(input, gradOutput, scale)
  return parent.guard(self, backward, self, input, gradOutput, scale)
end

function SpatialConvolution:__tostring__()
  local s = string.format('nn.SpatialConvolution(%d -> %d, %dx%d', self.nInputPlane, self.nOutputPlane, self.kW, self.kH)
  if self.dW ~= 1 or self.dH ~= 1 then s = s .. string.format(', %d,%d', self.dW, self.dH) end
  if self.padW ~= 0 or self.padH ~= 0 then s = s .. string.format(', %d,%d', self.padW, self.padH) end
  if self.groups ~= 1 then s = s .. ', groups ' .. self.groups end
  if not self.bias then s = s .. ', no bias' end
  return s .. ')'
end

return SpatialConvolution
