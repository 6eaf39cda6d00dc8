-- nn.Deconv(nIn, nOut, kW, kH, dW, dH, padW, padH, opt): a convolution whose input is whitened
-- by network deconvolution (the reference's FastDeconv, docs/reference-spec.md section 2).
-- NOT a transposed convolution: "deconvolution" here means removing pixel-wise and
-- channel-wise correlation.
--
-- Training: sampled patches X (M x F, F = k*k*B) -> mean mu, covariance C + eps I ->
-- D = Newton-Schulz C^{-1/2} (iters steps) -> weights and bias folded (Wf = W D per block,
-- b = b0 - sum W D mu) -> an ordinary convolution of the full input with Wf, b.
-- Evaluation (and frozen training steps) use the running buffers instead.
-- opt: block=64, samplingStride=3, iters=5, eps=1e-5, momentum=0.1, freeze=false,
--      freezeIter=100, groups=1, dilation=1, bias=true.
-- Weight nOut x nIn/groups x kH x kW, bias nOut; buffers runningMean (F, or k*k*nIn when
-- groups > 1), runningDeconv (F x F, or groups x F x F).
-- Device-neutral: every tensor of a call lives on the module's device (model:cuda() moves the
-- weights and buffers; the kernels run where their tensors are, nothing is copied to the host
-- per step). The statistics saved by a training forward are only valid on that device: a
-- backward on another device (a conversion in between) is an error.
local nd = require('nd')
local util = require('nn.util')
local conv = require('nn.conv_ops')

local Deconv, parent = nd.class('nn.Deconv', 'nn.Module')

-- 'cpu' or 'cuda:N': where tensor t lives.
local function devname(t)
  local d, i = nd.core.device(t)
  return d == 'cuda' and ('cuda:' .. i) or 'cpu'
end
Deconv.devname = devname

-- Fails unless the statistics saved by the training forward live where the backward runs.
function Deconv.checkSavedDevice(self, t)
  if self._saved and self._savedDevice ~= devname(t) then
    util.fail(self, 'backward on %s after a training forward on %s (the module was converted in between): run forward again',
      devname(t), tostring(self._savedDevice))
  end
end

local function gcd(a, b) while b ~= 0 do a, b = b, a % b end return a end

-- The reference's block-size rule: block, capped at nIn, shrunk to gcd(block, nIn) when it does
-- not divide nIn; a grouped convolution uses one block per group.
-- v as an integer when it is a number with an integral value >= 1 (32.0 from nIn / 2 included),
-- else nil.
function Deconv.positiveInt(v)
  local i = type(v) == 'number' and math.tointeger(v) or nil
  return i and i >= 1 and i or nil
end

function Deconv.blockSize(nIn, block, groups)
  local B = block
  if B > nIn then B = nIn elseif nIn % B ~= 0 then B = gcd(B, nIn) end
  if groups > 1 then B = nIn // groups end
  return B
end

