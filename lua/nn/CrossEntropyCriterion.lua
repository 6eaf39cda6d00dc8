-- nn.CrossEntropyCriterion([weights, sizeAverage=true]): LogSoftMax followed by ClassNLL on
-- raw scores N x C (or C); targets 1-based.
local nd = require('nd')
local LogSoftMax = require('nn.LogSoftMax')
local ClassNLLCriterion = require('nn.ClassNLLCriterion')

local CE, parent = nd.class('nn.CrossEntropyCriterion', 'nn.Criterion')

function CE:__init(weights, sizeAverage)
  parent.__init(self)
  if sizeAverage ~= nil then self.sizeAverage = sizeAverage end
  self.lsm = LogSoftMax()
  self.nll = ClassNLLCriterion(weights, self.sizeAverage)
end

function CE:updateOutput(input, target)
  self.nll.sizeAverage = self.sizeAverage
  self.lsm:updateOutput(input)
  self.output = self.nll:updateOutput(self.lsm.output, target)
  return self.output
end

function CE:updateGradInput(input, target)
  self.nll:updateGradInput(self.lsm.output, target)
  self.gradInput = self.lsm:updateGradInput(input, self.nll.gradInput)
  return self.gradInput
end

function CE:type(t)
  self.lsm:type(t)
  self.nll:type(t)
  return parent.type(self, t)
end

return CE
