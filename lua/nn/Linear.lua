-- nn.Linear(nIn, nOut [, bias=true]): y = x W^T + b for x of size nIn or N x nIn.
-- weight nOut x nIn, bias nOut; default init U(-1/sqrt(nIn), 1/sqrt(nIn)) for both.
local nd = require('nd')
local util = require('nn.util')

local Linear, parent = nd.class('nn.Linear', 'nn.Module')

function Linear:__init(nIn, nOut, bias)
  parent.__init(self)
  if math.type(nIn) ~= 'integer' or math.type(nOut) ~= 'integer' or nIn < 1 or nOut < 1 then
    error(string.format('nn.Linear: expected positive integer sizes, got %s, %s', tostring(nIn), tostring(nOut)), 2)
  end
  self.weight = nd.Tensor(nOut, nIn)
  self.gradWeight = nd.zeros(nOut, nIn)
  if bias ~= false then
    self.bias = nd.Tensor(nOut)
    self.gradBias = nd.zeros(nOut)
  end
  self:reset()
end

function Linear:reset(stdv)
  stdv = stdv or 1 / math.sqrt(self.weight:size(2))
  self.weight:uniform(-stdv, stdv)
  if self.bias then self.bias:uniform(-stdv, stdv) end
  return self
end

function Linear:noBias()
  self.bias, self.gradBias = nil, nil
  return self
end

local function check(self, input)
  local d = util.check_dims(self, input, {1, 2})
  local nIn = self.weight:size(2)
  if input:size(d) ~= nIn then
    util.fail(self, 'expected input with %d features, got %d (input %s)', nIn, input:size(d), nd.shape(input))
  end
  return d
end

function Linear:updateOutput(input)
  local d = check(self, input)
  if d == 1 then
    self.output = nd.mv(self.weight, input)
    if self.bias then self.output:add(self.bias) end
  else
    self.output = nd.mm(input, self.weight:t())
    if self.bias then self.output:add(self.bias:view(1, -1):expandAs(self.output)) end
  end
  return self.output
end

function Linear:updateGradInput(input, gradOutput)
  if input:dim() == 1 then
    self.gradInput = nd.mv(self.weight:t(), gradOutput)
  else
    self.gradInput = nd.mm(gradOutput, self.weight)
  end
  return self.gradInput
end

function Linear:accGradParameters(input, gradOutput, scale)
  scale = scale or 1
  if input:dim() == 1 then
    self.gradWeight:addr(scale, gradOutput, input)
    if self.bias then self.gradBias:add(scale, gradOutput) end
  else
    self.gradWeight:addmm(scale, gradOutput:t(), input)
    if self.bias then self.gradBias:add(scale, gradOutput:sum(1):view(-1)) end
  end
end

function Linear:__tostring__()
  return string.format('nn.Linear(%d -> %d%s)', self.weight:size(2), self.weight:size(1), self.bias and '' or ', no bias')
end

return Linear
