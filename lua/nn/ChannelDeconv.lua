-- nn.ChannelDeconv(block, opt): channel-only whitening, no weights (the reference's
-- ChannelDeconv, docs/reference-spec.md section 4). The first floor(C/B)*B channels are
-- whitened in B-vectors of strided channels sharing one B x B matrix; the leftover channels
-- get a scalar standardisation. Input N x C x H x W or N x C.
-- opt: eps=1e-2 (the reference's default; its main.py passes 1e-5), iters=5, momentum=0.1,
--      samplingStride=3.
-- Quirk kept from the reference (HEAD): the matrix is the UNCENTRED second moment of the
-- sampled columns while the data it multiplies is centred. The first training batch copies its
-- statistics into the running buffers; later batches blend them by momentum.
-- Device-neutral: the whitening runs where the input and the buffers are (model:cuda() moves
-- runningMean1 / runningDeconv; runningMean2 / runningVar are host numbers, as the reference's
-- scalars). On a GPU, a training forward on an input WITH leftover channels reads its two scalar
-- statistics back to the host (one stream synchronisation); without leftovers nothing waits.
local nd = require('nd')
local util = require('nn.util')
local Deconv = require('nn.Deconv')

local ChannelDeconv, parent = nd.class('nn.ChannelDeconv', 'nn.Module')

function ChannelDeconv:__init(block, opt)
  parent.__init(self)
  opt = opt or {}
  if math.type(block) ~= 'integer' or block < 1 then error('nn.ChannelDeconv: block must be a positive integer', 2) end
  self.block = block
  self.eps = opt.eps or 1e-2
  self.iters = opt.iters or 5
  self.momentum = opt.momentum or 0.1
  self.samplingStride = opt.samplingStride or 3
  self.runningMean1 = nd.zeros(block)
  self.runningDeconv = nd.eye(block)
  self.runningMean2 = 0
  self.runningVar = 1
  self.numBatchesTracked = 0
  self._stateFields = {'_saved', '_savedDevice'}
end

function ChannelDeconv:updateOutput(input)
  util.check_dims(self, input, {2, 4})
  local C = input:size(2)
  if C < self.block then
    util.fail(self, 'input has %d channels, fewer than the block of %d (input %s)', C, self.block, nd.shape(input))
  end
  local core = nd.core
  if self.train then
    local y, mean1, D, mean2, var2, saved = core.channel_deconv_forward(input, self.block, self.eps, self.iters, self.samplingStride)
    self._saved, self._savedDevice = saved, Deconv.devname(input)
    local m = self.numBatchesTracked == 0 and 1 or self.momentum
    self.runningMean1:mul(1 - m):add(m, mean1)
    self.runningDeconv:mul(1 - m):add(m, D)
    self.runningMean2 = (1 - m) * self.runningMean2 + m * mean2
    self.runningVar = (1 - m) * self.runningVar + m * var2
    self.numBatchesTracked = self.numBatchesTracked + 1
    self.output = y
  else
    self._saved = nil
    self.output = core.channel_deconv_apply(input, self.runningMean1, self.runningDeconv, self.runningMean2,
                                            self.runningVar, self.eps)
  end
  return self.output
end

function ChannelDeconv:updateGradInput(input, gradOutput)
  if not self._saved then
    util.fail(self, 'backward needs a training-mode forward first (the evaluation path has no backward)')
  end
  Deconv.checkSavedDevice(self, gradOutput)
  self.gradInput = nd.core.channel_deconv_backward(gradOutput, self._saved)
  return self.gradInput
end

function ChannelDeconv:__tostring__()
  return string.format('nn.ChannelDeconv(block %d, eps %g, %d iters)', self.block, self.eps, self.iters)
end

return ChannelDeconv
