-- optim: sgd / adam / rmsprop against hand-computed steps and on Rosenbrock, schedules,
-- the TSV Logger and the ConfusionMatrix.
package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path
package.cpath = (os.getenv('ND_BUILD') or 'build') .. '/lib/?.so;' .. package.cpath
local nd = require('nd')
local core = nd.core

-- Until nd.math exists: the few Torch7 in-place methods the optimizers use, written over
-- toflat/fromflat (installed only when missing).
do
  local T = nd.TensorMethods
  local function map(t, f)
    local a = core.toflat(t)
    for i = 1, #a do a[i] = f(a[i], i) end
    return core.fromflat(t, a)
  end
  local function flat(x) return core.toflat(x) end
  local shims = {
    fill = function(t, v) return map(t, function() return v end) end,
    zero = function(t) return map(t, function() return 0 end) end,
    add = function(t, a, b)
      if b == nil and type(a) == 'number' then return map(t, function(x) return x + a end) end
      if b == nil then local y = flat(a); return map(t, function(x, i) return x + y[i] end) end
      local y = flat(b)
      return map(t, function(x, i) return x + a * y[i] end)
    end,
    mul = function(t, s) return map(t, function(x) return x * s end) end,
    div = function(t, s) return map(t, function(x) return x / s end) end,
    cmul = function(t, y) local f = flat(y); return map(t, function(x, i) return x * f[i] end) end,
    sqrt = function(t) return map(t, function(x) return math.sqrt(x) end) end,
    addcmul = function(t, v, a, b)
      if b == nil then v, a, b = 1, v, a end
      local fa, fb = flat(a), flat(b)
      return map(t, function(x, i) return x + v * fa[i] * fb[i] end)
    end,
    addcdiv = function(t, v, a, b)
      if b == nil then v, a, b = 1, v, a end
      local fa, fb = flat(a), flat(b)
      return map(t, function(x, i) return x + v * fa[i] / fb[i] end)
    end,
  }
  local probe = nd.Tensor(1, 'float64')
  for name, f in pairs(shims) do
    if not T[name] or ((name == 'fill' or name == 'zero') and not pcall(T[name], probe, 1)) then T[name] = f end
  end
end

local optim = require('optim')

local function vec(list) return nd.Tensor(list, 'float64') end
local function near(a, b, tol)
  tol = tol or 1e-12
  return math.abs(a - b) <= tol * math.max(1, math.abs(a), math.abs(b))
end
local function assert_list(expected, got, tol)
  assert.are.equal(#expected, #got)
  for i = 1, #expected do
    assert.is_true(near(expected[i], got[i], tol), string.format('entry %d: expected %.17g, got %.17g', i, expected[i], got[i]))
  end
end

-- f(x) = 0.5 * sum(c_i * x_i^2): gradient c .* x (a fresh tensor each call, as getParameters gives).
local function quadratic(c)
  return function(x)
    local xs, g, f = x:tolist(), {}, 0
    for i = 1, #xs do g[i] = c[i] * xs[i]; f = f + 0.5 * c[i] * xs[i] ^ 2 end
    return f, vec(g)
  end
end

local function rosenbrock(x)
  local a, b = x[1], x[2]
  local f = (1 - a) ^ 2 + 100 * (b - a * a) ^ 2
  return f, vec({-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)})
end

