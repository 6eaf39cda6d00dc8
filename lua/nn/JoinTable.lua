-- nn.JoinTable(dim): concatenates the tensors of the input table along dim.
local nd = require('nd')

local JoinTable, parent = nd.class('nn.JoinTable', 'nn.Module')

function JoinTable:__init(dim)
  parent.__init(self)
  self.dimension = dim
end

function JoinTable:updateOutput(input)
  self.output = nd.cat(input, self.dimension)
  return self.output
end

function JoinTable:updateGradInput(input, gradOutput)
  self.gradInput = {}
  local off = 1
  for i = 1, #input do
    local n = input[i]:size(self.dimension)
    self.gradInput[i] = gradOutput:narrow(self.dimension, off, n):clone()
    off = off + n
  end
  return self.gradInput
end

return JoinTable
