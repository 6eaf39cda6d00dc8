-- nn.SelectTable(i): output = input[i] (negative i counts from the end).
local nd = require('nd')
local util = require('nn.util')

local SelectTable, parent = nd.class('nn.SelectTable', 'nn.Module')

function SelectTable:__init(index)
  parent.__init(self)
  self.index = index
end

local function pos(self, input)
  local i = self.index < 0 and #input + self.index + 1 or self.index
  if input[i] == nil then util.fail(self, 'index %d out of range for a table of %d', self.index, #input) end
  return i
end

local function zeros_like(x)
  if nd.isTensor(x) then return x:clone():zero() end
  local t = {}
  for k, v in pairs(x) do t[k] = zeros_like(v) end
  return t
end

function SelectTable:updateOutput(input)
  self.output = input[pos(self, input)]
  return self.output
end

function SelectTable:updateGradInput(input, gradOutput)
  local i = pos(self, input)
  self.gradInput = {}
  for k = 1, #input do self.gradInput[k] = k == i and gradOutput or zeros_like(input[k]) end
  return self.gradInput
end

return SelectTable