describe('optim.sgd', function()
  it('follows the Torch7 protocol: returns x and {f}, keeps the step count in state', function()
    local x = vec({1, 2})
    local state = {}
    local x2, fs = optim.sgd(quadratic({1, 1}), x, {learningRate = 0.1}, state)
    assert.are.equal(x, x2)
    assert.are.equal(2.5, fs[1])
    assert.are.equal(1, state.t)
    assert_list({0.9, 1.8}, x:tolist())
    local config = {learningRate = 0.1}          -- without a state, config holds it
    optim.sgd(quadratic({1, 1}), x, config)
    assert.are.equal(1, config.t)
  end)

  it('matches a hand-computed momentum sequence (PyTorch: buf = g on the first step)', function()
    local c = {2, -1, 0.5}
    local x = vec({1, 2, -3})
    local config = {learningRate = 0.1, momentum = 0.9, weightDecay = 0.01}
    local state = {}
    -- by hand: g = c*x + wd*x; buf = g (step 1), then buf = 0.9*buf + g; x = x - lr*buf
    local hx, buf = {1, 2, -3}, nil
    for step = 1, 3 do
      optim.sgd(quadratic(c), x, config, state)
      local g = {}
      for i = 1, 3 do g[i] = c[i] * hx[i] + 0.01 * hx[i] end
      if not buf then buf = {g[1], g[2], g[3]} else for i = 1, 3 do buf[i] = 0.9 * buf[i] + g[i] end end
      for i = 1, 3 do hx[i] = hx[i] - 0.1 * buf[i] end
      assert_list(hx, x:tolist())
      assert_list(buf, state.dfdx:tolist())
      assert.are.equal(step, state.t)
    end
    -- the first step of momentum SGD equals plain SGD
    local y = vec({1, 2, -3})
    optim.sgd(quadratic(c), y, {learningRate = 0.1, momentum = 0.9, weightDecay = 0.01}, {})
    local z = vec({1, 2, -3})
    optim.sgd(quadratic(c), z, {learningRate = 0.1, weightDecay = 0.01}, {})
    assert_list(z:tolist(), y:tolist())
  end)

  it('applies the exact numbers of a 3-step run', function()
    -- f = 0.5*x^2 from x = 1, lr 0.1, momentum 0.9: g1 = 1, buf = 1, x = 0.9;
    -- g2 = 0.9, buf = 1.8, x = 0.72; g3 = 0.72, buf = 2.34, x = 0.486
    local x, state = vec({1}), {}
    local expect = {0.9, 0.72, 0.486}
    for i = 1, 3 do
      optim.sgd(quadratic({1}), x, {learningRate = 0.1, momentum = 0.9}, state)
      assert.is_true(near(expect[i], x[1]), string.format('step %d: %.17g', i, x[1]))
    end
  end)

  it('applies dampening after the first step and Nesterov momentum', function()
    local x, state = vec({1}), {}
    local cfg = {learningRate = 0.1, momentum = 0.9, dampening = 0.5}
    optim.sgd(quadratic({1}), x, cfg, state)              -- buf = 1, x = 0.9
    optim.sgd(quadratic({1}), x, cfg, state)              -- buf = 0.9 + 0.5*0.9 = 1.35, x = 0.765
    assert.is_true(near(0.765, x[1]))
    local y, st2 = vec({1}), {}
    local nes = {learningRate = 0.1, momentum = 0.9, nesterov = true}
    optim.sgd(quadratic({1}), y, nes, st2)                -- buf = 1, g = 1 + 0.9 = 1.9, y = 0.81
    assert.is_true(near(0.81, y[1]))
    optim.sgd(quadratic({1}), y, nes, st2)                -- g = .81, buf = 1.71, g = .81+1.539, y = .575
    assert.is_true(near(0.81 - 0.1 * (0.81 + 0.9 * 1.71), y[1]))
    assert.has_error(function() optim.sgd(quadratic({1}), y, {nesterov = true, momentum = 0}, {}) end)
    assert.has_error(function() optim.sgd(quadratic({1}), y, {nesterov = true, momentum = 0.9, dampening = 0.1}, {}) end)
  end)

  it('decays weights as coupled L2 on every parameter', function()
    local x = vec({2, -4})
    optim.sgd(function() return 0, vec({0, 0}) end, x, {learningRate = 0.5, weightDecay = 0.1}, {})
    assert_list({2 - 0.5 * 0.2, -4 + 0.5 * 0.4}, x:tolist())
  end)

  it('uses the learning rate given each step (schedules) and the optional decay', function()
    local x, state = vec({1}), {}
    local config = {learningRate = 0.1}
    local sched = optim.schedule.step{base = 0.1, size = 1, gamma = 0.5}
    local hx = 1
    for t = 0, 2 do
      config.learningRate = sched(t)
      optim.sgd(quadratic({1}), x, config, state)
      hx = hx - sched(t) * hx
      assert.is_true(near(hx, x[1]))
    end
    local y, st = vec({1}), {}
    optim.sgd(quadratic({1}), y, {learningRate = 0.1, learningRateDecay = 1}, st)   -- lr 0.1
    optim.sgd(quadratic({1}), y, {learningRate = 0.1, learningRateDecay = 1}, st)   -- lr 0.05
    assert.is_true(near(0.9 * (1 - 0.05), y[1]))
  end)

  it('keeps a state that survives nd.save / nd.load (resume gives the same trajectory)', function()
    local cfg = {learningRate = 1e-3, momentum = 0.9}
    local a, sa = vec({-1.5, 2}), {}
    for _ = 1, 5 do optim.sgd(rosenbrock, a, cfg, sa) end
    local b, sb = a:clone(), nd.deserialize(nd.serialize(sa))
    for _ = 1, 5 do
      optim.sgd(rosenbrock, a, cfg, sa)
      optim.sgd(rosenbrock, b, cfg, sb)
    end
    assert.are.same(a:tolist(), b:tolist())
    assert.are.equal(10, sb.t)
  end)

  it('minimises the Rosenbrock function', function()
    local x, state = vec({-1.5, 2}), {}
    local cfg = {learningRate = 1e-3, momentum = 0.9}
    local t0 = os.clock()
    for _ = 1, 3000 do optim.sgd(rosenbrock, x, cfg, state) end
    assert.is_true(os.clock() - t0 < 1)
    assert.is_true(math.abs(x[1] - 1) < 1e-3 and math.abs(x[2] - 1) < 1e-3, tostring(x[1]) .. ', ' .. tostring(x[2]))
  end)

  it('refuses a feval that returns no gradient', function()
    assert.has_error(function() optim.sgd(function() return 1 end, vec({1}), {}, {}) end)
    assert.has_error(function() optim.sgd(function() return 1, vec({1, 2}) end, vec({1}), {}, {}) end)
  end)
end)

