-- nn.Concat(dim): applies every module to the same input and concatenates the outputs along dim.
local nd = require('nd')
local util = require('nn.util')

local Concat, parent = nd.class('nn.Concat', 'nn.Container')

function Concat:__init(dim)
  parent.__init(self)
  if not dim then error('nn.Concat: a dimension is required', 2) end
  self.dimension = dim
end

function Concat:updateOutput(input)
  local outs = {}
  for i = 1, #self.modules do outs[i] = self:rethrow(i, 'updateOutput', input) end
  self.output = nd.cat(outs, self.dimension)
  return self.output
end

local function slices(self, gradOutput)
  local off, out = 1, {}
  for i, m in ipairs(self.modules) do
    local n = m.output:size(self.dimension)
    out[i] = gradOutput:narrow(self.dimension, off, n)
    off = off + n
  end
  return out
end

function Concat:updateGradInput(input, gradOutput)
  local g = slices(self, gradOutput)
  local acc
  for i = 1, #self.modules do
    acc = util.accumulate(acc, self:rethrow(i, 'updateGradInput', input, g[i]), i == 1)
  end
  self.gradInput = acc
  return acc
end

function Concat:accGradParameters(input, gradOutput, scale)
  local g = slices(self, gradOutput)
  for i = 1, #self.modules do self:rethrow(i, 'accGradParameters', input, g[i], scale or 1) end
end

function Concat:backward(input, gradOutput, scale)
  local g = slices(self, gradOutput)
  local acc
  for i = 1, #self.modules do
    acc = util.accumulate(acc, self:rethrow(i, 'backward', input, g[i], scale or 1), i == 1)
  end
  self.gradInput = acc
  return acc
end

return Concat
