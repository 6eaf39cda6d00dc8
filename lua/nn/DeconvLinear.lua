-- nn.DeconvLinear(nIn, nOut, opt): a fully connected layer whose input is decorrelated by
-- network deconvolution (the reference's Delinear, docs/reference-spec.md section 5).
-- Each input row is cut into nIn/B contiguous blocks of B features; all blocks share one
-- B x B covariance; D = Newton-Schulz C^{-1/2} is folded into the weight.
-- opt: block=512, iters=5, eps=1e-5, momentum=0.1, bias=true.
-- Device-neutral like nn.Deconv: everything runs where the module's tensors are.
local nd = require('nd')
local util = require('nn.util')
local Deconv = require('nn.Deconv')

local DeconvLinear, parent = nd.class('nn.DeconvLinear', 'nn.Module')

function DeconvLinear:__init(nIn, nOut, opt)
  parent.__init(self)
  opt = opt or {}
  if type(opt) == 'boolean' then opt = {bias = opt} end
  local n1, n2 = Deconv.positiveInt(nIn), Deconv.positiveInt(nOut)
  if not (n1 and n2) then
    error(string.format('nn.DeconvLinear: expected positive integer sizes, got %s, %s', tostring(nIn), tostring(nOut)), 2)
  end
  nIn, nOut = n1, n2
  local block = Deconv.positiveInt(opt.block or 512)
  if not block then
    error(string.format('nn.DeconvLinear: opt.block must be a positive integer, got %s', tostring(opt.block)), 2)
  end
  self.nIn, self.nOut = nIn, nOut
  self.block = Deconv.blockSize(nIn, block, 1)
  self.iters = opt.iters or 5
  self.eps = opt.eps or 1e-5
  self.momentum = opt.momentum or 0.1
  self.weight = nd.Tensor(nOut, nIn)
  self.gradWeight = nd.zeros(nOut, nIn)
  if opt.bias ~= false then
    self.bias = nd.Tensor(nOut)
    self.gradBias = nd.zeros(nOut)
  end
  self.runningMean = nd.zeros(self.block)
  self.runningDeconv = nd.eye(self.block)
  self._stateFields = {'_saved', '_savedDevice', '_Wf', '_D', '_mu', '_GW', '_Gb0', '_x'}
  self:reset()
end

function DeconvLinear:reset(stdv)
  stdv = stdv or 1 / math.sqrt(self.nIn)
  self.weight:uniform(-stdv, stdv)
  if self.bias then self.bias:uniform(-stdv, stdv) end
  return self
end

function DeconvLinear:updateOutput(input)
  util.check_dims(self, input, {2})
  if input:size(2) ~= self.nIn then
    util.fail(self, 'expected input with %d features, got %d (input %s)', self.nIn, input:size(2), nd.shape(input))
  end
  local core = nd.core
  local x = input:contiguous()
  self._x = x
  local mu, D
  if self.train then
    local X = x:view(-1, self.block)
    local saved
    mu, D, saved = core.deconv_stats_forward(X, 1, self.eps, self.iters)
    self._saved, self._savedDevice = saved, Deconv.devname(x)
    local m = self.momentum
    self.runningMean:mul(1 - m):add(m, mu)
    self.runningDeconv:mul(1 - m):add(m, D)
  else
    mu, D = self.runningMean, self.runningDeconv
    self._saved = nil
  end
  local Wf, b = core.deconv_fold_forward(self.weight, self.bias, D, mu, 1, 'contiguous')
  self._Wf, self._D, self._mu = Wf, D, mu
  self.output = nd.mm(x, Wf:t())
  self.output:add(b:view(1, -1):expandAs(self.output))
  return self.output
end

function DeconvLinear:updateGradInput(input, gradOutput)
  local core = nd.core
  local x = self._x or input:contiguous()
  Deconv.checkSavedDevice(self, x)
  local gx = nd.mm(gradOutput, self._Wf)
  local GWf = nd.mm(gradOutput:t(), x)
  local Gb = gradOutput:sum(1):view(-1)
  local GW, Gb0, GD, Gmu = core.deconv_fold_backward(GWf, Gb, self.weight, self._D, self._mu, 1, 'contiguous')
  self._GW, self._Gb0 = GW, Gb0
  if self._saved then
    local GX = core.deconv_stats_backward(GD, Gmu, self._saved)
    gx:add(GX:view(gx:size()))
  end
  self.gradInput = gx
  return gx
end

function DeconvLinear:accGradParameters(input, gradOutput, scale)
  util.acc_folded_grads(self, input, gradOutput, scale)
end

function DeconvLinear:folded()
  return nd.core.deconv_fold_forward(self.weight, self.bias, self.runningDeconv, self.runningMean, 1, 'contiguous')
end

function DeconvLinear:__tostring__()
  return string.format('nn.DeconvLinear(%d -> %d, block %d, %d iters)', self.nIn, self.nOut, self.block, self.iters)
end

return DeconvLinear
