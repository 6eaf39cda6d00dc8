-- nn.Module: the Torch7 module protocol. A module keeps its state (weights, gradients, buffers,
-- output, gradInput) as tensors in its own table, so serialization sees everything.
local nd = require('nd')

local Module = nd.class('nn.Module')

function Module:__init()
  self.gradInput = nd.Tensor()
  self.output = nd.Tensor()
  self.train = true
end

-- Lists of parameter tensors and their gradients (nil when the module has none).
function Module:parameters()
  if self.weight and self.bias then
    return {self.weight, self.bias}, {self.gradWeight, self.gradBias}
  elseif self.weight then
    return {self.weight}, {self.gradWeight}
  elseif self.bias then
    return {self.bias}, {self.gradBias}
  end
end

function Module:updateOutput(input) return self.output end
function Module:updateGradInput(input, gradOutput) return self.gradInput end
function Module:accGradParameters(input, gradOutput, scale) end

-- An error raised by module m, as text naming a module: prefixed with m's type unless it already
-- names one ("nn.Linear: mm: size mismatch, ..."). Shared with Container:rethrow.
function Module.errorText(m, err)
  local msg = tostring(err)
  if not msg:match('^nn%.') then msg = nd.typename(m) .. ': ' .. msg end
  return msg
end

-- Module.guard(self, f, ...): f(...), its error re-raised as Module.errorText(self, ...), so that
-- a bad input to a lone module names it. nn.debug keeps the raw error and its traceback.
function Module.guard(self, f, ...)
  if rawget(nd, 'nn_debug') then return f(...) end
  local ok, res = pcall(f, ...)
  if ok then return res end
  error(Module.errorText(self, res), 0)
end

function Module:forward(input) return Module.guard(self, self.updateOutput, self, input) end

local function backward(self, input, gradOutput, scale)
  scale = scale or 1
  self:updateGradInput(input, gradOutput)
  self:accGradParameters(input, gradOutput, scale)
  return self.gradInput
end
function Module:backward(input, gradOutput, scale) return Module.guard(self, backward, self, input, gradOutput, scale) end

-- m:noGradInput([skip = true]): the module's input needs no gradient (the first layer of a net
-- fed with data). Layers that honour it (SpatialConvolution, Deconv) then compute only their
-- parameter gradients in backward and leave gradInput empty; the others ignore it.
function Module:noGradInput(skip)
  self.skipGradInput = skip ~= false or nil
  return self
end

function Module:zeroGradParameters()
  local _, grads = self:parameters()
  if grads then for _, g in ipairs(grads) do g:zero() end end
end

function Module:updateParameters(lr)
  local params, grads = self:parameters()
  if params then for i, p in ipairs(params) do p:add(-lr, grads[i]) end end
end

function Module:training() self.train = true; return self end
function Module:evaluate() self.train = false; return self end

