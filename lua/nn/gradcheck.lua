-- Finite-difference gradient checks for modules (Torch7's nn.Jacobian, simplified).
-- The module is checked in float64 on the loss L = sum(output .* R) for a fixed random R:
-- the analytic gradInput / gradWeight must match central differences of L.
local nd = require('nd')

local check = {}

-- Calls fn(index_list) for every element of t in row-major order.
local function each_index(t, fn)
  local sizes = t:size():totable()
  local idx = {}
  for d = 1, #sizes do idx[d] = 1 end
  local n = t:nElement()
  for _ = 1, n do
    fn(idx)
    for d = #sizes, 1, -1 do
      idx[d] = idx[d] + 1
      if idx[d] <= sizes[d] then break end
      idx[d] = 1
    end
  end
end
check.each_index = each_index

local function get(t, idx) return nd.core.get(t, table.unpack(idx)) end
local function set(t, v, idx) nd.core.setelem(t, v, table.unpack(idx)) end

-- Sum of output .* R over tensors or tables of tensors.
local function dot(out, R)
  if nd.isTensor(out) then return nd.cmul(out, R):sum() end
  local s = 0
  for k, v in pairs(out) do s = s + dot(v, R[k]) end
  return s
end

local function randlike(out)
  if nd.isTensor(out) then return out:clone():normal() end
  local r = {}
  for k, v in pairs(out) do r[k] = randlike(v) end
  return r
end

local function maxdiff(a, b)
  local m = 0
  each_index(a, function(idx) m = math.max(m, math.abs(get(a, idx) - get(b, idx))) end)
  return m
end

-- Returns the max abs error of gradInput and of each parameter gradient, and the largest
-- analytic value (for scale). opts: eps (1e-6), seed (to reset the RNG before each forward,
-- for stochastic modules), params (check parameters, default true).
function check.module(module, input, opts)
  opts = opts or {}
  local eps = opts.eps or 1e-6
  local function forward(x)
    if opts.seed then nd.manualSeed(opts.seed) end
    return module:forward(x)
  end
  local out = forward(input)
  nd.manualSeed(12345)
  local R = randlike(out)
  module:zeroGradParameters()
  out = forward(input)
  local gin = module:backward(input, R)
  gin = nd.isTensor(gin) and gin:clone() or gin
  local report = {}
  -- central differences of L with respect to every element of t (perturbed in place)
  local function numeric(t)
    local num = t:clone():zero()
    each_index(t, function(idx)
      local v = get(t, idx)
      set(t, v + eps, idx); local fp = dot(forward(input), R)
      set(t, v - eps, idx); local fm = dot(forward(input), R)
      set(t, v, idx)
      set(num, (fp - fm) / (2 * eps), idx)
    end)
    return num
  end
  local num = numeric(input)
  report.input = maxdiff(gin, num)
  report.scale = num:abs():max()
  -- parameters
  if opts.params ~= false then
    local params, grads = module:parameters()
    report.params = {}
    for i, p in ipairs(params or {}) do
      local g = grads[i]:clone()
      local pn = numeric(p)
      report.params[i] = maxdiff(g, pn)
      report.scale = math.max(report.scale, pn:abs():max())
    end
  end
  return report
end

-- A non-contiguous float64 copy of t (same values): a transposed view of a transposed copy,
-- or for 1-d tensors every other element of a buffer twice as long.
function check.noncontiguous(t)
  if t:dim() == 1 then
    local buf = nd.zeros(t:size(1) * 2, 'float64')
    local v = buf:unfold(1, 1, 2):select(2, 1)
    v:copy(t)
    return v
  end
  local d = t:dim()
  local perm = {}
  for i = 1, d do perm[i] = d - i + 1 end
  local r = t:double():permute(table.unpack(perm)):contiguous()
  local v = r:permute(table.unpack(perm))
  assert(not v:isContiguous())
  return v
end

return check
