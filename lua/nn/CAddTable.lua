-- nn.CAddTable: output = sum of the tensors in the input table (residual connections).
local nd = require('nd')
local util = require('nn.util')

local CAddTable, parent = nd.class('nn.CAddTable', 'nn.Module')

function CAddTable:__init(inplace)
  parent.__init(self)
  self.inplace = inplace
end

function CAddTable:updateOutput(input)
  for i = 2, #input do
    if not input[i]:isSameSizeAs(input[1]) then
      util.fail(self, 'input %d has size %s, input 1 has %s', i, nd.shape(input[i]), nd.shape(input[1]))
    end
  end
  if self.inplace then self.output = input[1] else self.output = input[1]:clone() end
  for i = 2, #input do self.output:add(input[i]) end
  return self.output
end

function CAddTable:updateGradInput(input, gradOutput)
  self.gradInput = {}
  for i = 1, #input do self.gradInput[i] = self.inplace and gradOutput or gradOutput:clone() end
  return self.gradInput
end

return CAddTable