-- The module and its descendants, depth first (containers override).
function Module:apply(fn) fn(self) end
function Module:listModules()
  local list = {}
  self:apply(function(m) list[#list + 1] = m end)
  return list
end
function Module:findModules(name)
  local found = {}
  for _, m in ipairs(self:listModules()) do
    if nd.typename(m) == name then found[#found + 1] = m end
  end
  return found
end

-- Fields that hold per-call results, emptied by clearState (modules may add more in
-- self._stateFields, e.g. saved statistics for the backward).
local function empty_like(t) return t:new() end
function Module:clearState()
  self:apply(function(m)
    for _, k in ipairs {'output', 'gradInput'} do
      if nd.isTensor(m[k]) then m[k] = empty_like(m[k]) elseif type(m[k]) == 'table' then m[k] = {} end
    end
    for _, k in ipairs(m._stateFields or {}) do
      if nd.isTensor(m[k]) then m[k] = empty_like(m[k]) else m[k] = nil end
    end
  end)
  return self
end

-- Converts every tensor field (also inside plain tables) to `typename`. The same tensor
-- (storage, offset, size, stride) met twice converts to one tensor, so shared weights stay shared.
local function convert(value, typename, memo)
  if nd.isTensor(value) then
    local dt, cuda = nd.core.dtype(value), typename:find('Cuda') ~= nil
    local key = table.concat({tostring((nd.core.storageid(value))), nd.core.offset(value),
                              tostring(value:size()), tostring(value:stride())}, ':')
    if memo[key] then return memo[key] end
    local out
    if dt == 'int64' or dt == 'uint8' then
      out = value:to(cuda and 'cuda' or 'cpu')
    else
      out = value:type(typename)
    end
    memo[key] = out
    return out
  elseif type(value) == 'table' and getmetatable(value) == nil then
    for k, v in pairs(value) do value[k] = convert(v, typename, memo) end
  end
  return value
end

-- Per-call results (output, gradInput, the fields in _stateFields) are not converted but dropped
-- (emptied, as clearState does): the next forward recomputes them on the new device.
-- Parameters, gradients and buffers (running statistics, ...) are converted. The flat views of
-- getParameters are dropped too: call getParameters again after type/cuda/float (it returns new
-- flat tensors on the new device, and is idempotent again from then on).
local function empty_of(v, typename)
  if nd.isTensor(v) then return nd.core.empty(nd._dtype(typename), {}) end
  return {}
end

function Module:type(typename, memo)
  if not typename then return nd.typename(self) end
  memo = memo or {}
  self:apply(function(m)
    local drop = {output = true, gradInput = true}
    for _, k in ipairs(m._stateFields or {}) do drop[k] = true end
    for k, v in pairs(m) do
      if drop[k] and (nd.isTensor(v) or type(v) == 'table') and k ~= 'modules' then
        if k == 'output' or k == 'gradInput' then m[k] = empty_of(v, typename) else m[k] = nil end
      elseif nd.isTensor(v) or (type(v) == 'table' and getmetatable(v) == nil and k ~= 'modules') then
        m[k] = convert(v, typename, memo)
      end
    end
    m._flat = nil
  end)
  return self
end
-- model:float() / model:double(): every tensor to the host as float32 / float64 (int64 and uint8
-- buffers stay integer, moved to the host). model:cuda(): to the current GPU as float32 (integer
-- buffers keep their dtype), or an error naming the reason when there is no usable GPU.
function Module:float() return self:type('nd.FloatTensor') end
function Module:double() return self:type('nd.DoubleTensor') end
function Module:cuda()
  local ok, why = false, 'nd.cuda is missing'
  if nd.cuda and nd.cuda.available then ok, why = nd.cuda.available() end
  if not ok then
    error(nd.typename(self) .. ':cuda(): CUDA is not available, cannot move to a GPU: ' .. tostring(why), 2)
  end
  return self:type('nd.CudaTensor')
end

-- A deep copy (through the serializer); with field names, those tensors are then shared
-- with the original (Torch7 clone('weight', 'bias')).
function Module:clone(...)
  local copy = nd.deserialize(nd.serialize(self))
  if select('#', ...) > 0 then copy:share(self, ...) end
  return copy
end

-- Makes the named tensor fields of this module views of `other`'s (recursively for containers).
function Module:share(other, ...)
  local names = {...}
  for _, name in ipairs(names) do
    if nd.isTensor(self[name]) and nd.isTensor(other[name]) then self[name]:set(other[name]) end
  end
  if self.modules and other.modules then
    for i, m in ipairs(self.modules) do m:share(other.modules[i], ...) end
  end
  self._flat = nil
  return self
end

-- Flattens all parameters (and gradients) into one contiguous tensor each, turning every
-- parameter into a view of it. Idempotent: a second call returns the same two tensors.
local function flat_valid(flat, list)
  if not flat then return false end
  local id, off = nd.core.storageid(flat), nd.core.offset(flat)
  local seen = {}
  for _, t in ipairs(list) do
    if nd.core.storageid(t) ~= id or not t:isContiguous() then return false end
    local o = nd.core.offset(t)
    if not seen[o] then
      if o ~= off then return false end
      seen[o] = true
      off = off + t:nElement()
    end
  end
  return off - nd.core.offset(flat) == flat:nElement()
end

local function flatten(list)
  if #list == 0 then return nd.Tensor() end
  local unique, keyof, total = {}, {}, 0
  for _, t in ipairs(list) do
    local key = tostring((nd.core.storageid(t))) .. ':' .. nd.core.offset(t) .. ':' .. tostring(t:size())
    if not keyof[key] then
      keyof[key] = {t}
      unique[#unique + 1] = key
      total = total + t:nElement()
    else
      table.insert(keyof[key], t)
    end
  end
  local first = list[1]
  local dev, index = nd.core.device(first)
  local flat = nd.core.zeros(nd.core.dtype(first), {total}, dev == 'cuda' and 'cuda:' .. index or 'cpu')
  local off = 1
  for _, key in ipairs(unique) do
    local group = keyof[key]
    local n = group[1]:nElement()
    local v = flat:narrow(1, off, n):view(group[1]:size())
    v:copy(group[1])
    for _, t in ipairs(group) do t:set(v) end
    off = off + n
  end
  return flat
end

function Module:getParameters()
  local params, grads = self:parameters()
  params, grads = params or {}, grads or {}
  local f = self._flat
  if f and flat_valid(f.p, params) and flat_valid(f.g, grads) then return f.p, f.g end
  local p, g = flatten(params), flatten(grads)
  self._flat = {p = p, g = g}
  return p, g
end

-- m(input) runs forward; m(input, gradOutput) runs forward then backward.
function Module:__call(input, gradOutput)
  self:forward(input)
  if gradOutput then
    self:backward(input, gradOutput)
    return self.output, self.gradInput
  end
  return self.output
end

function Module:__tostring__() return nd.typename(self) end

-- The number of parameter elements in this module and its children.
function Module:nParameters()
  local params = self:parameters()
  local n = 0
  for _, p in ipairs(params or {}) do n = n + p:nElement() end
  return n
end

return Module
