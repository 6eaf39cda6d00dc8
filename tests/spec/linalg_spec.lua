package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path
package.cpath = (os.getenv('ND_BUILD') or 'build') .. '/lib/?.so;' .. package.cpath
local nd = require('nd')

-- Products, index operations, sorting, cat/split from Lua: results against plain Lua loops,
-- non-contiguous operands, 1-based indices, Torch7 argument forms and error messages.

local function flat(t) return t:tolist() end

-- max |a - b| over two tensors (or a tensor and a nested table) of equal element count
local function maxdiff(a, b)
  local fa = flat(a)
  local fb = nd.istensor(b) and flat(b) or flat(nd.Tensor(b, 'float64'))
  assert.are.equal(#fb, #fa)
  local m = 0
  for i = 1, #fa do m = math.max(m, math.abs(fa[i] - fb[i])) end
  return m
end

local function naive_mm(a, b)
  local A, B = a:totable(), b:totable()
  local r = {}
  for i = 1, #A do
    r[i] = {}
    for j = 1, #B[1] do
      local s = 0
      for k = 1, #B do s = s + A[i][k] * B[k][j] end
      r[i][j] = s
    end
  end
  return r
end

local function rand(...) return nd.rand(...):double() end

local function errmsg(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok)
  return tostring(err)
end

describe('nd linalg: products', function()
  it('mm matches plain loops in every call form', function()
    local a, b = rand(5, 7), rand(7, 3)
    local want = naive_mm(a, b)
    assert.is_true(maxdiff(nd.mm(a, b), want) < 1e-12)
    assert.is_true(maxdiff(a:mm(b), want) < 1e-12)           -- one argument: new a @ b
    local res = nd.Tensor('float64')
    assert.are.equal(res, nd.mm(res, a, b))                   -- result form, resized
    assert.are.same({5, 3}, res:size():totable())
    assert.is_true(maxdiff(res, want) < 1e-12)
    local res2 = nd.Tensor(2, 2, 'float64')
    assert.are.equal(res2, res2:mm(a, b))                     -- Torch7: self is the result
    assert.is_true(maxdiff(res2, want) < 1e-12)
  end)

  it('mm takes transposed and narrowed operands', function()
    local at = rand(9, 6)                                     -- a = at:t() is 6 x 9, column-major
    local big = rand(12, 11)
    local b = big:narrow(1, 2, 9):narrow(2, 3, 4)             -- 9 x 4 with row stride 11
    local a = at:t()
    assert.is_false(a:isContiguous()); assert.is_false(b:isContiguous())
    local want = naive_mm(a, b)
    assert.is_true(maxdiff(nd.mm(a, b), want) < 1e-12)
    local every_other = big:unfold(2, 1, 2):select(3, 1)      -- 12 x 6 with column stride 2
    local w2 = naive_mm(every_other:t(), big:narrow(2, 1, 4))
    assert.is_true(maxdiff(nd.mm(every_other:t(), big:narrow(2, 1, 4)), w2) < 1e-12)
    -- float32, all four transpositions against the reference kernel
    for _, ta in ipairs {false, true} do
      for _, tb in ipairs {false, true} do
        local x = ta and nd.rand(33, 17):t() or nd.rand(17, 33)
        local y = tb and nd.rand(29, 33):t() or nd.rand(33, 29)
        local fast = nd.mm(x, y)
        local ref = nd.core.addmmref(nil, 0, nil, 1, x, y)
        assert.is_true(maxdiff(fast, ref) < 1e-4)
      end
    end
  end)

  it('names the function and both shapes on mismatch', function()
    local ones = function(...) return nd.ones and nd.core.fill and nd.ones(...) or nd.zeros(...) end
    local err = errmsg(function() return ones(2, 3):mm(ones(2, 3)) end)
    assert.matches('mm: size mismatch, 2x3 and 2x3', err, 1, true)
    assert.matches('inner dimensions 3 and 2', err, 1, true)
    assert.matches('bmm: size mismatch, 2x3x4 and 2x3x4', errmsg(nd.bmm, nd.rand(2, 3, 4), nd.rand(2, 3, 4)), 1, true)
    assert.matches('bmm: batch sizes differ, 2x3x4 and 3x4x4', errmsg(nd.bmm, nd.rand(2, 3, 4), nd.rand(3, 4, 4)), 1, true)
    assert.matches('mv: size mismatch, 2x3 and 4', errmsg(nd.mv, nd.rand(2, 3), nd.rand(4)), 1, true)
    assert.matches('mm: expected two matrices, got 3 and 3x2', errmsg(nd.mm, nd.rand(3), nd.rand(3, 2)), 1, true)
    assert.matches('dtype mismatch, float32 and float64', errmsg(nd.mm, nd.rand(2, 2), rand(2, 2)), 1, true)
    assert.matches('3x3 does not broadcast to the result 2x2',
      errmsg(nd.addmm, nd.rand(3, 3), nd.rand(2, 2), nd.rand(2, 2)), 1, true)
    assert.matches('dot: size mismatch, 3 and 4', errmsg(nd.dot, nd.rand(3), nd.rand(4)), 1, true)
  end)

  it('addmm accepts the Torch7 argument forms', function()
    local M, a, b = rand(4, 3), rand(4, 5), rand(5, 3)
    local P, Mt = naive_mm(a, b), M:totable()
    local function combo(beta, alpha)
      local r = {}
      for i = 1, 4 do r[i] = {} for j = 1, 3 do r[i][j] = beta * Mt[i][j] + alpha * P[i][j] end end
      return r
    end
    assert.is_true(maxdiff(nd.addmm(M, a, b), combo(1, 1)) < 1e-12)
    assert.is_true(maxdiff(nd.addmm(0.5, M, 2, a, b), combo(0.5, 2)) < 1e-12)
    assert.is_true(maxdiff(nd.addmm(M, -1, a, b), combo(1, -1)) < 1e-12)
    assert.is_true(maxdiff(M, Mt) == 0)                                       -- M untouched
    local r = M:clone()
    assert.are.equal(r, r:addmm(a, b))                                        -- r = r + a b
    assert.is_true(maxdiff(r, combo(1, 1)) < 1e-12)
    r = M:clone(); r:addmm(3, a, b)                                           -- one number: alpha
    assert.is_true(maxdiff(r, combo(1, 3)) < 1e-12)
    r = M:clone(); r:addmm(0, 3, a, b)                                        -- two: beta, alpha
    assert.is_true(maxdiff(r, combo(0, 3)) < 1e-12)
    local out = nd.Tensor('float64')
    out:addmm(2, M, a, b)                                                     -- out = 2 M + a b
    assert.is_true(maxdiff(out, combo(2, 1)) < 1e-12)
    nd.addmm(out, M, a, b)
    assert.is_true(maxdiff(out, combo(1, 1)) < 1e-12)
    -- a bias row broadcast as M (nn.Linear's form)
    local bias = rand(3)
    local lin = nd.addmm(bias:view(1, 3), a, b)
    local want = {}
    for i = 1, 4 do want[i] = {} for j = 1, 3 do want[i][j] = bias:totable()[j] + P[i][j] end end
    assert.is_true(maxdiff(lin, want) < 1e-12)
  end)

  it('bmm, baddbmm and addbmm work batch by batch', function()
    local a, bt = rand(3, 4, 5), rand(3, 2, 5)
    local b = bt:transpose(2, 3)                                 -- 3 x 5 x 2, non-contiguous
    local r = nd.bmm(a, b)
    assert.are.same({3, 4, 2}, r:size():totable())
    local sum = nd.zeros(4, 2, 'float64')
    for i = 1, 3 do
      assert.is_true(maxdiff(r[i], naive_mm(a[i], b[i])) < 1e-12)
    end
    local M = rand(3, 4, 2)
    local r2 = nd.baddbmm(0.5, M, 2, a, b)
    for i = 1, 3 do
      local w, m = naive_mm(a[i], b[i]), M[i]:totable()
      for p = 1, 4 do for q = 1, 2 do w[p][q] = 0.5 * m[p][q] + 2 * w[p][q] end end
      assert.is_true(maxdiff(r2[i], w) < 1e-12)
      sum = nd.core.addmm(sum, 1, nil, 1, a[i], b[i])
    end
    assert.is_true(maxdiff(nd.addbmm(nd.zeros(4, 2, 'float64'), a, b), sum) < 1e-12)
    assert.is_true(maxdiff(a:bmm(b), r) == 0)
  end)

  it('mv, addmv, ger, addr, dot and matmul', function()
    local A, x = rand(4, 6):t(), rand(4)                         -- 6 x 4 transposed
    local At, xt = A:totable(), x:totable()
    local want = {}
    for i = 1, 6 do local s = 0 for j = 1, 4 do s = s + At[i][j] * xt[j] end want[i] = s end
    assert.is_true(maxdiff(nd.mv(A, x), want) < 1e-12)
    assert.is_true(maxdiff(A:mv(x), want) < 1e-12)
    local y = rand(6)
    local yt = y:totable()
    local w2 = {}
    for i = 1, 6 do w2[i] = 2 * yt[i] + 3 * want[i] end
    assert.is_true(maxdiff(nd.addmv(2, y, 3, A, x), w2) < 1e-12)
    y:addmv(2, 3, A, x)                                          -- in place: beta, alpha
    assert.is_true(maxdiff(y, w2) < 1e-12)

    local u, v = rand(3), rand(2)
    local ut, vt = u:totable(), v:totable()
    local outer = {}
    for i = 1, 3 do outer[i] = {} for j = 1, 2 do outer[i][j] = ut[i] * vt[j] end end
    assert.is_true(maxdiff(nd.ger(u, v), outer) < 1e-12)
    assert.is_true(maxdiff(u:ger(v), outer) < 1e-12)
    local acc = nd.zeros(3, 2, 'float64')
    acc:addr(u, v); acc:addr(2, u, v)
    local three = {}
    for i = 1, 3 do three[i] = {} for j = 1, 2 do three[i][j] = 3 * outer[i][j] end end
    assert.is_true(maxdiff(acc, three) < 1e-12)

    local s = 0
    for i = 1, 4 do s = s + xt[i] * xt[i] end
    assert.is_true(math.abs(x:dot(x) - s) < 1e-12)
    assert.is_true(math.abs(nd.matmul(x, x) - s) < 1e-12)
    assert.are.equal(8, nd.LongTensor({1, 2}):dot(nd.LongTensor({2, 3})))
    assert.is_true(maxdiff(nd.matmul(A, x), want) < 1e-12)
    local B = rand(4, 2)
    assert.is_true(maxdiff(nd.matmul(A, B), naive_mm(A, B)) < 1e-12)
    assert.is_true(maxdiff(nd.matmul(x, B), naive_mm(x:view(1, 4), B)) < 1e-12)
  end)

  it('sets and reports the thread count', function()
    local n = nd.getnumthreads()
    nd.setnumthreads(1)
    assert.are.equal(1, nd.getnumthreads())
    nd.setnumthreads(n)
    assert.are.equal(n, nd.getnumthreads())
    assert.has_error(function() nd.setnumthreads(0) end)
    assert.matches('OpenBLAS', nd.blasconfig())
  end)
end)

describe('nd linalg: index operations', function()
  local x
  before_each(function()
    x = nd.Tensor({{1, 2, 3}, {4, 5, 6}, {7, 8, 9}, {10, 11, 12}})  -- 4 x 3
  end)

  it('index / indexSelect with 1-based indices, tensors or tables', function()
    assert.are.same({{10, 11, 12}, {1, 2, 3}, {10, 11, 12}}, x:index(1, nd.LongTensor({4, 1, 4})):totable())
    assert.are.same({{3, 1}, {6, 4}, {9, 7}, {12, 10}}, x:index(2, {3, 1}):totable())
    assert.are.same({{3}, {6}, {9}, {12}}, x:indexSelect(-1, {3}):totable())
    assert.are.same({{4, 6}}, x:t():index(2, {2}):t():index(2, {1, 3}):totable()) -- non-contiguous
    local res = nd.Tensor()
    assert.are.equal(res, res:index(x, 1, nd.Tensor({2})))                       -- float indices too
    assert.are.same({{4, 5, 6}}, res:totable())
    local err = errmsg(function() return x:index(1, {5}) end)
    assert.matches('index 5 out of range for dimension 1 of size 4', err, 1, true)
    err = errmsg(function() return x:index(2, {0}) end)
    assert.matches('index 0 out of range for dimension 2 of size 3', err, 1, true)
  end)

  it('indexCopy, indexAdd and indexFill', function()
    local src = nd.Tensor({{-1, -2, -3}, {-4, -5, -6}})
    x:indexCopy(1, {4, 2}, src)
    assert.are.same({{1, 2, 3}, {-4, -5, -6}, {7, 8, 9}, {-1, -2, -3}}, x:totable())
    local acc = nd.zeros(2, 3)
    acc:indexAdd(1, {2, 2}, src)                                 -- repeated index accumulates
    assert.are.same({{0, 0, 0}, {-5, -7, -9}}, acc:totable())
    x:t():indexFill(1, {2}, 0)                                   -- column 2 through a transpose
    assert.are.same({0, 0, 0, 0}, x:select(2, 2):totable())
    assert.matches('source 3x3 does not fit', errmsg(function() x:indexCopy(1, {1, 2}, nd.zeros(3, 3)) end), 1, true)
  end)

  it('gather and scatter along either dimension', function()
    local idx = nd.LongTensor({{3, 1}, {2, 2}, {1, 3}, {3, 3}})
    assert.are.same({{3, 1}, {5, 5}, {7, 9}, {12, 12}}, x:gather(2, idx):totable())
    local i1 = nd.LongTensor({{4, 1, 2}})
    assert.are.same({{10, 2, 6}}, x:gather(1, i1):totable())
    local y = nd.zeros(4, 3)
    y:scatter(1, i1, nd.Tensor({{1, 2, 3}}))
    assert.are.same({{0, 2, 0}, {0, 0, 3}, {0, 0, 0}, {1, 0, 0}}, y:totable())
    y:scatter(2, nd.LongTensor({{1}, {1}, {1}, {1}}), 9)
    assert.are.same({9, 9, 9, 9}, y:select(2, 1):totable())
    local counts = nd.zeros(1, 3)
    counts:scatterAdd(2, nd.LongTensor({{1, 3, 3, 3}}), nd.ones and nd.core.fill and nd.ones(1, 4) or nd.Tensor({{1, 1, 1, 1}}))
    assert.are.same({{1, 0, 3}}, counts:totable())
    local res = nd.Tensor()
    res:gather(x, 2, idx)
    assert.are.same({4, 2}, res:size():totable())
    local err = errmsg(function() return x:gather(2, nd.LongTensor({{4}})) end)
    assert.matches('index 4 out of range for dimension 2 of size 3', err, 1, true)
  end)

  it('masked operations take byte, float and broadcast masks', function()
    local m = nd.ByteTensor({{1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {1, 1, 1}})
    assert.are.same({1, 5, 9, 10, 11, 12}, x:maskedSelect(m):totable())
    local xf = x:clone()
    xf:maskedFill(m, -1)
    assert.are.same({{-1, 2, 3}, {4, -1, 6}, {7, 8, -1}, {-1, -1, -1}}, xf:totable())
    local row = nd.Tensor({{0, 0.5, 0}})                         -- float mask broadcast over rows
    local xr = x:clone()
    xr:maskedFill(row, 0)
    assert.are.same({0, 0, 0, 0}, xr:select(2, 2):totable())
    local xc = x:clone()
    xc:maskedCopy(m, nd.Tensor({{10, 20, 30}, {40, 50, 60}}))
    assert.are.same({{10, 2, 3}, {4, 20, 6}, {7, 8, 30}, {40, 50, 60}}, xc:totable())
    assert.are.same({1, 2}, x:t():maskedSelect(nd.ByteTensor({{1, 0, 0, 0}, {1, 0, 0, 0}, {0, 0, 0, 0}})):totable())
    assert.are.equal(0, x:maskedSelect(nd.zeros(4, 3, 'uint8')):nElement())
    assert.are.same({1, 5, 9, 10, 11, 12}, x[m]:totable())      -- t[mask] goes through maskedSelect
    local xi = x:clone()
    xi[m] = 0                                                    -- and t[mask] = v through maskedFill
    assert.are.same({{0, 2, 3}, {4, 0, 6}, {7, 8, 0}, {0, 0, 0}}, xi:totable())
    local res = nd.Tensor()
    res:maskedSelect(x, m)
    assert.are.equal(6, res:nElement())
    assert.matches('mask 2x2 does not match tensor 4x3', errmsg(function() x:maskedFill(nd.zeros(2, 2), 1) end), 1, true)
    assert.matches('selects 6 elements', errmsg(function() x:maskedCopy(m, nd.zeros(5)) end), 1, true)
  end)

  it('nonzero returns 1-based coordinates in row-major order', function()
    local t = nd.Tensor({{0, 3}, {2, 0}, {0, 0}})
    local nz = t:nonzero()
    assert.are.equal('int64', nz:dtype())
    assert.are.same({{1, 2}, {2, 1}}, nz:totable())
    assert.are.same({{2}, {4}}, nd.nonzero(nd.Tensor({0, 1, 0, 1}))
      :totable())
    assert.are.equal(0, nd.zeros(3):nonzero():nElement())
  end)
end)

describe('nd linalg: sorting', function()
  it('sorts stably along any dimension, with 1-based indices', function()
    local t = nd.Tensor({3, 1, 2, 1, 3})
    local v, i = t:sort()
    assert.are.same({1, 1, 2, 3, 3}, v:totable())
    assert.are.same({2, 4, 3, 1, 5}, i:totable())                -- equal values keep their order
    v, i = t:sort(1, true)
    assert.are.same({3, 3, 2, 1, 1}, v:totable())
    assert.are.same({1, 5, 3, 2, 4}, i:totable())
    v, i = t:sort(true)                                          -- Torch7: flag without dim
    assert.are.same({1, 5, 3, 2, 4}, i:totable())
    local m = nd.Tensor({{5, 1, 4}, {2, 6, 0}}):t()              -- 3 x 2, non-contiguous
    v, i = m:sort(1)
    assert.are.same({{1, 0}, {4, 2}, {5, 6}}, v:totable())
    assert.are.same({{2, 3}, {3, 1}, {1, 2}}, i:totable())
    v, i = nd.sort(m, 2, true)
    assert.are.same({{5, 2}, {6, 1}, {4, 0}}, v:totable())
    local rv, ri = nd.Tensor(), nd.LongTensor()
    nd.sort(rv, ri, m, 1)
    assert.are.same({{2, 3}, {3, 1}, {1, 2}}, ri:totable())
    assert.are.same({{1, 2}, {1, 2}}, select(2, nd.LongTensor({{7, 8}, {9, 10}}):sort(2)):totable())
  end)

  it('topk returns the k smallest (Torch7 default) or largest, sorted', function()
    local t = nd.Tensor({{4, 9, 1, 7}, {3, 3, 8, 0}})
    local v, i = t:topk(2)
    assert.are.same({{1, 4}, {0, 3}}, v:totable())
    assert.are.same({{3, 1}, {4, 1}}, i:totable())
    v, i = t:topk(2, 2, true)
    assert.are.same({{9, 7}, {8, 3}}, v:totable())
    assert.are.same({{2, 4}, {3, 1}}, i:totable())
    v, i = t:topk(1, 1, true)
    assert.are.same({{4, 9, 8, 7}}, v:totable())
    assert.are.same({{1, 1, 2, 1}}, i:totable())
    assert.matches('k = 5 out of range for dimension 2 of size 4', errmsg(function() t:topk(5) end), 1, true)
    local kv, ki = t:kthvalue(2, 2)
    assert.are.same({{4}, {3}}, kv:totable())
    assert.are.same({{1}, {1}}, ki:totable())
    local mv = nd.Tensor({5, 1, 4, 2}):median()
    assert.are.same({2}, mv:totable())
  end)
end)

describe('nd linalg: cat, split, chunk', function()
  it('concatenates in every Torch7 form', function()
    local a = nd.Tensor({{1, 2}, {3, 4}})
    local b = nd.Tensor({{5, 6}, {7, 8}}):t()                    -- non-contiguous
    assert.are.same({{1, 2, 5, 7}, {3, 4, 6, 8}}, nd.cat(a, b):totable())  -- last dim by default
    assert.are.same({{1, 2}, {3, 4}, {5, 7}, {6, 8}}, nd.cat(a, b, 1):totable())
    assert.are.same({4, 2}, nd.cat({a, b}, 1):size():totable())
    assert.are.same({2, 6}, nd.cat({a, b, a}, -1):size():totable())
    assert.are.same({{1, 2}, {3, 4}, {1, 2}, {3, 4}}, a:cat(a, 1):totable())
    local res = nd.Tensor()
    assert.are.equal(res, nd.cat(res, a, b, 1))
    assert.are.same({4, 2}, res:size():totable())
    nd.cat(res, {a, nd.Tensor(), b}, 2)                          -- empty tensors are skipped
    assert.are.same({{1, 2, 5, 7}, {3, 4, 6, 8}}, res:totable())
    assert.are.same({1, 2, 3}, nd.cat(nd.Tensor({1}), nd.Tensor({2, 3})):totable())
    local err = errmsg(function() return nd.cat(a, nd.zeros(3, 3), 1) end)
    assert.matches('2x2', err, 1, true); assert.matches('3x3', err, 1, true)
  end)

  it('split and chunk return views', function()
    local t = nd.Tensor({{1, 2, 3, 4, 5}, {6, 7, 8, 9, 10}})
    local parts = t:split(2, 2)
    assert.are.equal(3, #parts)
    assert.are.same({{1, 2}, {6, 7}}, parts[1]:totable())
    assert.are.same({{5}, {10}}, parts[3]:totable())
    parts[2][1][1] = 0
    assert.are.equal(0, t[1][3])                                 -- a view, not a copy
    local ch = nd.chunk(t, 2, 2)
    assert.are.equal(2, #ch)
    assert.are.same({2, 3}, ch[1]:size():totable())
    assert.are.same({2, 2}, ch[2]:size():totable())
    assert.are.equal(2, #t:chunk(2))
    assert.are.same({1, 5}, t:split(1)[1]:size():totable())
  end)
end)