function Deconv:__init(nIn, nOut, kW, kH, dW, dH, padW, padH, opt)
  parent.__init(self)
  if type(kH) == 'table' then opt, kH = kH, nil end
  opt = opt or {}
  kH = kH or kW
  dW = dW or 1; dH = dH or dW
  padW = padW or 0; padH = padH or padW
  if kW ~= kH or dW ~= dH or padW ~= padH then
    error(string.format('nn.Deconv: square kernels, strides and paddings only (got %dx%d, stride %dx%d, pad %dx%d)',
      kW, kH, dW, dH, padW, padH), 2)
  end
  local n1, n2, k1, d1 = Deconv.positiveInt(nIn), Deconv.positiveInt(nOut), Deconv.positiveInt(kW), Deconv.positiveInt(dW)
  if not (n1 and n2 and k1 and d1) then
    error(string.format('nn.Deconv: expected positive integer nInputPlane, nOutputPlane, kW and dW, got %s, %s, %s, %s',
      tostring(nIn), tostring(nOut), tostring(kW), tostring(dW)), 2)
  end
  nIn, nOut, kW, kH, dW, dH = n1, n2, k1, k1, d1, d1
  local groups = Deconv.positiveInt(opt.groups or 1)
  if not groups then
    error(string.format('nn.Deconv: groups must be a positive integer, got %s', tostring(opt.groups)), 2)
  end
  if nIn % groups ~= 0 or nOut % groups ~= 0 then
    error(string.format('nn.Deconv: %d input and %d output planes do not split into %d groups', nIn, nOut, groups), 2)
  end
  self.nInputPlane, self.nOutputPlane = nIn, nOut
  self.kW, self.kH, self.dW, self.dH, self.padW, self.padH = kW, kH, dW, dH, padW, padH
  self.groups = groups
  self.dilation = opt.dilation or 1
  local block = Deconv.positiveInt(opt.block or 64)
  if not block then
    error(string.format('nn.Deconv: opt.block must be a positive integer, got %s', tostring(opt.block)), 2)
  end
  self.block = Deconv.blockSize(nIn, block, groups)
  self.samplingStride = opt.samplingStride or 3
  self.iters = opt.iters or 5
  self.eps = opt.eps or 1e-5
  self.momentum = opt.momentum or 0.1
  self.freeze = opt.freeze or false
  self.freezeIter = opt.freezeIter or 100
  self.counter = 0 -- training forwards seen (the freeze cycle); reset on load

  local F = kW * kW * self.block
  self.weight = nd.Tensor(nOut, nIn // groups, kH, kW)
  self.gradWeight = nd.zeros(nOut, nIn // groups, kH, kW)
  if opt.bias ~= false then
    self.bias = nd.Tensor(nOut)
    self.gradBias = nd.zeros(nOut)
  end
  if groups == 1 then
    self.runningMean = nd.zeros(F)
    self.runningDeconv = nd.eye(F)
  else
    self.runningMean = nd.zeros(kW * kW * nIn)
    self.runningDeconv = nd.eye(F):view(1, F, F):expand(groups, F, F):clone()
  end
  self._stateFields = {'_saved', '_savedDevice', '_Wf', '_bf', '_D', '_mu', '_GW', '_Gb0', '_evalKey'}
  self:reset()
end

-- Framework default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = nIn/groups * k * k.
function Deconv:reset(stdv)
  stdv = stdv or 1 / math.sqrt(self.nInputPlane // self.groups * self.kW * self.kH)
  self.weight:uniform(-stdv, stdv)
  if self.bias then self.bias:uniform(-stdv, stdv) end
  return self
end

function Deconv:read() self.counter = 0 end

function Deconv:params()
  return {kW = self.kW, kH = self.kH, dW = self.dW, dH = self.dH, padW = self.padW, padH = self.padH,
          dilW = self.dilation, dilH = self.dilation, groups = self.groups}
end

local function check(self, input) return util.check_conv_input(self, input, self:params()) end

-- The statistics (mu, D) this call uses; fresh batch statistics in training unless frozen.
function Deconv:statistics(input)
  local frozen = self.freeze and self.counter > self.freezeIter
  if self.train then self.counter = (self.counter + 1) % (10 * self.freezeIter) end
  if not self.train or frozen then
    self._saved = nil
    return self.runningMean, self.runningDeconv
  end
  local core = nd.core
  local s = self.samplingStride * self.dW
  local X = core.deconv_im2col(input, self.kW, self.padW, self.dilation, s, self.block, self.groups)
  local mu, D, saved = core.deconv_stats_forward(X, self.groups, self.eps, self.iters)
  self._saved, self._savedDevice = saved, devname(input)
  local m = self.momentum
  self.runningMean:mul(1 - m):add(m, mu)
  self.runningDeconv:mul(1 - m):add(m, D)
  return mu, D
end

-- In evaluation the folded weights depend only on the parameters and the running buffers: they
-- are folded once and reused while those tensors keep their identity and this module stays in
-- evaluation (training() or a training forward drops the cache; so does refold()).
function Deconv:foldedForEval()
  local key = table.concat({tostring((nd.core.storageid(self.weight))), tostring(self.bias and nd.core.storageid(self.bias)),
                            tostring((nd.core.storageid(self.runningDeconv))), tostring((nd.core.storageid(self.runningMean)))}, ':')
  if self._evalKey ~= key or not self._Wf then
    self._Wf, self._bf = self:folded()
    self._evalKey = key
  end
  return self._Wf, self._bf
end

function Deconv:refold() self._evalKey = nil; return self end

function Deconv:training()
  self._evalKey = nil
  return parent.training(self)
end

function Deconv:updateOutput(input)
  local d = check(self, input)
  local x = d == 3 and input:view(1, table.unpack(input:size():totable())) or input
  local mu, D = self:statistics(x)
  local Wf, b
  if self.train then
    self._evalKey = nil
    Wf, b = nd.core.deconv_fold_forward(self.weight, self.bias, D, mu, self.groups, 'strided')
  else
    Wf, b = self:foldedForEval()
  end
  self._Wf, self._bf, self._D, self._mu = Wf, b, D, mu
  local out = conv.forward(x, Wf, b, self:params())
  self.output = d == 3 and out:select(1, 1) or out
  return self.output
end

-- Input gradient through the convolution and (when the batch statistics were used) through
-- the folding, Newton-Schulz, the covariance, the mean and the sampled im2col. The weight and
-- bias gradients fall out of the same chain: kept for accGradParameters.
function Deconv:updateGradInput(input, gradOutput)
  local core = nd.core
  local batched = input:dim() == 4
  local x = batched and input or input:view(1, table.unpack(input:size():totable()))
  local go = batched and gradOutput or gradOutput:view(1, table.unpack(gradOutput:size():totable()))
  Deconv.checkSavedDevice(self, x)
  -- the convolution's gradients (on the module's device); no input gradient when it is skipped
  local want = not self.skipGradInput
  local gx, GWf, Gb = conv.backward(x, go, self._Wf, self:params(), want, true)
  local GW, Gb0, GD, Gmu = core.deconv_fold_backward(GWf, Gb, self.weight, self._D, self._mu, self.groups, 'strided')
  self._GW, self._Gb0 = GW, Gb0
  if not want then return self.gradInput end -- and no statistics backward
  if self._saved then
    local GX = core.deconv_stats_backward(GD, Gmu, self._saved)
    core.deconv_col2im(gx, GX, self.kW, self.padW, self.dilation, self.samplingStride * self.dW, self.block, self.groups)
  end
  self.gradInput = batched and gx or gx:select(1, 1)
  return self.gradInput
end

function Deconv:accGradParameters(input, gradOutput, scale)
  util.acc_folded_grads(self, input, gradOutput, scale)
end

-- The folded weight and bias from the running buffers (inference: a plain convolution).
function Deconv:folded()
  return nd.core.deconv_fold_forward(self.weight, self.bias, self.runningDeconv, self.runningMean, self.groups, 'strided')
end

function Deconv:__tostring__()
  local s = string.format('nn.Deconv(%d -> %d, %dx%d', self.nInputPlane, self.nOutputPlane, self.kW, self.kH)
  if self.dW ~= 1 then s = s .. ', stride ' .. self.dW end
  if self.padW ~= 0 then s = s .. ', pad ' .. self.padW end
  if self.groups ~= 1 then s = s .. ', groups ' .. self.groups end
  s = s .. string.format(', block %d, sampling %d, %d iters', self.block, self.samplingStride, self.iters)
  if self.freeze then s = s .. ', freeze' end
  return s .. ')'
end

return Deconv
