-- nn.MSECriterion([sizeAverage=true]): sum (x - y)^2, divided by the element count when
-- sizeAverage.
local nd = require('nd')

local MSE, parent = nd.class('nn.MSECriterion', 'nn.Criterion')

function MSE:__init(sizeAverage)
  parent.__init(self)
  if sizeAverage ~= nil then self.sizeAverage = sizeAverage end
end

function MSE:updateOutput(input, target)
  local ok, loss = pcall(nd.core.mse_forward, input, target, self.sizeAverage)
  if not ok then error(nd.typename(self) .. ': ' .. tostring(loss), 0) end
  self.output = loss
  return loss
end

function MSE:updateGradInput(input, target)
  self.gradInput = nd.core.mse_backward(nil, input, target, self.sizeAverage)
  return self.gradInput
end

return MSE
