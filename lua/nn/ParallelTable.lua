-- nn.ParallelTable: module i is applied to input[i]; the output is the table of outputs.
local nd = require('nd')

local ParallelTable = nd.class('nn.ParallelTable', 'nn.Container')

function ParallelTable:updateOutput(input)
  self.output = {}
  for i = 1, #self.modules do self.output[i] = self:rethrow(i, 'updateOutput', input[i]) end
  return self.output
end

function ParallelTable:updateGradInput(input, gradOutput)
  self.gradInput = {}
  for i = 1, #self.modules do self.gradInput[i] = self:rethrow(i, 'updateGradInput', input[i], gradOutput[i]) end
  return self.gradInput
end

function ParallelTable:accGradParameters(input, gradOutput, scale)
  for i = 1, #self.modules do self:rethrow(i, 'accGradParameters', input[i], gradOutput[i], scale or 1) end
end

function ParallelTable:backward(input, gradOutput, scale)
  self.gradInput = {}
  for i = 1, #self.modules do
    self.gradInput[i] = self:rethrow(i, 'backward', input[i], gradOutput[i], scale or 1)
  end
  return self.gradInput
end

return ParallelTable