describe('optim.adam', function()
  it('matches PyTorch arithmetic for two steps', function()
    local x, state = vec({1, -2}), {}
    local cfg = {learningRate = 0.1, weightDecay = 0.01}
    local hx, m, v = {1, -2}, {0, 0}, {0, 0}
    for t = 1, 2 do
      optim.adam(quadratic({3, 1}), x, cfg, state)
      local c = {3, 1}
      for i = 1, 2 do
        local g = c[i] * hx[i] + 0.01 * hx[i]
        m[i] = 0.9 * m[i] + 0.1 * g
        v[i] = 0.999 * v[i] + 0.001 * g * g
        local denom = math.sqrt(v[i]) / math.sqrt(1 - 0.999 ^ t) + 1e-8
        hx[i] = hx[i] - 0.1 / (1 - 0.9 ^ t) * m[i] / denom
      end
      assert_list(hx, x:tolist())
      assert_list(m, state.m:tolist())
      assert_list(v, state.v:tolist())
    end
    assert.are.equal(2, state.t)
    assert.is_nil(state.denom)
  end)

  it('minimises the Rosenbrock function', function()
    local x, state = vec({-1.5, 2}), {}
    local cfg = {learningRate = 0.05}
    for _ = 1, 3000 do optim.adam(rosenbrock, x, cfg, state) end
    assert.is_true(math.abs(x[1] - 1) < 1e-3 and math.abs(x[2] - 1) < 1e-3, tostring(x[1]) .. ', ' .. tostring(x[2]))
  end)
end)

describe('optim.rmsprop', function()
  it('matches PyTorch arithmetic for two steps', function()
    local x, state = vec({1, -2}), {}
    local hx, m = {1, -2}, {0, 0}
    for _ = 1, 2 do
      optim.rmsprop(quadratic({3, 1}), x, {learningRate = 0.01}, state)
      for i = 1, 2 do
        local g = ({3, 1})[i] * hx[i]
        m[i] = 0.99 * m[i] + 0.01 * g * g
        hx[i] = hx[i] - 0.01 * g / (math.sqrt(m[i]) + 1e-8)
      end
      assert_list(hx, x:tolist())
    end
  end)

  it('decreases a quadratic, also with momentum and centered', function()
    for _, cfg in ipairs {{learningRate = 0.01}, {learningRate = 0.01, momentum = 0.9}, {learningRate = 0.01, centered = true}} do
      local x, state = vec({1, -2}), {}
      local f0 = quadratic({3, 1})(x)
      for _ = 1, 50 do optim.rmsprop(quadratic({3, 1}), x, cfg, state) end
      assert.is_true(quadratic({3, 1})(x) < 0.5 * f0)
    end
  end)
end)

