-- nn.Sequential: feeds each module's output to the next.
local nd = require('nd')

local Sequential, parent = nd.class('nn.Sequential', 'nn.Container')

function Sequential:updateOutput(input)
  local current = input
  for i = 1, #self.modules do current = self:rethrow(i, 'updateOutput', current) end
  self.output = current
  return current
end

function Sequential:updateGradInput(input, gradOutput)
  local g = gradOutput
  for i = #self.modules, 2, -1 do
    g = self:rethrow(i, 'updateGradInput', self.modules[i - 1].output, g)
  end
  self.gradInput = self:rethrow(1, 'updateGradInput', input, g)
  return self.gradInput
end

function Sequential:accGradParameters(input, gradOutput, scale)
  scale = scale or 1
  local g = gradOutput
  for i = #self.modules, 2, -1 do
    self:rethrow(i, 'accGradParameters', self.modules[i - 1].output, g, scale)
    g = self.modules[i].gradInput
  end
  self:rethrow(1, 'accGradParameters', input, g, scale)
end

function Sequential:backward(input, gradOutput, scale)
  scale = scale or 1
  local g = gradOutput
  for i = #self.modules, 2, -1 do
    g = self:rethrow(i, 'backward', self.modules[i - 1].output, g, scale)
  end
  self.gradInput = self:rethrow(1, 'backward', input, g, scale)
  return self.gradInput
end

function Sequential:insert(module, index)
  table.insert(self.modules, index or #self.modules + 1, module)
  self._flat = nil
  return self
end

function Sequential:remove(index)
  local m = table.remove(self.modules, index or #self.modules)
  self._flat = nil
  return m
end

return Sequential
