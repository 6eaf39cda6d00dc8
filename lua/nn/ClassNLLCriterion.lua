-- nn.ClassNLLCriterion([weights, sizeAverage=true]): input N x C (or C) log-probabilities,
-- target 1-based class indices (int64 or integral floats, N or a number).
local nd = require('nd')

local NLL, parent = nd.class('nn.ClassNLLCriterion', 'nn.Criterion')

function NLL:__init(weights, sizeAverage)
  parent.__init(self)
  self.weights = weights
  if sizeAverage ~= nil then self.sizeAverage = sizeAverage end
  self.ignoreIndex = -100
end

local function target_of(target)
  if type(target) == 'number' then return nd.LongTensor({target}) end
  return target
end

function NLL:updateOutput(input, target)
  local ok, loss, total = pcall(nd.core.nll_forward, input, target_of(target), self.weights or false,
                                self.sizeAverage, self.ignoreIndex)
  if not ok then error(nd.typename(self) .. ': ' .. tostring(loss), 0) end
  self.output, self.totalWeight = loss, total
  return loss
end

function NLL:updateGradInput(input, target)
  self.gradInput = nd.core.nll_backward(nil, input, target_of(target), self.weights or false, self.totalWeight,
                                        self.sizeAverage, self.ignoreIndex)
  return self.gradInput
end

return NLL
