-- Bad input gets a Lua error naming the op or module (and the shapes), never a crash, a hang or
-- an absurd allocation: regressions found by fuzzing nd.core and the nn / optim / data entry
-- points, and a small sweep of bad arguments over every nd.core function.
local nd = require('nd')
local nn = require('nn')
local core = nd.core

-- Calls f, expects an error matching every pattern (plain substrings).
local function fails_with(f, ...)
  local ok, err = pcall(f)
  assert.is_false(ok, 'expected an error')
  err = tostring(err)
  for _, s in ipairs({...}) do
    assert.is_truthy(err:find(s, 1, true), string.format('error %q does not mention %q', err, s))
  end
  return err
end

local function empty() return core.empty('float32', {}) end

describe('robustness regressions', function()
  it('matrix products reject an empty added tensor (was a segfault)', function()
    local a, b = nd.randn(2, 2), nd.randn(2, 2)
    fails_with(function() core.addmm(nil, 1, empty(), 1, a, b) end, 'addmm', 'empty', '2x2')
    fails_with(function() core.addmv(nil, 1, empty(), 1, a, nd.randn(2)) end, 'addmv', 'empty')
    fails_with(function() core.addr(nil, 1, empty(), 1, nd.randn(2), nd.randn(2)) end, 'addr', 'empty')
    fails_with(function() core.baddbmm(nil, 1, empty(), 1, nd.randn(2, 2, 2), nd.randn(2, 2, 2)) end, 'baddbmm', 'empty')
    fails_with(function() nd.addmm(nd.Tensor(), nd.randn(2, 3), nd.randn(3, 2)) end, 'addmm')
  end)

  it('expand refuses the empty tensor and non-positive sizes (was a segfault / negative sizes)', function()
    fails_with(function() core.expand(empty(), {2, 3}) end, 'expand', 'empty')
    fails_with(function() nd.Tensor():expand(2, 3) end, 'expand')
    fails_with(function() core.expand(core.empty('float32', {1, 3}), {0, 3}) end, 'expand', '1x3', 'size 0')
    fails_with(function() core.expand(core.empty('float32', {1, 3}), {-2, 3}) end, 'expand', 'size -2')
    fails_with(function() core.expand(nd.randn(2, 3), {0, 2, 3}) end, 'expand', '2x3')
    assert.are.same({4, 3}, nd.randn(1, 3):expand(4, 3):size():totable())
    assert.are.same({1, 3}, core.size(core.expand(core.empty('float32', {1, 3}), {-1, 3})))
  end)

  it('narrow refuses a zero length (made a 0-size dimension)', function()
    fails_with(function() core.narrow(nd.randn(2, 3), 1, 1, 0) end, 'narrow', 'length 0', '2x3')
    fails_with(function() nd.randn(2, 3):narrow(2, 4, 0) end, 'narrow')
    assert.are.equal(2, nd.randn(2, 3):narrow(2, 2, 2):size(2))
  end)

  it('element access on the empty tensor is an error (was a segfault)', function()
    fails_with(function() core.get(empty()) end, 'get', 'empty tensor')
    fails_with(function() core.setelem(empty(), 1) end, 'setelem', 'empty tensor')
  end)

  it('topk with k = 0 is an error (was a segfault)', function()
    fails_with(function() core.topk(nil, nil, nd.randn(2, 4), 0, 2, false) end, 'topk', 'k = 0', '2x4')
    fails_with(function() nd.randn(2, 4):topk(0) end, 'topk')
    local v = nd.randn(2, 4):topk(1)
    assert.are.same({2, 1}, v:size():totable())
  end)

  it('nn.DeconvLinear / nn.Deconv reject bad sizes and options (NaN size hung)', function()
    fails_with(function() nn.DeconvLinear(0 / 0, 3) end, 'nn.DeconvLinear', 'positive integer')
    fails_with(function() nn.DeconvLinear(4, 3, {block = 0}) end, 'nn.DeconvLinear', 'block')
    fails_with(function() nn.DeconvLinear(4, 3, {block = -1}) end, 'nn.DeconvLinear', 'block')
    fails_with(function() nn.Deconv(0 / 0, 4, 3) end, 'nn.Deconv', 'positive integer')
    fails_with(function() nn.Deconv(4, 4, 0) end, 'nn.Deconv')
    fails_with(function() nn.Deconv(4, 4, 3, {groups = 0}) end, 'nn.Deconv', 'groups')
    fails_with(function() nn.Deconv(4, 4, 3, 3, 1, 1, 1, 1, {block = -2}) end, 'nn.Deconv', 'block')
    assert.are.same({3, 3}, nn.DeconvLinear(4, 3, {block = 2}):forward(nd.randn(3, 4)):size():totable())
    fails_with(function() nn.Deconv(4, 4, 3, 3, 1, 1, 1, 1, {block = 2.5}) end, 'nn.Deconv', 'block')
    -- integral floats (nIn / 2 in Lua 5.4) are sizes, stored as integers
    local m = nn.Deconv(8 / 2, 4.0, 3, 3, 1, 1, 1, 1, {block = 4.0})
    assert.are.equal('integer', math.type(m.nInputPlane))
    assert.are.equal(4, m.block)
    assert.are.equal(8, nn.DeconvLinear(16 / 2, 3).nIn)
  end)

  it('a constructor error names the calling line, not a line of the class machinery', function()
    local ok, err = pcall(function()
      local m = nn.Deconv(nil, 4, 3)
      return m
    end)
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find('robustness_spec.lua:', 1, true), err)
    assert.is_nil(tostring(err):find('class.lua', 1, true), err)
    assert.is_truthy(tostring(err):find('nn.Deconv', 1, true), err)
  end)

  it('nd.range / arange / linspace fail at once for absurd lengths (built a Lua table first)', function()
    local t0 = os.clock()
    fails_with(function() nd.linspace(0, 1, 1 << 40) end, 'nd.linspace')
    fails_with(function() nd.range(1, 1e15) end, 'nd.range')
    fails_with(function() nd.arange(1 << 40) end, 'nd.range')
    assert.is_true(os.clock() - t0 < 2)
    assert.are.same({1, 2, 3}, {nd.range(1, 3)[1], nd.range(1, 3)[2], nd.range(1, 3)[3]})
    assert.are.equal(70000, nd.range(1, 70000, 1, 'int64')[70000])
    assert.are.equal(0.5, nd.linspace(0, 1, 3)[2])
  end)

  it('a lone module names itself in errors from the ops it calls', function()
    fails_with(function() nn.Linear(4, 3):forward(nd.LongTensor(2, 4):fill(1)) end, 'nn.Linear', 'addmm')
    local conv = nn.SpatialConvolution(3, 4, 3, 3, 1, 1, 1, 1)
    conv:forward(nd.randn(2, 3, 6, 6))
    fails_with(function() conv:backward(nd.randn(2, 3, 6, 6), nd.randn(3, 6, 6)) end, 'nn.SpatialConvolution', '2x4x6x6')
    local bn = nn.BatchNormalization(4)
    bn:forward(nd.randn(3, 4))
    fails_with(function() bn:backward(nd.randn(3, 4), nd.randn(3, 5)) end, 'nn.BatchNormalization')
    fails_with(function() nn.ChannelDeconv(2):forward(nd.LongTensor(2, 5, 4, 4):fill(1)) end, 'nn.ChannelDeconv', '2x5x4x4')
    -- inside a container the path is unchanged
    local s = nn.Sequential():add(nn.Linear(4, 4)):add(nn.Linear(3, 2))
    fails_with(function() s:forward(nd.randn(2, 4)) end, 'nn.Sequential(2) > nn.Linear')
  end)
