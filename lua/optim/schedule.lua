-- optim.schedule: learning rates as pure functions of the step t (counted from 0). Each builder
-- takes a table of options and returns function(t) -> lr; a training loop sets
-- config.learningRate = sched(t) before step t, so resuming needs only t.
--
--   cosine{base=0.1, total=T, min=0}   min + (base - min) * (1 + cos(pi * t / T)) / 2, t clamped to
--                                      [0, T] (stays at min after T; the reference recipe steps it
--                                      once per iteration with T = iterations per epoch * epochs)
--   multistep{base, milestones={...}, gamma=0.1}   base * gamma^(number of milestones <= t)
--   step{base, size, gamma=0.1}        base * gamma^floor(t / size)
--   warmup{base, steps, after=fn}      base * (t + 1) / steps for t < steps (so the first step is
--                                      not wasted at lr 0), then after(t - steps), or base without
--                                      `after`; base defaults to after(0)
--   constant{base}                     base
local schedule = {}

local function number(o, key, fname, default)
  local v = o[key]
  if v == nil then v = default end
  if type(v) ~= 'number' then
    error(string.format('optim.schedule.%s: option %s must be a number, got %s', fname, key, type(v)), 3)
  end
  return v
end

local function options(o, fname)
  if type(o) ~= 'table' then error('optim.schedule.' .. fname .. ': expected a table of options', 3) end
  return o
end

function schedule.constant(o)
  options(o, 'constant')
  local base = number(o, 'base', 'constant')
  return function() return base end
end

function schedule.cosine(o)
  options(o, 'cosine')
  local base, total, min = number(o, 'base', 'cosine'), number(o, 'total', 'cosine'), number(o, 'min', 'cosine', 0)
  if total <= 0 then error('optim.schedule.cosine: total must be positive', 2) end
  return function(t)
    if t < 0 then t = 0 elseif t > total then t = total end
    return min + 0.5 * (base - min) * (1 + math.cos(math.pi * t / total))
  end
end

function schedule.multistep(o)
  options(o, 'multistep')
  local base, gamma = number(o, 'base', 'multistep'), number(o, 'gamma', 'multistep', 0.1)
  if type(o.milestones) ~= 'table' then error('optim.schedule.multistep: milestones must be a list of steps', 2) end
  local ms = {}
  for i, m in ipairs(o.milestones) do
    if type(m) ~= 'number' then error('optim.schedule.multistep: milestone ' .. i .. ' is not a number', 2) end
    ms[i] = m
  end
  return function(t)
    local k = 0
    for i = 1, #ms do if t >= ms[i] then k = k + 1 end end
    return base * gamma ^ k
  end
end

function schedule.step(o)
  options(o, 'step')
  local base, size, gamma = number(o, 'base', 'step'), number(o, 'size', 'step'), number(o, 'gamma', 'step', 0.1)
  if size <= 0 then error('optim.schedule.step: size must be positive', 2) end
  return function(t) return base * gamma ^ (t // size) end
end

function schedule.warmup(o)
  options(o, 'warmup')
  local after = o.after
  if after ~= nil and type(after) ~= 'function' then
    error('optim.schedule.warmup: after must be a schedule (a function of the step)', 2)
  end
  local base = o.base
  if base == nil and after then base = after(0) end
  base = number({base = base}, 'base', 'warmup')
  local steps = number(o, 'steps', 'warmup')
  if steps < 0 then error('optim.schedule.warmup: steps must not be negative', 2) end
  return function(t)
    if t < steps then return base * (t + 1) / steps end
    if after then return after(t - steps) end
    return base
  end
end

return schedule
