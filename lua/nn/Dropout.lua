-- nn.Dropout(p=0.5): in training, zeroes each element with probability p and scales the rest
-- by 1/(1-p) (inverted dropout); identity in evaluation.
local nd = require('nd')
local util = require('nn.util')

local Dropout, parent = nd.class('nn.Dropout', 'nn.Module')

function Dropout:__init(p)
  parent.__init(self)
  self.p = p or 0.5
  if self.p < 0 or self.p >= 1 then error('nn.Dropout: p must be in [0, 1), got ' .. tostring(self.p), 2) end
  self._stateFields = {'noise'}
end

function Dropout:updateOutput(input)
  if self.train and self.p > 0 then
    -- the mask lives on the input's device (GPU inputs: the GPU generator, nd.cuda.manualSeed)
    self.noise = util.new_like(input):bernoulli(1 - self.p):div(1 - self.p)
    self.output = nd.cmul(input, self.noise)
  else
    self.output = input
  end
  return self.output
end

function Dropout:updateGradInput(input, gradOutput)
  if self.train and self.p > 0 then
    self.gradInput = nd.cmul(gradOutput, self.noise)
  else
    self.gradInput = gradOutput
  end
  return self.gradInput
end

function Dropout:__tostring__() return string.format('nn.Dropout(%g)', self.p) end

return Dropout
