package.path = 'lua/?.lua;lua/?/init.lua;./?.lua;./?/init.lua;' .. package.path
package.cpath = (os.getenv('ND_BUILD') or 'build') .. '/lib/?.so;' .. package.cpath
local nd = require('nd')
local data = require('data')

-- The data API on small files generated here (string.pack, independent of the C writers):
-- never the real downloads, so CI does not need them.

local tmp = os.tmpname()
os.remove(tmp)
assert(os.execute('mkdir -p ' .. tmp))

local function write(path, s)
  local f = assert(io.open(path, 'wb'))
  f:write(s)
  f:close()
end

local function errmsg(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok)
  return tostring(err)
end

-- A deterministic byte for image n, channel/pixel k.
local function px(n, k) return (n * 37 + k * 11 + (k // 7)) % 256 end

-- IDX images (n x 28 x 28) and labels written by hand.
local function write_mnist(dir, prefix, labels)
  local n = #labels
  local img = {string.pack('>I4I4I4I4', 0x803, n, 28, 28)}
  for i = 1, n do
    local row = {}
    for k = 0, 783 do row[#row + 1] = string.char(px(i, k)) end
    img[#img + 1] = table.concat(row)
  end
  write(dir .. '/' .. prefix .. '-images-idx3-ubyte', table.concat(img))
  local lab = {string.pack('>I4I4', 0x801, n)}
  for i = 1, n do lab[#lab + 1] = string.char(labels[i]) end
  write(dir .. '/' .. prefix .. '-labels-idx1-ubyte', table.concat(lab))
end

-- CIFAR records: label byte(s) then 3072 pixel bytes.
local function write_cifar(path, labels, coarse, base)
  local out = {}
  for i = 1, #labels do
    if coarse then out[#out + 1] = string.char(coarse[i]) end
    out[#out + 1] = string.char(labels[i])
    local p = {}
    for k = 0, 3071 do p[#p + 1] = string.char(px(base + i, k)) end
    out[#out + 1] = table.concat(p)
  end
  write(path, table.concat(out))
end

local function dir(name)
  local d = tmp .. '/' .. name
  assert(os.execute('mkdir -p ' .. d))
  return d
end

describe('data', function()
  teardown(function() os.execute('rm -rf ' .. tmp) end)

  describe('data.load', function()
    it('reads MNIST IDX files with 1-based labels and the spec constants', function()
      local d = dir('mnist')
      write_mnist(d, 'train', {5, 0, 4, 1, 9})
      write_mnist(d, 't10k', {7, 2, 1})
      local ds = data.load('mnist', 'train', {dir = d})
      assert.are.equal('uint8', ds.images:dtype())
      assert.are.same({5, 28, 28}, ds.images:size():totable())
      assert.are.equal('int64', ds.labels:dtype())
      assert.are.same({6, 1, 5, 2, 10}, ds.labels:tolist())
      assert.are.equal(px(2, 28 * 3 + 4), ds.images[2][4][5])
      assert.are.same({0.1307}, ds.mean)
      assert.are.same({0.3081}, ds.std)
      assert.are.equal(10, #ds.classes)
      assert.are.equal(5, ds.n)
      assert.are.equal('train', ds.split)
      local t = data.load('mnist', 'test', {dir = d})
      assert.are.same({8, 3, 2}, t.labels:tolist())
    end)

    it('reads gzip-compressed IDX files and Fashion-MNIST (ToTensor only)', function()
      local d = dir('fashion')
      write_mnist(d, 'train', {9, 0, 0, 3})
      -- gzip them through the C writer: read raw, write .gz, remove raw
      for _, f in ipairs({'train-images-idx3-ubyte', 'train-labels-idx1-ubyte'}) do
        data.write_idx(d .. '/' .. f .. '.gz', data.read_idx(d .. '/' .. f))
        os.remove(d .. '/' .. f)
      end
      local ds = data.load('fashion-mnist', 'train', {dir = d})
      assert.are.same({10, 1, 1, 4}, ds.labels:tolist())
      assert.are.equal(px(4, 783), ds.images[4][28][28])
      assert.are.same({0}, ds.mean)
      assert.are.same({1}, ds.std)
      assert.are.equal('Ankle boot', ds.classes[10])
      assert.are.equal('T-shirt/top', ds.classes[1])
    end)

    it('reads CIFAR-10 batches as N x 3 x 32 x 32, concatenated in order', function()
      local d = dir('cifar10')
      local all = {}
      for b = 1, 5 do
        local labels = {}
        for i = 1, 3 do labels[i] = (b * 3 + i) % 10; all[#all + 1] = labels[i] + 1 end
        write_cifar(d .. '/data_batch_' .. b .. '.bin', labels, nil, (b - 1) * 3)
      end
      write_cifar(d .. '/test_batch.bin', {3, 8}, nil, 100)
      local ds = data.load('cifar10', 'train', {dir = d})
      assert.are.same({15, 3, 32, 32}, ds.images:size():totable())
      assert.are.same(all, ds.labels:tolist())
      -- sample 7 (batch 3, record 1), channel G (2), y 5, x 9 -> byte 1024 + 4 * 32 + 8
      assert.are.equal(px(7, 1024 + 4 * 32 + 8), ds.images[7][2][5][9])
      assert.are.same({0.4914, 0.4822, 0.4465}, ds.mean)
      assert.are.same({0.2023, 0.1994, 0.2010}, ds.std)
      assert.are.equal('airplane', ds.classes[1])
      local t = data.load('cifar10', 'test', {dir = d})
      assert.are.same({4, 9}, t.labels:tolist())
    end)

    it('reads CIFAR-100 with fine and coarse labels', function()
      local d = dir('cifar100')
      write_cifar(d .. '/train.bin', {19, 29, 0, 99}, {11, 15, 4, 19}, 0)
      local ds = data.load('cifar100', 'train', {dir = d})
      assert.are.same({20, 30, 1, 100}, ds.labels:tolist())
      assert.are.same({12, 16, 5, 20}, ds.coarse_labels:tolist())
      assert.are.equal(100, #ds.classes)
      assert.are.equal(20, #ds.coarse_classes)
      assert.are.equal('cattle', ds.classes[20])
      assert.are.equal('worm', ds.classes[100])
      assert.are.same({0.5071, 0.4865, 0.4409}, ds.mean)
      assert.are.equal(px(3, 3071), ds.images[3][3][32][32])
    end)

    it('says how to get a missing data set', function()
      local err = errmsg(data.load, 'mnist', 'train', {dir = tmp .. '/nowhere'})
      assert.truthy(err:find('dataset mnist not found in ' .. tmp .. '/nowhere: run data/get.sh mnist (or make data)', 1, true))
      local saved = data.cachedir
      data.cachedir = 'data/cache-absent'
      err = errmsg(data.load, 'cifar10', 'test')
      data.cachedir = saved
      assert.truthy(err:find('dataset cifar10 not found in data/cache-absent/cifar10: run data/get.sh cifar10 (or make data)', 1, true))
      err = errmsg(data.load, 'cifar100', 'train', {dir = tmp .. '/nowhere'})
      assert.matches('cannot be fetched from here', err)
      local d = dir('half')
      write_mnist(d, 'train', {1})
      os.remove(d .. '/train-labels-idx1-ubyte')
      err = errmsg(data.load, 'mnist', 'train', {dir = d})
      assert.matches('dataset mnist incomplete in .*missing train%-labels%-idx1%-ubyte', err)
      assert.matches("unknown dataset 'imagenet'", errmsg(data.load, 'imagenet', 'train'))
      assert.matches("no split 'val'", errmsg(data.load, 'mnist', 'val', {dir = d}))
    end)

    it('rejects truncated and foreign files with a clear message', function()
      local d = dir('bad')
      write_mnist(d, 'train', {1, 2, 3})
      local p = d .. '/train-images-idx3-ubyte'
      local f = assert(io.open(p, 'rb'))
      local s = f:read('a')
      f:close()
      write(p, s:sub(1, #s - 100))
      assert.matches('truncated IDX file', errmsg(data.load, 'mnist', 'train', {dir = d}))
      write(p, '\137PNG\r\n\26\n' .. string.rep('x', 100))
      assert.matches('not an IDX file', errmsg(data.load, 'mnist', 'train', {dir = d}))
      write_mnist(d, 'train', {1, 12, 3})
      assert.matches('label 12 of sample 2 is out of range for 10 classes',
                     errmsg(data.load, 'mnist', 'train', {dir = d}))
      write_mnist(d, 't10k', {1, 2})
      write(d .. '/t10k-labels-idx1-ubyte', string.pack('>I4I4', 0x801, 3) .. '\1\2\3')
      assert.matches('2 images but .* has 3 labels', errmsg(data.load, 'mnist', 'test', {dir = d}))
      local c = dir('badcifar')
      write(c .. '/test_batch.bin', string.rep('\0', 3073 * 2 - 5))
      assert.matches('not a whole number of 3073%-byte records', errmsg(data.load, 'cifar10', 'test', {dir = c}))
      write(c .. '/test_batch.bin', '\12' .. string.rep('\0', 3072))
      assert.matches('record 1 has label 12', errmsg(data.load, 'cifar10', 'test', {dir = c}))
    end)
  end)

  describe('data files', function()
    it('round-trips PNG images and CIFAR batches through the C writers', function()
      local img = nd.ByteTensor(3, 4, 5)
      for c = 1, 3 do for y = 1, 4 do for x = 1, 5 do img[c][y][x] = c * 60 + y * 10 + x end end end
      local p = tmp .. '/img.png'
      data.write_png(p, img)
      local back = data.read_png(p)
      assert.are.same(img:tolist(), back:tolist())
      assert.are.same({3, 4, 5}, back:size():totable())
      assert.matches('not a PNG file', errmsg(data.read_png, tmp .. '/cifar10/test_batch.bin'))
      assert.matches('expected a uint8 tensor', errmsg(data.write_png, p, nd.FloatTensor(3, 4, 5)))
      local images = nd.ByteTensor(2, 3, 32, 32)
      images[2][3][32][32] = 77
      data.write_cifar(tmp .. '/w.bin', images, nd.LongTensor({10, 1}))
      local i2, l2 = data.read_cifar(tmp .. '/w.bin', 1)
      assert.are.same({10, 1}, l2:tolist())
      assert.are.equal(77, i2[2][3][32][32])
      assert.matches('outside 0..9', errmsg(data.write_cifar, tmp .. '/w.bin', images, nd.LongTensor({11, 1})))
    end)
  end)

  describe('data.loader', function()
    -- 10 single-channel 2 x 3 images; pixel 1 encodes the sample, labels 1..10
    local function small()
      local images = nd.ByteTensor(10, 1, 2, 3)
      local labels = {}
      for i = 1, 10 do
        for y = 1, 2 do for x = 1, 3 do images[i][1][y][x] = (i * 20 + y * 3 + x) % 256 end end
        labels[i] = i
      end
      return {images = images, labels = nd.LongTensor(labels), mean = {0.5}, std = {0.25}}
    end

    local function epoch_labels(loader, epoch)
      local seen, sizes = {}, {}
      for i, x, y in loader:batches(epoch) do
        sizes[i] = x:size(1)
        assert.are.equal('float32', x:dtype())
        assert.are.equal('int64', y:dtype())
        for _, v in ipairs(y:tolist()) do seen[#seen + 1] = v end
      end
      return seen, sizes
    end

    it('visits every sample once per epoch, keeps the last partial batch, and is deterministic', function()
      local loader = data.loader(small(), {batchSize = 4, shuffle = true, seed = 3})
      assert.are.equal(3, loader:size())
      assert.are.equal(3, #loader)
      local seen, sizes = epoch_labels(loader, 1)
      assert.are.same({4, 4, 2}, sizes)
      local sorted = {table.unpack(seen)}
      table.sort(sorted)
      assert.are.same({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, sorted)
      assert.are.same(seen, (epoch_labels(loader, 1)))
      assert.are_not.same(seen, (epoch_labels(loader, 2)))
      nd.manualSeed(99) -- the global generator plays no part
      local other = data.loader(small(), {batchSize = 4, shuffle = true, seed = 3})
      assert.are.same(seen, (epoch_labels(other, 1)))
      -- without an argument, batches() runs epoch, epoch + 1, ...
      local l3 = data.loader(small(), {batchSize = 4, shuffle = true, seed = 3, epoch = 2})
      assert.are.same((epoch_labels(loader, 2)), (epoch_labels(l3)))
      assert.are.equal(3, l3.epoch)
      loader:close()
      other:close()
      l3:close()
    end)

    it('normalises (x/255 - mean)/std and keeps the order without shuffle', function()
      local ds = small()
      local loader = data.loader(ds, {batchSize = 10})
      for _, x, y in loader:batches() do
        assert.are.same({10, 1, 2, 3}, x:size():totable())
        assert.are.same({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, y:tolist())
        local v = ds.images[4][1][2][3]
        assert.is_true(math.abs(x[4][1][2][3] - (v / 255 - 0.5) / 0.25) < 1e-5)
      end
      local raw = data.loader(ds, {batchSize = 10, normalize = false})
      for _, x in raw:batches() do
        assert.is_true(math.abs(x[4][1][2][3] - ds.images[4][1][2][3] / 255) < 1e-6)
      end
      local scaled = data.loader(ds, {batchSize = 10, mean = 0, std = 0.5})
      for _, x in scaled:batches() do
        assert.is_true(math.abs(x[1][1][1][1] - ds.images[1][1][1][1] / 255 / 0.5) < 1e-5)
      end
    end)

    it('crops with zero padding and flips', function()
      local ds = small()
      local loader = data.loader(ds, {batchSize = 10, crop = 1, flip = true, normalize = false, seed = 5})
      local moved = 0
      for e = 1, 3 do
        for _, x, y in loader:batches(e) do
          for i = 1, 10 do
            local src, got = ds.images[y[i]][1], x[i][1]
            local found = false
            for oy = 0, 2 do for ox = 0, 2 do for f = 0, 1 do
              local ok = true
              for yy = 1, 2 do for xx = 1, 3 do
                local sx = (f == 1 and 4 - xx or xx) + ox - 1
                local sy = yy + oy - 1
                local want = (sy >= 1 and sy <= 2 and sx >= 1 and sx <= 3) and src[sy][sx] / 255 or 0
                if math.abs(got[yy][xx] - want) > 1e-6 then ok = false end
              end end
              if ok then
                found = true
                if ox ~= 1 or oy ~= 1 or f == 1 then moved = moved + 1 end
              end
            end end end
            assert.is_true(found)
          end
        end
      end
      assert.is_true(moved > 10)
    end)

    it('stops its worker on break, close, <close> and garbage collection', function()
      local loader = data.loader(small(), {batchSize = 2, shuffle = true})
      for i = 1, 3 do
        for k in loader:batches() do if k == 2 then break end end
      end
      local n = 0
      for _ in loader:batches() do n = n + 1 end
      assert.are.equal(5, n)
      loader:close()
      loader:close()
      assert.matches('closed', errmsg(function() return loader:size() end))
      assert.matches('closed', errmsg(function() for _ in loader:batches() do end end))
      do
        local scoped <close> = data.loader(small(), {batchSize = 3})
        local it = scoped:batches()
        it()
      end
      for _ = 1, 20 do
        local l = data.loader(small(), {batchSize = 1})
        l:batches() -- worker waiting on a full queue
      end
      collectgarbage()
      collectgarbage()
    end)

    it('reports bad options', function()
      local ds = small()
      assert.matches("unknown option 'batchsize'", errmsg(data.loader, ds, {batchsize = 4}))
      assert.matches('batch size must be >= 1', errmsg(data.loader, ds, {batchSize = 0}))
      assert.matches('3 means/stds for 1 channels', errmsg(data.loader, ds, {mean = {0, 0, 0}, std = {1, 1, 1}}))
      assert.matches('expected a data set', errmsg(data.loader, {images = 1}))
      assert.matches('labels', errmsg(data.loader, {images = ds.images, labels = nd.LongTensor({1, 2})}))
    end)
  end)
end)
