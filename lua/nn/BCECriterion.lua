-- nn.BCECriterion([weights, sizeAverage=true]): binary cross-entropy of probabilities x
-- against targets y in [0, 1]: -sum w (y log x + (1 - y) log(1 - x)).
local nd = require('nd')

local BCE, parent = nd.class('nn.BCECriterion', 'nn.Criterion')

function BCE:__init(weights, sizeAverage)
  parent.__init(self)
  self.weights = weights
  if sizeAverage ~= nil then self.sizeAverage = sizeAverage end
end

function BCE:updateOutput(input, target)
  local ok, loss = pcall(nd.core.bce_forward, input, target, self.weights or false, self.sizeAverage)
  if not ok then error(nd.typename(self) .. ': ' .. tostring(loss), 0) end
  self.output = loss
  return loss
end

function BCE:updateGradInput(input, target)
  self.gradInput = nd.core.bce_backward(nil, input, target, self.weights or false, self.sizeAverage)
  return self.gradInput
end

return BCE