describe('optim.schedule', function()
  local S = optim.schedule
  it('cosine', function()
    local f = S.cosine{base = 0.1, total = 100}
    assert.is_true(near(0.1, f(0)))
    assert.is_true(near(0.05, f(50)))
    assert.is_true(near(0.5 * 0.1 * (1 + math.cos(math.pi * 25 / 100)), f(25)))
    assert.is_true(math.abs(f(100)) < 1e-15)
    assert.is_true(math.abs(f(150)) < 1e-15)
    local g = S.cosine{base = 1, total = 10, min = 0.1}
    assert.is_true(near(0.55, g(5)))
    assert.is_true(near(0.1, g(10)))
  end)
  it('multistep and step', function()
    local f = S.multistep{base = 0.1, milestones = {8, 16}, gamma = 0.1}
    assert.is_true(near(0.1, f(0)))
    assert.is_true(near(0.1, f(7)))
    assert.is_true(near(0.01, f(8)))
    assert.is_true(near(0.001, f(20)))
    local g = S.step{base = 1, size = 3, gamma = 0.5}
    assert.are.same({1, 1, 1, 0.5, 0.5, 0.5, 0.25}, {g(0), g(1), g(2), g(3), g(4), g(5), g(6)})
  end)
  it('warmup, alone and before another schedule', function()
    local w = S.warmup{base = 0.4, steps = 4}
    assert_list({0.1, 0.2, 0.3, 0.4, 0.4}, {w(0), w(1), w(2), w(3), w(10)})
    local c = S.cosine{base = 0.4, total = 10}
    local wc = S.warmup{steps = 2, after = c}
    assert.is_true(near(0.2, wc(0)))
    assert.is_true(near(0.4, wc(1)))
    assert.is_true(near(c(0), wc(2)))
    assert.is_true(near(c(5), wc(7)))
    assert.are.equal(0.3, S.constant{base = 0.3}(99))
  end)
  it('checks its options', function()
    assert.has_error(function() S.cosine{total = 10} end)
    assert.has_error(function() S.cosine{base = 0.1, total = 0} end)
    assert.has_error(function() S.multistep{base = 0.1} end)
    assert.has_error(function() S.step{base = 0.1, size = 0} end)
    assert.has_error(function() S.warmup{steps = 2} end)
  end)
end)

