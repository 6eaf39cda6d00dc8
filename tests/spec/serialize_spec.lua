-- nd.save / nd.load / nd.serialize / nd.deserialize: round trips, shared references and storages,
-- class objects, refusals, damaged and foreign files, atomic writes.
package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path
package.cpath = (os.getenv('ND_BUILD') or 'build') .. '/lib/?.so;' .. package.cpath
local nd = require('nd')
local core = nd.core

local function roundtrip(v) return nd.deserialize(nd.serialize(v)) end

-- A fresh empty directory for file tests.
local function tmpdir()
  local base = os.tmpname()
  os.remove(base)
  assert(os.execute('mkdir -p "' .. base .. '"'))
  return base
end
local function listdir(dir)
  local names = {}
  local p = io.popen('ls -A "' .. dir .. '"')
  for line in p:lines() do names[#names + 1] = line end
  p:close()
  table.sort(names)
  return names
end
local function rmdir(dir) os.execute('rm -rf "' .. dir .. '"') end
local function readfile(path)
  local f = assert(io.open(path, 'rb'))
  local s = f:read('a')
  f:close()
  return s
end
local function writefile(path, s)
  local f = assert(io.open(path, 'wb'))
  f:write(s)
  f:close()
end

-- A tensor of dtype dt and sizes filled with 1, 2, 3, ... (row-major).
local function counting(dt, ...)
  local t = core.empty(dt, {...})
  local n = t:nElement()
  local flat = {}
  for i = 1, n do flat[i] = i % 250 end
  return core.fromflat(t, flat)
end

describe('nd.serialize', function()
  it('round-trips scalars and strings exactly', function()
    local values = {true, false, 0, -1, 42, math.maxinteger, math.mininteger, 0.1, -2.5, 1e300, 5e-324,
      math.huge, -math.huge, '', 'hello', 'a\0b\255\n', string.rep('x', 100000)}
    for _, v in ipairs(values) do
      local r = roundtrip(v)
      assert.are.equal(v, r)
      assert.are.equal(math.type(v), math.type(r))
    end
    assert.is_nil(roundtrip(nil))
    local nan = roundtrip(0 / 0)
    assert.is_true(nan ~= nan)
    assert.are.equal('-0.0', tostring(roundtrip(-0.0)))
    assert.are.equal('float', math.type(roundtrip(3.0)))
  end)

  it('round-trips nested tables with shared subtables, cycles and table keys', function()
    local shared = {x = 1}
    local t = {a = shared, b = {shared, shared}, list = {1, 2, 3, nil, 5}, [true] = 'yes', [2.5] = 'float key'}
    t.self = t
    t.b.parent = t
    local key = {k = 'as key'}
    t[key] = key
    local r = roundtrip(t)
    assert.are.equal(r, r.self)
    assert.are.equal(r, r.b.parent)
    assert.are.equal(r.a, r.b[1])
    assert.are.equal(r.a, r.b[2])
    assert.are.equal(1, r.a.x)
    assert.are.equal(5, r.list[5])
    assert.is_nil(r.list[4])
    assert.are.equal('yes', r[true])
    assert.are.equal('float key', r[2.5])
    local found = 0
    for k, v in pairs(r) do
      if type(k) == 'table' then
        found = found + 1
        assert.are.equal(k, v)
        assert.are.equal('as key', k.k)
      end
    end
    assert.are.equal(1, found)
  end)

  it('round-trips tensors of every dtype', function()
    for _, dt in ipairs {'float32', 'float64', 'int64', 'uint8'} do
      local t = counting(dt, 3, 4, 5)
      local r = roundtrip(t)
      assert.are.equal(dt, r:dtype())
      assert.are.same({3, 4, 5}, r:size():totable())
      assert.are.same(t:tolist(), r:tolist())
    end
    local big = nd.Tensor({-1.5, 3.25, 1e30}, 'float64')
    assert.are.same({-1.5, 3.25, 1e30}, roundtrip(big):tolist())
    local l = nd.LongTensor({math.maxinteger, math.mininteger, 0})
    assert.are.same({math.maxinteger, math.mininteger, 0}, roundtrip(l):tolist())
  end)

  it('keeps the layout of non-contiguous views', function()
    local base = counting('float32', 4, 6)
    local views = {
      base:t(),
      base:narrow(2, 2, 3),
      base:select(2, 4),
      base:narrow(1, 2, 2):t(),
      base:unfold(2, 2, 2),
      nd.Tensor({1, 2, 3}):view(3, 1):expand(3, 4),
    }
    for _, v in ipairs(views) do
      local r = roundtrip(v)
      assert.are.same(v:size():totable(), r:size():totable())
      assert.are.same(v:stride():totable(), r:stride():totable())
      assert.are.equal(v:storageOffset(), r:storageOffset())
      assert.are.same(v:tolist(), r:tolist())
      assert.are.equal(v:isContiguous(), r:isContiguous())
    end
  end)

  it('keeps views of one storage sharing it', function()
    local a = counting('float64', 3, 4)
    local t = {a = a, at = a:t(), row = a:select(1, 2), same = a}
    local r = roundtrip(t)
    assert.are.equal(r.a, r.same)                       -- the same tensor comes back once
    assert.are.equal(core.storageid(r.a), core.storageid(r.at))
    assert.are.equal(core.storageid(r.a), core.storageid(r.row))
    assert.are_not.equal(core.storageid(a), core.storageid(r.a))
    r.a[2][3] = 1000                                    -- written through one view ...
    assert.are.equal(1000, r.at[3][2])                  -- ... seen through the others
    assert.are.equal(1000, r.row[3])
    assert.are.equal(7, a[2][3])                        -- and not in the original
    -- two separate storages stay separate
    local b = a:clone()
    local r2 = roundtrip({a, b})
    assert.are_not.equal(core.storageid(r2[1]), core.storageid(r2[2]))
  end)

  it('writes a whole storage for a narrow view (Torch7 semantics)', function()
    local a = counting('float32', 100)
    local v = a:narrow(1, 51, 10)
    local r = roundtrip(v)
    assert.are.equal(51, r:storageOffset())
    assert.are.equal(100, core.storagesize(r))
    assert.are.same(v:tolist(), r:tolist())
  end)

  it('round-trips empty tensors with their dtype', function()
    local r = roundtrip({nd.Tensor(), nd.LongTensor()})
    assert.are.equal(0, r[1]:nElement())
    assert.are.equal('float32', r[1]:dtype())
    assert.are.equal('int64', r[2]:dtype())
  end)

  it('round-trips sizes', function()
    local s = roundtrip(nd.Tensor(2, 3):size())
    assert.are.equal(nd.Size, getmetatable(s))
    assert.are.equal('2x3', tostring(s))
  end)

  it('refuses functions, coroutines, userdata and foreign metatables with the path', function()
    local ok, err = pcall(nd.serialize, {model = {layers = {1, print}}})
    assert.is_false(ok)
    assert.truthy(err:find('cannot save a function at root.model.layers[2]', 1, true))
    assert.has_error(function() nd.serialize({co = coroutine.create(print)}) end)
    assert.has_error(function() nd.serialize({f = io.stdout}) end)
    local ok2, err2 = pcall(nd.serialize, setmetatable({}, {}))
    assert.is_false(ok2)
    assert.truthy(err2:find('not a registered class', 1, true))
  end)
end)

describe('class objects', function()
  local Point = nd.class('sspec.Point')
  function Point:__init(x, y) self.x, self.y = x, y end
  function Point:norm2() return self.x * self.x + self.y * self.y end
  local Point3, parent = nd.class('sspec.Point3', 'sspec.Point')
  function Point3:__init(x, y, z) parent.__init(self, x, y); self.z = z end
  function Point3:norm2() return parent.norm2(self) + self.z * self.z end

  it('come back with their class and methods, shared and cyclic', function()
    local p = Point3(1, 2, 3)
    p.me = p
    p.w = nd.Tensor({1, 2})
    local r = roundtrip({p, p, Point(3, 4)})
    assert.are.equal(Point3, getmetatable(r[1]))
    assert.are.equal(r[1], r[2])
    assert.are.equal(r[1], r[1].me)
    assert.are.equal(14, r[1]:norm2())
    assert.are.equal(25, r[3]:norm2())
    assert.is_true(nd.isinstance(r[1], 'sspec.Point'))
    assert.are.same({1, 2}, r[1].w:tolist())
  end)

  it('call read(self, version) with the saved version to upgrade old objects', function()
    local V = nd.class('sspec.Versioned')
    function V:__init() self.old = 1 end
    local s = nd.serialize({V(), V()})
    V.__version = 2
    local seen = {}
    function V:read(version)
      seen[#seen + 1] = version
      if version < 2 then self.new, self.old = self.old, nil end
    end
    local r = nd.deserialize(s)
    assert.are.same({1, 1}, seen)
    assert.are.equal(1, r[1].new)
    assert.is_nil(r[1].old)
    r = roundtrip(r)
    assert.are.same({1, 1, 2, 2}, seen)
    assert.are.equal(1, r[2].new)
  end)

  it('calls read hooks children first', function()
    local Outer = nd.class('sspec.Outer')
    local Inner = nd.class('sspec.Inner')
    local order = {}
    function Outer:read() order[#order + 1] = 'outer:' .. tostring(self.inner.ready) end
    function Inner:read() self.ready = true; order[#order + 1] = 'inner' end
    local o = Outer()
    o.inner = Inner()
    roundtrip(o)
    assert.are.same({'inner', 'outer:true'}, order)
  end)

  it('with an unknown class name give a clear error', function()
    local G = nd.class('sspecgone.Gone')
    local s = nd.serialize({G()})
    nd.classes['sspecgone.Gone'] = nil
    local ok, err = pcall(nd.deserialize, s)
    assert.is_false(ok)
    assert.truthy(err:find("unknown class 'sspecgone.Gone'", 1, true))
  end)
end)

describe('nd.save and nd.load', function()
  local dir
  before_each(function() dir = tmpdir() end)
  after_each(function() rmdir(dir) end)

  local function sample()
    local w = counting('float32', 4, 3)
    return {
      epoch = 7, lr = 0.05, name = 'run',
      model = {weight = w, wt = w:t(), bias = counting('float64', 3), labels = counting('int64', 5),
        mask = counting('uint8', 2, 2)},
      optim = {t = 12, momentum = {w:clone()}},
      rng = nd.getRNGState(),
    }
  end

  it('round-trips a checkpoint through a file, leaving no temp file', function()
    local path = dir .. '/ckpt.nd'
    local ck = sample()
    nd.save(path, ck)
    assert.are.same({'ckpt.nd'}, listdir(dir))
    local r = nd.load(path)
    assert.are.equal(7, r.epoch)
    assert.are.equal(ck.rng, r.rng)
    assert.are.same(ck.model.weight:tolist(), r.model.weight:tolist())
    assert.are.equal(core.storageid(r.model.weight), core.storageid(r.model.wt))
    assert.are.same(ck.model.labels:tolist(), r.model.labels:tolist())
    assert.are.equal('uint8', r.model.mask:dtype())
    nd.save(path, {replaced = true})                   -- overwrite in place
    assert.is_true(nd.load(path).replaced)
    assert.are.same({'ckpt.nd'}, listdir(dir))
  end)

  it('keeps the old file when a save fails', function()
    local path = dir .. '/ckpt.nd'
    nd.save(path, {good = 1})
    local ok, err = pcall(nd.save, path, {bad = function() end})
    assert.is_false(ok)
    assert.truthy(err:find('cannot save a function', 1, true))
    assert.are.same({'ckpt.nd'}, listdir(dir))
    assert.are.equal(1, nd.load(path).good)
    local ok2 = pcall(nd.save, dir .. '/no/such/dir/x.nd', {1})
    assert.is_false(ok2)
    assert.are.same({'ckpt.nd'}, listdir(dir))
  end)

  it('gives a clean error for every truncation', function()
    local path = dir .. '/ckpt.nd'
    nd.save(path, sample())
    local s = readfile(path)
    local cut = dir .. '/cut.nd'
    local n = 0
    for len = 0, #s - 1 do
      -- every length up to 400 bytes, then a spread of lengths through the tensor data
      if len < 400 or len % 37 == 0 or len > #s - 20 then
        writefile(cut, s:sub(1, len))
        local ok, err = pcall(nd.load, cut)
        assert.is_false(ok)
        assert.are.equal('string', type(err))
        assert.truthy(err:find('nd.load: ' .. cut .. ' is truncated or corrupt', 1, true), err)
        n = n + 1
      end
    end
    assert.is_true(n > 400)
    writefile(cut, s .. 'extra')
    local ok, err = pcall(nd.load, cut)
    assert.is_false(ok)
    assert.truthy(err:find('truncated or corrupt', 1, true))
  end)

  it('never crashes on corrupted bytes', function()
    local s = nd.serialize(sample())
    local rng = 12345
    local function rand(n) rng = (rng * 1103515245 + 12345) % 2147483648; return rng % n + 1 end
    for _ = 1, 300 do
      local b = {s:byte(1, -1)}
      for _ = 1, rand(4) do b[rand(#b - 9) + 9] = rand(256) - 1 end
      local damaged = string.char(table.unpack(b))
      local ok, err = pcall(nd.deserialize, damaged)
      if not ok then assert.are.equal('string', type(err)) end
    end
  end)

  it('recognises foreign files and newer format versions', function()
    local path = dir .. '/foreign.txt'
    writefile(path, 'this is not a checkpoint, just some text\n')
    local ok, err = pcall(nd.load, path)
    assert.is_false(ok)
    assert.truthy(err:find('nd.load: ' .. path .. ' is not an nd file', 1, true))
    writefile(path, 'NDSER' .. string.pack('<I4', 99) .. '\0')
    ok, err = pcall(nd.load, path)
    assert.is_false(ok)
    assert.truthy(err:find('format version 99', 1, true))
    ok, err = pcall(nd.load, dir .. '/missing.nd')
    assert.is_false(ok)
    assert.truthy(err:find('nd.load: cannot open', 1, true))
    ok, err = pcall(nd.deserialize, 'NDS')
    assert.is_false(ok)
    assert.truthy(err:find('truncated or corrupt', 1, true))
  end)

  it('starts files with the magic and the format version', function()
    local s = nd.serialize(1)
    assert.are.equal('NDSER', s:sub(1, 5))
    assert.are.equal(1, string.unpack('<I4', s, 6))
  end)

  it('handles a large tensor quickly', function()
    local t = nd.randn(1000, 1000)
    local path = dir .. '/big.nd'
    local t0 = os.clock()
    nd.save(path, {w = t})
    local r = nd.load(path)
    assert.is_true(os.clock() - t0 < 2)
    assert.are.equal(t:storageOffset(), r.w:storageOffset())
    assert.are.equal(core.tobytes(t), core.tobytes(r.w))
  end)
end)
