-- The CUDA core: availability (everywhere), and on a GPU the parity of copies both ways, strided
-- copies, dtype conversions, views, fills, random ranges, element access, printing, saving,
-- memory accounting and model:cuda(). Without a GPU the parity tests are pending with the reason.
-- Runs under busted and under the GPU machine's runner (build/bin/nd scripts/spec_runner.lua).
local nd = require('nd')
local nn = require('nn')

local HAVE, WHY = nd.cuda.available()

-- A test that needs a GPU: pending (with the reason) without one.
local function gpu_it(name, fn)
  it(name, function()
    if not HAVE then
      pending(tostring(WHY))
      return
    end
    fn()
  end)
end

local function host(t) return nd.core.clone(t, nil, 'cpu') end
local function values(t) return host(t):contiguous():tolist() end

-- Max |a - b| over two tensors of the same numel (either device).
local function maxdiff(a, b)
  local x, y = values(a), values(b)
  assert.are.equal(#x, #y)
  local m = 0
  for i = 1, #x do m = math.max(m, math.abs(x[i] - y[i])) end
  return m
end

describe('nd.cuda everywhere', function()
  it('available() answers a boolean and, when false, a reason, without crashing', function()
    local ok, why = nd.cuda.available()
    assert.are.equal('boolean', type(ok))
    if not ok then
      assert.are.equal('string', type(why))
      assert.is_true(#why > 0)
    end
    local ok2, why2 = nd.cuda.isAvailable()
    assert.are.equal(ok, ok2)
    assert.are.equal(why, why2)
  end)

  it('the calls that have nothing to do without a GPU are no-ops', function()
    nd.cuda.synchronize()
    nd.cuda.emptyCache()
    nd.cuda.manualSeed(7)
    nd.manualSeed(0)
    local m = nd.cuda.memory()
    for _, k in ipairs {'allocated', 'cached', 'peak', 'mallocs', 'hits'} do assert.are.equal('integer', math.type(m[k])) end
    if not HAVE then
      assert.are.equal(0, nd.cuda.deviceCount())
      assert.are.same({0, 0, 0}, {m.allocated, m.cached, m.peak})
    else
      assert.is_true(nd.cuda.deviceCount() >= 1)
    end
  end)

  it('without a GPU, a GPU tensor cannot be made and the error says why', function()
    if HAVE then
      pending('a GPU is present')
      return
    end
    local x = nd.randn(2, 3)
    local ok, err = pcall(x.cuda, x)
    assert.is_false(ok)
    assert.matches('CUDA is not available', tostring(err))
    assert.matches(WHY, tostring(err), 1, true)
    assert.has_error(function() nd.core.empty('float32', {2}, 'cuda') end)
    assert.has_error(function() x:to('cuda') end)
    assert.has_error(function() x:type('nd.CudaTensor') end)
    local model = nn.Sequential():add(nn.Linear(3, 2))
    local mok, merr = pcall(model.cuda, model)
    assert.is_false(mok)
    assert.matches('nn.Sequential:cuda%(%): CUDA is not available', tostring(merr))
    local crit = nn.MSECriterion()
    assert.is_false((pcall(crit.cuda, crit)))
  end)

  it('host tensors answer the device queries', function()
    local x = nd.zeros(2, 2)
    assert.is_false(x:isCuda())
    assert.is_nil(x:getDevice())
    assert.are.equal(x, x:cpu())
    assert.are.equal(x, x:to('cpu'))
    assert.are.equal('cpu', (x:device()))
    assert.are.equal('cpu', nd.deviceOf(x))
    assert.are.equal('[nd.FloatTensor of size 2x2]', tostring(x):match('%[.*%]$'))
  end)

  it('rejects malformed device names', function()
    assert.error_matches(function() nd.core.empty('float32', {2}, 'gpu') end, "unknown device 'gpu'")
    assert.error_matches(function() nd.core.empty('float32', {2}, 'cuda:x') end, "unknown device 'cuda:x'")
    assert.error_matches(function() nd.randn(2):cuda('0') end, 'expected a device number')
  end)
end)

describe('nd.cuda on a GPU', function()
  gpu_it('copies to the GPU and back exactly, every dtype', function()
    for _, dt in ipairs {'float32', 'float64', 'int64', 'uint8'} do
      local x = nd.core.randint(nd.core.empty(dt, {3, 5}), 0, 200)
      local g = x:cuda()
      assert.is_true(g:isCuda())
      assert.are.equal(0, g:getDevice())
      assert.are.equal(dt, g:dtype())
      assert.are.same(x:size():totable(), g:size():totable())
      assert.are.same(x:tolist(), g:cpu():tolist())
      assert.are.equal(g, g:cuda())
    end
    local f = nd.randn(4, 3, 'float64')
    assert.are.equal('float32', f:cuda():float():dtype())
    assert.is_false(f:cuda():double():isCuda())
    assert.are.equal(0, maxdiff(f, f:cuda():double()))
  end)

  gpu_it('copies strided tensors both ways and between strided GPU tensors', function()
    local x = nd.randn(6, 7)
    local xt = x:t()                                  -- 7x6, non-contiguous
    local g = xt:cuda()                               -- strided host source
    assert.is_true(g:isContiguous())
    assert.are.equal(0, maxdiff(xt, g))
    local gx = x:cuda()
    local gt = gx:t()                                 -- strided GPU view
    assert.is_false(gt:isContiguous())
    assert.are.equal(0, maxdiff(xt, gt))              -- strided GPU -> host
    assert.are.equal(0, maxdiff(xt, gt:contiguous()))
    assert.are.equal(0, maxdiff(xt, gt:clone()))
    -- GPU strided -> GPU strided
    local dst = nd.core.zeros('float32', {6, 7}, 'cuda'):t()
    dst:copy(gt)
    assert.are.equal(0, maxdiff(xt, dst))
    -- host strided destination
    local hdst = nd.zeros(6, 7):t()
    hdst:copy(gt)
    assert.are.equal(0, maxdiff(xt, hdst))
    -- narrow / select / expanded sources
    assert.are.equal(0, maxdiff(x:narrow(2, 2, 3), gx:narrow(2, 2, 3)))
    assert.are.equal(0, maxdiff(x:select(2, 4), gx:select(2, 4)))
    local row = nd.randn(1, 7)
    assert.are.equal(0, maxdiff(row:expand(5, 7), row:cuda():expand(5, 7):contiguous()))
    -- different shapes, same count (row-major)
    local flat = nd.core.zeros('float32', {42}, 'cuda')
    flat:copy(gt)
    assert.are.same(xt:contiguous():tolist(), values(flat))
  end)

  gpu_it('copies overlapping views of one GPU storage correctly', function()
    local x = nd.range(1, 10)
    local g = x:cuda()
    g:narrow(1, 2, 9):copy(g:narrow(1, 1, 9))         -- shift right by one, overlapping
    assert.are.same({1, 1, 2, 3, 4, 5, 6, 7, 8, 9}, values(g))
  end)

  gpu_it('converts dtypes on the GPU as the CPU does', function()
    local x = nd.Tensor({{-1.5, 0, 2.25}, {3.75, 100, 255}}, 'float64')
    local g = x:cuda()
    for _, dt in ipairs {'float32', 'int64', 'uint8', 'float64'} do
      local want = nd.core.clone(x:narrow(2, 2, 2), dt)
      local got = nd.core.clone(g:narrow(2, 2, 2), dt)
      assert.is_true(got:isCuda())
      assert.are.equal(dt, got:dtype())
      assert.are.same(want:tolist(), values(got))
    end
    -- host float64 -> GPU int64 in one copy, and back to a host float32
    local gi = nd.core.zeros('int64', {2, 3}, 'cuda')
    gi:copy(x:abs())
    assert.are.same(nd.core.clone(x:abs(), 'int64'):tolist(), values(gi))
    local hf = nd.zeros(2, 3)
    hf:copy(gi)
    assert.are.same(nd.core.clone(x:abs(), 'int64'):tolist(), hf:tolist())
  end)

  gpu_it('views share GPU storage with the metadata the CPU gives', function()
    local x = nd.randn(2, 3, 4)
    local g = x:cuda()
    local function same_view(a, b)
      assert.are.same(a:size():totable(), b:size():totable())
      assert.are.same(a:stride():totable(), b:stride():totable())
      assert.are.equal(a:storageOffset(), b:storageOffset())
      assert.are.equal(0, maxdiff(a, b))
    end
    same_view(x:narrow(3, 2, 2), g:narrow(3, 2, 2))
    same_view(x:select(1, 2), g:select(1, 2))
    same_view(x:transpose(1, 3), g:transpose(1, 3))
    same_view(x:permute(3, 1, 2), g:permute(3, 1, 2))
    same_view(x:view(6, 4), g:view(6, 4))
    same_view(x:view(2, 1, 12):expand(2, 5, 12), g:view(2, 1, 12):expand(2, 5, 12))
    same_view(x:unfold(3, 2, 1), g:unfold(3, 2, 1))
    same_view(x:unsqueeze(2), g:unsqueeze(2))
    same_view(x:unsqueeze(2):squeeze(), g:unsqueeze(2):squeeze())
    same_view(x:reshape(4, 6), g:reshape(4, 6))
    assert.are.equal(g:storageId(), g:narrow(1, 1, 1):storageId())
    assert.are.equal(24, g:nElement())
    assert.are.equal(3, g:dim())
    assert.are.equal('nd.CudaTensor', g:type())
    assert.is_true(g:isCuda())
    -- writing through a view writes the base
    g:select(1, 1):fill(5)
    assert.are.equal(5, g[{1, 2, 3}])
    -- resize in place keeps the device
    local r = nd.core.zeros('float32', {4}, 'cuda')
    r:resize(2, 3)
    assert.is_true(r:isCuda())
    assert.are.same({2, 3}, r:size():totable())
  end)

  gpu_it('fills and zeroes, also strided views, every dtype', function()
    for _, dt in ipairs {'float32', 'float64', 'int64', 'uint8'} do
      local g = nd.core.zeros(dt, {4, 5}, 'cuda')
      g:fill(7)
      for _, v in ipairs(values(g)) do assert.are.equal(7, v) end
      g:t():narrow(1, 2, 2):fill(3)                   -- columns 2..3
      local h = host(g)
      assert.are.equal(3, h[{1, 2}])
      assert.are.equal(3, h[{4, 3}])
      assert.are.equal(7, h[{1, 1}])
      assert.are.equal(7, h[{4, 4}])
      g:zero()
      for _, v in ipairs(values(g)) do assert.are.equal(0, v) end
    end
    local ok, err = pcall(function() local e = nd.Tensor(); return e:cuda() end)
    assert.is_true(ok, tostring(err))
  end)

  gpu_it('reads and writes single elements (through the host)', function()
    local g = nd.zeros(3, 4):cuda()
    g[{2, 3}] = 4.5
    g[3][1] = -2
    assert.are.equal(4.5, g[{2, 3}])
    assert.are.equal(-2, g[3][1])
    assert.are.equal(4.5, g:select(1, 2)[3])
    assert.are.same({0, 0, 4.5, 0}, g[2]:totable())
    local one = nd.Tensor({42}):cuda()
    assert.are.equal(42, one:item())
  end)

  gpu_it('draws random numbers in range, reproducibly from the seed', function()
    nd.cuda.manualSeed(123)
    local u = nd.core.empty('float32', {100000}, 'cuda'):uniform(-2, 3)
    local hu = host(u)
    local lo, hi = hu:min(), hu:max()
    assert.is_true(lo >= -2 and hi < 3, string.format('uniform range [%g, %g]', lo, hi))
    assert.is_true(math.abs(hu:mean() - 0.5) < 0.05, 'uniform mean ' .. hu:mean())
    nd.cuda.manualSeed(123)
    local u2 = nd.core.empty('float32', {100000}, 'cuda'):uniform(-2, 3)
    assert.are.equal(0, maxdiff(u, u2))
    local u3 = nd.core.empty('float32', {100000}, 'cuda'):uniform(-2, 3)
    assert.is_true(maxdiff(u, u3) > 0, 'the next fill differs')
    local n = host(nd.core.empty('float64', {200000}, 'cuda'):normal(1, 2))
    assert.is_true(math.abs(n:mean() - 1) < 0.03, 'normal mean ' .. n:mean())
    assert.is_true(math.abs(n:std() - 2) < 0.03, 'normal std ' .. n:std())
    local r = host(nd.core.empty('int64', {10000}, 'cuda'):random(3, 7))
    assert.are.equal(3, r:min())
    assert.are.equal(7, r:max())
    local b = host(nd.core.empty('float32', {100000}, 'cuda'):bernoulli(0.25))
    assert.is_true(math.abs(b:mean() - 0.25) < 0.01, 'bernoulli mean ' .. b:mean())
    -- strided destination: only the view changes
    local g = nd.core.zeros('float32', {4, 6}, 'cuda')
    g:t():narrow(1, 1, 2):uniform(1, 2)
    local h = host(g)
    assert.are.equal(0, h[{1, 3}])
    assert.is_true(h[{1, 1}] >= 1 and h[{4, 2}] >= 1)
  end)

  gpu_it('prints GPU tensors with their values and device', function()
    local g = nd.Tensor({{1, 2, 3}, {4, 5, 6}}):cuda()
    local s = tostring(g)
    assert.matches('%[nd.CudaTensor of size 2x3 on cuda:0%]', s)
    assert.matches(' 4 5 6', s)
  end)

  gpu_it('saves GPU tensors as host data, views still shared', function()
    local g = nd.randn(4, 5):cuda()
    local path = os.tmpname()
    nd.save(path, {a = g, b = g:narrow(1, 2, 2)})
    local back = nd.load(path)
    os.remove(path)
    assert.is_false(back.a:isCuda())
    assert.are.equal(0, maxdiff(g, back.a))
    assert.are.equal(back.a:storageId(), back.b:storageId())
  end)

  gpu_it('caches device memory and gives it back on emptyCache', function()
    collectgarbage()
    nd.cuda.emptyCache()
    local m0 = nd.cuda.memory()
    local t = nd.core.empty('float32', {1000, 1000}, 'cuda')
    local m1 = nd.cuda.memory()
    assert.is_true(m1.allocated - m0.allocated >= 4e6)
    assert.is_true(m1.cached >= m1.allocated)
    t:free()
    local m2 = nd.cuda.memory()
    assert.are.equal(m0.allocated, m2.allocated)
    assert.are.equal(m1.cached, m2.cached)          -- still cached
    local t2 = nd.core.empty('float32', {999, 1001}, 'cuda')  -- same size class: reused
    local m3 = nd.cuda.memory()
    assert.are.equal(m2.mallocs, m3.mallocs)
    assert.is_true(m3.hits > m2.hits)
    t2:free()
    nd.cuda.emptyCache()
    assert.is_true(nd.cuda.memory().cached < m1.cached)
    assert.is_true(nd.cuda.memory().peak >= m1.allocated)
  end)

  gpu_it('reports an out-of-memory request with its size', function()
    local ok, err = pcall(nd.core.empty, 'float32', {2 ^ 40}, 'cuda')  -- 4 TiB
    assert.is_false(ok)
    assert.matches('out of memory allocating', tostring(err))
    assert.matches('MiB on cuda:0', tostring(err))
  end)

  gpu_it('names both devices when an op mixes them', function()
    local a, b = nd.ones(3):cuda(), nd.ones(3)
    local ok, err = pcall(function() return a:add(b) end)
    assert.is_false(ok)
    local e = tostring(err):lower()
    assert.is_true(e:find('cuda:0', 1, true) ~= nil and e:find('cpu', 1, true) ~= nil, tostring(err))
  end)

  gpu_it('model:cuda() moves every parameter, gradient and buffer; float() brings them back', function()
    local model = nn.Sequential()
      :add(nn.SpatialConvolution(3, 4, 3, 3, 1, 1, 1, 1))
      :add(nn.SpatialBatchNormalization(4))
      :add(nn.ReLU(true))
      :add(nn.View(4 * 4 * 4))
      :add(nn.Linear(64, 2))
    local w0 = model:getParameters():clone()
    model.output = nd.randn(2, 2)                   -- a cached output is dropped
    model:cuda()
    local params, grads = model:parameters()
    for i = 1, #params do
      assert.is_true(params[i]:isCuda(), 'parameter ' .. i)
      assert.is_true(grads[i]:isCuda(), 'gradient ' .. i)
    end
    for _, m in ipairs(model:listModules()) do                -- buffers (running statistics, ...)
      for k, v in pairs(m) do
        if nd.isTensor(v) and v:nElement() > 0 then assert.is_true(v:isCuda(), nd.typename(m) .. '.' .. k) end
      end
    end
    assert.are.equal(0, model.output:nElement())
    local p, g = model:getParameters()
    assert.is_true(p:isCuda() and g:isCuda())
    assert.are.equal(0, maxdiff(w0, p))
    local p2, g2 = model:getParameters()            -- idempotent after the move
    assert.are.equal(p, p2)
    assert.are.equal(g, g2)
    model:float()
    for _, t in ipairs(model:parameters()) do assert.is_false(t:isCuda()) end
    assert.are.equal(0, maxdiff(w0, (model:getParameters())))
    local crit = nn.CrossEntropyCriterion():cuda()
    assert.is_true(crit ~= nil)
  end)

  gpu_it('optim.sgd steps GPU parameters like CPU ones', function()
    local optim = require('optim')
    local x0 = nd.randn(10)
    local grad = nd.randn(10)
    local function run(x, gr)
      local cfg, st = {learningRate = 0.1, momentum = 0.9, weightDecay = 1e-3}, {}
      for _ = 1, 3 do
        optim.sgd(function() return 0, gr:clone() end, x, cfg, st)
      end
      return x
    end
    local cpu = run(x0:clone(), grad)
    local gpu = run(x0:cuda(), grad:cuda())
    assert.is_true(gpu:isCuda())
    assert.is_true(maxdiff(cpu, gpu) < 1e-5)
  end)
end)