end)

describe('robustness sweep', function()
  -- Every nd.core function (GPU and global-state ones aside) with a few bad argument lists must
  -- return or raise, never crash the process.
  local skip = {now = true, setnumthreads = true, setindex = true, metatable = true, setrngstate = true,
                manualseed = true, free = true, loader = true}
  local function values()
    return {
      nil, 0, -1, 'x', {}, empty(), nd.randn(2, 3), nd.LongTensor(2, 3):fill(1), nd.ByteTensor(2, 3):fill(1),
      nd.DoubleTensor(2, 3):fill(1), nd.randn(3, 2):t(), nd.randn(1, 3):expand(2, 3), nd.randn(1), nd.randn(2, 3, 4, 4),
    }
  end
  it('survives bad arguments to every nd.core function', function()
    local names = {}
    for k, f in pairs(core) do
      if type(f) == 'function' and not skip[k] and not k:match('^cuda') then names[#names + 1] = k end
    end
    table.sort(names)
    local calls = 0
    for _, name in ipairs(names) do
      local n = 14
      for i = 1, n do
        local v = values()
        pcall(core[name], v[i])                                  -- one bad argument
        pcall(core[name], v[i], v[i], v[i], v[i])                -- the same one everywhere (aliasing)
        local w = values()
        pcall(core[name], nil, v[i], w[(i % n) + 1], 2, 2, 1, 1, 0, 0) -- out, two operands, conv-like numbers
        calls = calls + 3
      end
    end
    assert.is_true(calls > 1000)
  end)

  it('gives module-named errors for bad inputs to nn modules', function()
    local mods = {
      {function() return nn.Linear(4, 3) end, {2, 4}, 'nn.Linear'},
      {function() return nn.SpatialConvolution(3, 4, 3, 3, 1, 1, 1, 1) end, {2, 3, 6, 6}, 'nn.SpatialConvolution'},
      {function() return nn.Deconv(4, 4, 3, 3, 1, 1, 1, 1, {block = 2}) end, {2, 4, 6, 6}, 'nn.Deconv'},
      {function() return nn.DeconvLinear(4, 3, {block = 2}) end, {3, 4}, 'nn.DeconvLinear'},
      {function() return nn.ChannelDeconv(2) end, {2, 5, 4, 4}, 'nn.ChannelDeconv'},
      {function() return nn.SpatialBatchNormalization(3) end, {2, 3, 4, 4}, 'nn.SpatialBatchNormalization'},
      {function() return nn.SpatialMaxPooling(2, 2, 2, 2) end, {2, 3, 4, 4}, 'nn.SpatialMaxPooling'},
      {function() return nn.SpatialAveragePooling(2, 2, 2, 2) end, {2, 3, 4, 4}, 'nn.SpatialAveragePooling'},
      {function() return nn.LogSoftMax() end, {2, 3}, 'nn.LogSoftMax'},
    }
    local bad = {
      function() return nil end, function() return 'x' end, function() return nd.Tensor() end,
      function(s) return nd.LongTensor(table.unpack(s)):fill(1) end, function(s) return nd.randn(7, table.unpack(s)) end,
    }
    for _, m in ipairs(mods) do
      for _, b in ipairs(bad) do
        local mod = m[1]()
        local ok, err = pcall(mod.forward, mod, b(m[2]))
        if not ok then assert.is_truthy(tostring(err):find(m[3], 1, true), tostring(err)) end
        mod = m[1]()
        mod:forward(nd.randn(table.unpack(m[2])))
        ok, err = pcall(mod.backward, mod, nd.randn(table.unpack(m[2])), b(m[2]))
        if not ok then assert.is_truthy(tostring(err):find(m[3], 1, true), tostring(err)) end
      end
    end
  end)

  it('nd.deserialize rejects truncated and corrupted data', function()
    for _, obj in ipairs({nd.randn(3, 4), nn.Linear(3, 2), nd.LongTensor({1, 2})}) do
      local full = nd.serialize(obj)
      for _, s in ipairs({'', 'x', full:sub(1, #full // 2), full:sub(1, #full - 1), full:sub(2), full:reverse()}) do
        assert.is_false((pcall(nd.deserialize, s)))
      end
      for k = 1, 20 do
        local i = (k * 7919) % #full + 1
        pcall(nd.deserialize, full:sub(1, i - 1) .. string.char((full:byte(i) + k * 37) % 256) .. full:sub(i + 1))
      end
    end
    fails_with(function() nd.load('/nonexistent/robustness.t7') end, 'nonexistent')
  end)
end)
