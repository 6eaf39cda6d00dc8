-- Helpers shared by the nn modules.
local nd = require('nd')

local util = {}

-- Sums gradients that may be tensors or (nested) tables of tensors. `first` starts a new sum
-- (a copy, so the child's buffer is not modified later).
function util.accumulate(acc, g, first)
  if nd.isTensor(g) then
    if first or acc == nil then return g:clone() end
    return acc:add(g)
  end
  acc = (first or acc == nil) and {} or acc
  for k, v in pairs(g) do acc[k] = util.accumulate(acc[k], v, first or acc[k] == nil) end
  return acc
end

-- "nn.Linear: expected ... (input 2x3)" style message with the module name.
function util.fail(module, fmt, ...)
  error(string.format('%s: ' .. fmt, nd.typename(module), ...), 0)
end

-- Checks a tensor argument's dim count.
function util.check_dims(module, input, allowed, what)
  if not nd.isTensor(input) then
    util.fail(module, 'expected a tensor %s, got %s', what or 'input', nd.typename(input) or type(input))
  end
  local d = input:dim()
  for _, a in ipairs(allowed) do if a == d then return d end end
  util.fail(module, 'expected a %s-d %s, got %s', table.concat(allowed, ' or '), what or 'input', nd.shape(input))
end

return util
