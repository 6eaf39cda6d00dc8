-- nn.ConcatTable: applies every module to the same input; the output is the table of outputs.
local nd = require('nd')
local util = require('nn.util')

local ConcatTable, parent = nd.class('nn.ConcatTable', 'nn.Container')

function ConcatTable:updateOutput(input)
  self.output = {}
  for i = 1, #self.modules do self.output[i] = self:rethrow(i, 'updateOutput', input) end
  return self.output
end

local function backward_common(self, method, input, gradOutput, scale)
  local gradInput
  for i = 1, #self.modules do
    local g = self:rethrow(i, method, input, gradOutput[i], scale)
    gradInput = util.accumulate(gradInput, g, i == 1)
  end
  return gradInput
end

function ConcatTable:updateGradInput(input, gradOutput)
  self.gradInput = backward_common(self, 'updateGradInput', input, gradOutput)
  return self.gradInput
end

function ConcatTable:backward(input, gradOutput, scale)
  self.gradInput = backward_common(self, 'backward', input, gradOutput, scale or 1)
  return self.gradInput
end

function ConcatTable:accGradParameters(input, gradOutput, scale)
  for i = 1, #self.modules do self:rethrow(i, 'accGradParameters', input, gradOutput[i], scale or 1) end
end

return ConcatTable
