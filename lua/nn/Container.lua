-- nn.Container: a module holding child modules in self.modules. Errors raised inside a child are
-- re-raised with the path of containers leading to it:
--   nn.Sequential(3) > nn.Deconv: expected input of 64 planes, got 32 (input 128x32x16x16)
local nd = require('nd')

local Container, parent = nd.class('nn.Container', 'nn.Module')

function Container:__init(...)
  parent.__init(self, ...)
  self.modules = {}
end

function Container:add(module)
  if type(module) ~= 'table' or not module.forward then
    error(nd.typename(self) .. ':add: expected a module, got ' .. nd.typename(module), 2)
  end
  table.insert(self.modules, module)
  self._flat = nil
  return self
end

function Container:get(i) return self.modules[i] end
function Container:size() return #self.modules end

-- Calls module i's `method` and prefixes any error with this container's path.
-- nn.debug = true skips the wrapping (keeps the full traceback).
function Container:rethrow(i, method, ...)
  local m = self.modules[i]
  if rawget(nd, 'nn_debug') then return m[method](m, ...) end
  local ok, res = pcall(m[method], m, ...)
  if ok then return res end
  error(string.format('%s(%d) > %s', nd.typename(self), i, parent.errorText(m, res)), 0)
end

function Container:apply(fn)
  fn(self)
  for _, m in ipairs(self.modules) do m:apply(fn) end
end

function Container:training()
  self.train = true
  for _, m in ipairs(self.modules) do m:training() end
  return self
end

function Container:evaluate()
  self.train = false
  for _, m in ipairs(self.modules) do m:evaluate() end
  return self
end

function Container:zeroGradParameters()
  for _, m in ipairs(self.modules) do m:zeroGradParameters() end
end

function Container:updateParameters(lr)
  for _, m in ipairs(self.modules) do m:updateParameters(lr) end
end

function Container:parameters()
  local w, gw = {}, {}
  for _, m in ipairs(self.modules) do
    local mw, mgw = m:parameters()
    if mw then
      for i = 1, #mw do
        w[#w + 1] = mw[i]
        gw[#gw + 1] = mgw[i]
      end
    end
  end
  return w, gw
end

-- Prints the tree with parameter counts.
local function count(m)
  local n = 0
  for _, p in ipairs((m:parameters()) or {}) do n = n + p:nElement() end
  return n
end

local function describe(m, indent)
  local s = tostring(m)
  if m.modules then return s end -- containers print themselves
  local n = count(m)
  if n > 0 then s = s .. string.format('  (%s params)', n) end
  return s
end

function Container:__tostring__()
  local lines = {nd.typename(self) .. ' {'}
  for i, m in ipairs(self.modules) do
    local child = describe(m):gsub('\n', '\n  ')
    lines[#lines + 1] = string.format('  (%d): %s', i, child)
  end
  lines[#lines + 1] = string.format('}  (%s params)', count(self))
  return table.concat(lines, '\n')
end

return Container