describe('optim.Logger', function()
  local path
  before_each(function() path = os.tmpname() end)
  after_each(function() os.remove(path) end)
  local function read(p)
    local f = assert(io.open(p))
    local s = f:read('a')
    f:close()
    return s
  end

  it('writes a TSV header and one flushed line per add', function()
    local log = optim.Logger(path, {'epoch', 'loss', 'acc', 'note'})
    assert.are.equal('epoch\tloss\tacc\tnote\n', read(path))
    log:add{epoch = 1, loss = 0.5, acc = 81.25}
    assert.are.equal('epoch\tloss\tacc\tnote\n1\t0.5\t81.25\t\n', read(path))   -- no close needed
    log:add{2, 1 / 3, 90, 'a\tb'}
    log:close()
    assert.are.equal('epoch\tloss\tacc\tnote\n1\t0.5\t81.25\t\n2\t0.3333333\t90\ta b\n', read(path))
    local cols, rows = optim.Logger.read(path)
    assert.are.same({'epoch', 'loss', 'acc', 'note'}, cols)
    assert.are.same({epoch = 1, loss = 0.5, acc = 81.25}, rows[1])
    assert.are.equal('a b', rows[2].note)
    assert.are.equal(2, #log.rows)
  end)

  it('appends to an existing log with the same columns', function()
    optim.Logger(path, {'a', 'b'}):add{1, 2}:close()
    local log = optim.Logger(path, {'a', 'b'}, {append = true})
    log:add{a = 3, b = 4}
    log:close()
    assert.are.equal('a\tb\n1\t2\n3\t4\n', read(path))
    assert.has_error(function() optim.Logger(path, {'a', 'c'}, {append = true}) end)
  end)

  it('refuses unknown columns and bad names', function()
    local log = optim.Logger(path, {'a'})
    assert.has_error(function() log:add{b = 1} end)
    assert.has_error(function() log:add{1, 2} end)
    assert.has_error(function() optim.Logger(path, {}) end)
    assert.has_error(function() optim.Logger(path, {'x\ty'}) end)
    assert.has_error(function() optim.Logger('/nonexistent-dir/x/log.tsv', {'a'}) end)
    log:close()
  end)
end)

describe('optim.ConfusionMatrix', function()
  it('counts predictions and targets', function()
    local cm = optim.ConfusionMatrix({'cat', 'dog', 'bird'})
    cm:add(1, 1)
    cm:add(2, 1)
    cm:add(2, 2)
    cm:add(3, 3)
    cm:add(vec({0.1, 0.7, 0.2}), 2)               -- scores: predicts 2
    cm:updateValids()
    assert.are.same({{1, 1, 0}, {0, 2, 0}, {0, 0, 1}}, cm.mat:totable())
    assert.is_true(near(4 / 5, cm.totalValid))
    assert_list({0.5, 1, 1}, cm.valids:tolist())
    assert.is_true(near((0.5 + 1 + 1) / 3, cm.averageValid))
    -- VOC: TP / (row + col - TP): cat 1/2, dog 2/3, bird 1
    assert_list({0.5, 2 / 3, 1}, cm.unionvalids:tolist())
    local s = tostring(cm)
    assert.truthy(s:find('[class: dog]', 1, true))
    assert.truthy(s:find('global correct:  80.00%', 1, true))
    cm:zero()
    cm:updateValids()
    assert.are.same({0, 0, 0, 0, 0, 0, 0, 0, 0}, cm.mat:tolist())
    assert.are.equal(0, cm.totalValid)
  end)

  it('adds batches of scores and keeps top-k counters', function()
    local cm = optim.ConfusionMatrix(6, {topk = {2, 5}})
    local scores = vec({
      {0.9, 0.1, 0, 0, 0, 0},       -- target 1: top-1
      {0.5, 0.4, 0.3, 0, 0, 0},     -- target 2: rank 2
      {0.6, 0.5, 0.4, 0.3, 0.2, 0.1}, -- target 6: rank 6
      {0.1, 0.2, 0.3, 0.4, 0.5, 0.6}, -- target 2: rank 5
    })
    cm:batchAdd(scores, nd.LongTensor({1, 2, 6, 2}))
    cm:updateValids()
    assert.is_true(near(0.25, cm.totalValid))
    assert.is_true(near(0.25, cm:topk(1)))
    assert.is_true(near(0.5, cm:topk(2)))
    assert.is_true(near(0.75, cm:topk(5)))
    assert.has_error(function() cm:topk(3) end)
    assert.are.equal(1, cm.mat[2][1])
    assert.are.equal(1, cm.mat[2][6])
    assert.are.equal(1, cm.mat[6][1])
    -- predicted classes and float / list targets
    cm:batchAdd(nd.LongTensor({3, 3}), {3, 4})
    cm:batchAdd(nd.LongTensor({4}), vec({4}))
    cm:updateValids()
    assert.is_true(near(3 / 7, cm.totalValid))
    assert.truthy(tostring(cm):find('top-5 correct:  75.00%', 1, true))
    assert.has_error(function() cm:batchAdd(scores, nd.LongTensor({1, 2, 7, 1})) end)
    assert.has_error(function() cm:batchAdd(scores, nd.LongTensor({1, 2})) end)
    assert.has_error(function() cm:batchAdd(vec({{1, 2}}), {1}) end)
  end)

  it('defaults to counting top-5 and survives nd.save', function()
    local cm = optim.ConfusionMatrix(10)
    local s = {}
    for i = 1, 10 do s[i] = i end                   -- class 10 scores highest
    cm:batchAdd(vec({s}), {6})                       -- rank 4: inside the top 5
    assert.are.equal(1, cm:topk(5))
    local r = nd.deserialize(nd.serialize(cm))
    assert.are.equal(1, r:topk(5))
    assert.are.equal(1, r.mat[6][10])
    assert.truthy(tostring(r):find('global correct', 1, true))
  end)
end)
