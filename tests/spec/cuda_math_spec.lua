-- CPU/GPU parity of the tensor math (src/cuda/{elementwise,reduce,blas,index}.cu, dispatched by
-- src/lua/bind_math.c and bind_linalg.c): every dispatched op on the same values and the same
-- layouts on both devices (contiguous, transposed, narrowed, expanded operands), float32 within
-- 1e-4 and float64 within 1e-10 relative (max |gpu - cpu| / max |cpu|), integer and mask results
-- exactly, NaN positions equal. Also: results stay on the GPU, CPU index lists work for GPU
-- tensors, errors (bad indices, integer division by zero, mixed devices, ops without a kernel).
-- Pending with the reason when there is no usable GPU.
package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path
package.cpath = (os.getenv('ND_BUILD') or 'build') .. '/lib/?.so;' .. package.cpath
local nd = require('nd')
local core = nd.core

local ok, why = false, 'nd.cuda is missing (no CUDA support in this build of nd)'
if nd.cuda and nd.cuda.available then ok, why = nd.cuda.available() end

local TOL = {float32 = 1e-4, float64 = 1e-10}

-- A test that needs a GPU: pending (with the reason) without one.
local function git(name, fn)
  if ok then it(name, fn)
  else it(name, function() pending('no usable GPU, CUDA math parity skipped: ' .. tostring(why)) end) end
end

local function G(t) return t:cuda() end
local function H(t) return t:cpu() end

-- got (on the GPU) against want (on the CPU): device, dtype, shape, values.
local function check(got, want, what, tol)
  assert(core.device(got) == 'cuda', what .. ': the result is not on the GPU')
  local g = H(got)
  assert.are.same(want:size():totable(), g:size():totable(), what .. ': shape')
  assert(core.dtype(g) == core.dtype(want),
    string.format('%s: dtype %s, expected %s', what, core.dtype(g), core.dtype(want)))
  tol = tol or TOL[core.dtype(want)] or 0
  local a, b = g:tolist(), want:tolist()
  local scale = 0
  for i = 1, #b do
    if b[i] == b[i] and math.abs(b[i]) ~= math.huge then scale = math.max(scale, math.abs(b[i])) end
  end
  if scale == 0 then scale = 1 end
  for i = 1, #b do
    local x, y = a[i], b[i]
    if y ~= y then
      assert(x ~= x, string.format('%s: element %d is %s, expected NaN', what, i, tostring(x)))
    elseif math.abs(y) == math.huge then
      assert(x == y, string.format('%s: element %d is %s, expected %s', what, i, tostring(x), tostring(y)))
    else
      local e = math.abs(x - y) / scale
      assert(e <= tol, string.format('%s: element %d: %.10g vs %.10g (relative error %.3g > %.1g)', what, i, x, y,
        e, tol))
    end
  end
end

local function num_check(got, want, what, tol)
  assert(type(got) == 'number', what .. ': expected a number, got ' .. type(got))
  if want ~= want then assert(got ~= got, what .. ': expected NaN'); return end
  local e = math.abs(got - want) / math.max(math.abs(want), 1e-30)
  assert(e <= tol, string.format('%s: %.12g vs %.12g (relative error %.3g > %.1g)', what, got, want, e, tol))
end

-- Layout variants of a CPU base tensor x (2-d r x c): {name, cpu view, gpu view}, the GPU view
-- built the same way from a GPU copy, so both devices see identical strides.
local function variants(x)
  local r, c = x:size(1), x:size(2)
  local out = {}
  local function add(name, base, view)
    out[#out + 1] = {name, view(base), view(G(base))}
  end
  add('contiguous', x, function(t) return t end)
  add('transposed', x:t():contiguous(), function(t) return t:t() end)
  local big = nd.zeros(r + 3, c + 2, core.dtype(x))
  big:narrow(1, 2, r):narrow(2, 2, c):copy(x)
  add('narrowed', big, function(t) return t:narrow(1, 2, r):narrow(2, 2, c) end)
  add('expanded', x:narrow(1, 1, 1):clone(), function(t) return t:expand(r, c) end)
  return out
end

local function randn(r, c, dt) return nd.randn(r, c, dt or 'float32') end
local function randpos(r, c, dt) return nd.rand(r, c, dt or 'float32'):add(0.25) end

describe('nd math on CUDA: elementwise', function()
  local unary_any = {'neg', 'abs', 'sign', 'relu', 'square', 'floor', 'ceil', 'round', 'trunc', 'frac', 'exp',
    'expm1', 'tanh', 'sigmoid', 'sin', 'cos', 'atan', 'sinh', 'cosh', 'erf', 'reciprocal'}
  local unary_pos = {'sqrt', 'rsqrt', 'log', 'log1p', 'log2', 'log10', 'asin', 'acos'}

  git('unary maps match the CPU on every layout (float32, float64)', function()
    for _, dt in ipairs {'float32', 'float64'} do
      for _, v in ipairs(variants(randn(7, 9, dt))) do
        for _, op in ipairs(unary_any) do
          check(core.unary(op, nil, v[3]), core.unary(op, nil, v[2]), op .. ' ' .. dt .. ' ' .. v[1])
        end
      end
      for _, v in ipairs(variants(nd.rand(6, 5, dt):mul(0.9))) do
        for _, op in ipairs(unary_pos) do
          check(core.unary(op, nil, v[3]), core.unary(op, nil, v[2]), op .. ' ' .. dt .. ' ' .. v[1])
        end
      end
    end
  end)

  git('maps with scalars and comparisons into uint8 masks', function()
    local cases = {{'clamp', -0.5, 0.7}, {'pow', 2.5}, {'pow', 2}, {'pow', 0.5}, {'pow', -1}, {'pow', 3},
      {'rpow', 1.7}, {'add', 0.3}, {'rsub', 2}, {'mul', -1.5}, {'div', 3}, {'rdiv', 2}, {'floordiv', 0.4},
      {'fmod', 0.4}, {'remainder', 0.4}, {'max', 0.1}, {'min', 0.1}, {'eq', 0}, {'ne', 0}, {'lt', 0.2}, {'le', 0.2},
      {'gt', -0.1}, {'ge', -0.1}}
    for _, dt in ipairs {'float32', 'float64'} do
      local x = randn(8, 6, dt)
      x[{1, 1}] = 0
      x[{2, 2}] = 0 / 0
      for _, v in ipairs(variants(x)) do
        for _, c in ipairs(cases) do
          check(core.unary(c[1], nil, v[3], c[2], c[3]), core.unary(c[1], nil, v[2], c[2], c[3]),
            c[1] .. ' ' .. dt .. ' ' .. v[1])
        end
      end
    end
    -- x:eq(0.1) on float32 finds 0.1f, as on the CPU
    local x = nd.Tensor({0.1, 0.2, 0.1})
    check(G(x):eq(0.1), x:eq(0.1), 'eq 0.1 float32')
  end)

  git('integer maps are exact and divide by zero with the CPU error', function()
    local x = nd.Tensor({{-7, 5, 0}, {3, -2, 9}}, 'int64')
    for _, v in ipairs(variants(x)) do
      for _, c in ipairs {{'neg'}, {'abs'}, {'square'}, {'add', 3}, {'mul', -2}, {'div', 2}, {'floordiv', 2},
        {'fmod', 3}, {'remainder', 3}, {'pow', 3}, {'clamp', -1, 4}, {'lt', 1}, {'max', 2}} do
        check(core.unary(c[1], nil, v[3], c[2], c[3]), core.unary(c[1], nil, v[2], c[2], c[3]), c[1] .. ' int64 ' .. v[1])
      end
    end
    local u = nd.Tensor({250, 3, 7}, 'uint8')
    check(core.unary('add', nil, G(u), 10), core.unary('add', nil, u, 10), 'uint8 add wraps')
    local a = nd.Tensor({4, 5, 6}, 'int64')
    local b = nd.Tensor({2, 0, 3}, 'int64')
    local ok1, e1 = pcall(core.binary, 'div', nil, a, b)
    local ok2, e2 = pcall(core.binary, 'div', nil, G(a), G(b))
    assert.is_false(ok1); assert.is_false(ok2)
    assert.truthy(tostring(e2):find('division by zero', 1, true), tostring(e2))
    assert.truthy(tostring(e1):find('division by zero', 1, true))
    local ok3, e3 = pcall(core.unary, 'rdiv', nil, G(b), 1)
    assert.is_false(ok3)
    assert.truthy(tostring(e3):find('division by zero', 1, true), tostring(e3))
  end)

  git('binary maps, alpha, broadcasting and dtype promotion through the Tensor API', function()
    local ops = {'add', 'sub', 'mul', 'div', 'floordiv', 'pow', 'max', 'min', 'fmod', 'remainder', 'atan2', 'lerp',
      'eq', 'ne', 'lt', 'le', 'gt', 'ge', 'and', 'or', 'xor'}
    for _, dt in ipairs {'float32', 'float64'} do
      local xs, ys = variants(randn(5, 7, dt)), variants(randpos(5, 7, dt))
      for i = 1, #xs do
        local a, b = xs[i], ys[(i % #ys) + 1]
        for _, op in ipairs(ops) do
          check(core.binary(op, nil, a[3], b[3], 0.75), core.binary(op, nil, a[2], b[2], 0.75),
            op .. ' ' .. dt .. ' ' .. a[1] .. ' / ' .. b[1])
        end
      end
    end
    local a, row, col = randn(4, 6), randn(1, 6), randn(4, 1, 'float64')
    check(nd.add(G(a), G(row)), nd.add(a, row), 'add broadcast row')
    check(nd.mul(G(a), G(col)), nd.mul(a, col), 'mul broadcast column, float64 result')
    check(G(a):add(2, G(row)), a:clone():add(2, row), 'in-place add with alpha and broadcast')
    check(G(a):csub(0.5, G(a)), a:clone():csub(0.5, a), 'in-place csub, same tensor')
    check(G(a) + 1, a + 1, 'operator +')
    check(G(a) / G(row), a / row, 'operator /')
    check(-G(a), -a, 'unary minus')
    check(G(a):cmax(0.2), a:clone():cmax(0.2), 'cmax scalar')
    local ia, ib = nd.Tensor({{1, -2, 3}}, 'int64'), nd.Tensor({{4, 5, -6}}, 'int64')
    for _, op in ipairs {'add', 'sub', 'mul', 'max', 'min', 'eq', 'lt'} do
      check(core.binary(op, nil, G(ia), G(ib), 2), core.binary(op, nil, ia, ib, 2), op .. ' int64')
    end
    check(core.binary('add', nil, G(ia), G(ib), 0.5), core.binary('add', nil, ia, ib, 0.5), 'int64 add, alpha 0.5')
    local u = nd.Tensor({1, 0, 3}, 'uint8')
    check(core.binary('add', nil, G(u), G(nd.Tensor({0.5, 2, 1}))), core.binary('add', nil, u, nd.Tensor({0.5, 2, 1})),
      'uint8 + float32')
  end)

  git('ternary maps (addcmul, addcdiv, lerp, where)', function()
    for _, dt in ipairs {'float32', 'float64'} do
      local A, B, C = variants(randn(6, 4, dt)), variants(randn(6, 4, dt)), variants(randpos(6, 4, dt))
      for i = 1, #A do
        local a, b, c = A[i], B[(i % #B) + 1], C[((i + 1) % #C) + 1]
        for _, op in ipairs {'addcmul', 'addcdiv', 'lerp', 'where'} do
          check(core.ternary(op, nil, a[3], b[3], c[3], 0.3), core.ternary(op, nil, a[2], b[2], c[2], 0.3),
            op .. ' ' .. dt .. ' ' .. a[1])
        end
      end
      local x, t1, t2 = randn(3, 5, dt), randn(3, 5, dt), randpos(3, 5, dt)
      check(G(x):addcmul(0.5, G(t1), G(t2)), x:clone():addcmul(0.5, t1, t2), 'x:addcmul ' .. dt)
      check(G(x):addcdiv(2, G(t1), G(t2)), x:clone():addcdiv(2, t1, t2), 'x:addcdiv ' .. dt)
    end
    local m = nd.Tensor({{1, 0, 2}}, 'uint8')
    local b, c = nd.Tensor({{1, 2, 3}}), nd.Tensor({{-1, -2, -3}})
    check(core.ternary('where', nil, G(m), G(b), G(c)), core.ternary('where', nil, m, b, c), 'where, uint8 mask')
  end)

  git('fill and zero on any layout, results written in place', function()
    for _, v in ipairs(variants(randn(5, 6))) do
      if v[1] ~= 'expanded' then
        v[3]:fill(2.5); v[2]:fill(2.5)
        check(v[3], v[2], 'fill ' .. v[1])
        v[3]:zero(); v[2]:zero()
        check(v[3], v[2], 'zero ' .. v[1])
      end
    end
    local r = G(nd.zeros(3, 4))
    local a = G(randn(3, 4))
    assert.are.equal(r, core.unary('exp', r, a))
    check(r, core.unary('exp', nil, H(a)), 'exp into a given result')
  end)
end)

describe('nd math on CUDA: reductions', function()
  local float_ops = {'sum', 'prod', 'mean', 'max', 'min', 'var', 'std', 'logsumexp', 'count_nonzero', 'any', 'all'}

  git('reductions along each dim and over all, every layout', function()
    for _, dt in ipairs {'float32', 'float64'} do
      local x = randn(9, 7, dt)
      x[{2, 3}] = 0
      for _, v in ipairs(variants(x)) do
        for _, op in ipairs(float_ops) do
          for d = 1, 2 do
            check(core.reduce(op, nil, nil, v[3], d), core.reduce(op, nil, nil, v[2], d), op .. '(' .. d .. ') ' .. dt .. ' ' .. v[1])
          end
          local g, c = core.reduceall(op, v[3]), core.reduceall(op, v[2])
          if type(c) == 'boolean' then assert.are.equal(c, g)
          else num_check(g, c, op .. '() ' .. dt .. ' ' .. v[1], TOL[dt]) end
        end
        for _, p in ipairs {0, 1, 2, 3, math.huge, -math.huge} do
          check(core.reduce('norm', nil, nil, v[3], 2, p), core.reduce('norm', nil, nil, v[2], 2, p), 'norm ' .. p)
          num_check(core.reduceall('norm', v[3], p), core.reduceall('norm', v[2], p), 'norm() ' .. p, TOL[dt])
        end
        check(core.reduce('var', nil, nil, v[3], 1, false), core.reduce('var', nil, nil, v[2], 1, false), 'var biased')
      end
    end
  end)

  git('max/min/argmax/argmin: first occurrence on ties, first NaN wins, 1-based indices', function()
    local x = nd.Tensor({{1, 3, 3, 0}, {2, 2, 1, 2}, {0 / 0, 5, 0 / 0, 1}, {4, 4, 4, 4}}, 'float32')
    for _, v in ipairs(variants(x)) do
      for _, op in ipairs {'max', 'min'} do
        for d = 1, 2 do
          local gv, gi = core.reduce(op, nil, nil, v[3], d)
          local cv, ci = core.reduce(op, nil, nil, v[2], d)
          check(gv, cv, op .. ' values ' .. d .. ' ' .. v[1]); check(gi, ci, op .. ' indices ' .. d .. ' ' .. v[1])
          local a = 'arg' .. op
          check(core.reduce(a, nil, nil, v[3], d), core.reduce(a, nil, nil, v[2], d), a .. ' ' .. d .. ' ' .. v[1])
        end
        local g1, g2 = core.reduceall(op, v[3])
        local c1, c2 = core.reduceall(op, v[2])
        assert.are.equal(c2, g2)
        if c1 ~= c1 then assert.is_true(g1 ~= g1) else assert.are.equal(c1, g1) end
      end
    end
    local vals, idx = G(x):max(2)
    local cv, ci = x:max(2)
    check(vals, cv, 'x:max(2)'); check(idx, ci, 'x:max(2) indices')
  end)

  git('integer reductions are exact', function()
    local x = nd.Tensor({{3, -1, 4}, {1, 5, -9}, {2, 6, 5}}, 'int64')
    for _, v in ipairs(variants(x)) do
      for _, op in ipairs {'sum', 'prod', 'mean', 'max', 'min', 'argmax', 'count_nonzero', 'var'} do
        check(core.reduce(op, nil, nil, v[3], 1), core.reduce(op, nil, nil, v[2], 1), op .. ' int64 ' .. v[1])
        local g, c = core.reduceall(op, v[3]), core.reduceall(op, v[2])
        assert.are.equal(math.type(c), math.type(g))
        num_check(g, c, op .. '() int64', 1e-12)
      end
    end
    assert.are.equal(G(nd.Tensor({200, 100}, 'uint8')):sum(), 300)
  end)

  git('large reductions: split lines, column lines, whole tensor', function()
    local a = nd.randn(3, 70000)
    for _, op in ipairs {'sum', 'mean', 'max', 'argmin', 'var', 'norm', 'logsumexp'} do
      check(core.reduce(op, nil, nil, G(a), 2), core.reduce(op, nil, nil, a, 2), op .. ' 3x70000 along 2')
    end
    local b = nd.randn(4000, 37, 'float64')
    for _, op in ipairs {'sum', 'max', 'std'} do
      check(core.reduce(op, nil, nil, G(b), 1), core.reduce(op, nil, nil, b, 1), op .. ' 4000x37 along 1')
      check(core.reduce(op, nil, nil, G(b), 2), core.reduce(op, nil, nil, b, 2), op .. ' 4000x37 along 2')
    end
    local c = nd.randn(1000, 1000)
    num_check(G(c):sum(), c:sum(), 'sum of 1e6', 1e-6)
    num_check(G(c):t():mean(), c:t():mean(), 'mean of a transposed 1e6', 1e-6)
    num_check(G(c):std(), c:std(), 'std of 1e6', 1e-6)
    local gm, gi = core.reduceall('max', G(c))
    local cm, ci = core.reduceall('max', c)
    assert.are.equal(cm, gm); assert.are.equal(ci, gi)
    assert.are.equal(c:argmin(), G(c):argmin())
  end)

  git('cumsum and cumprod along each dim', function()
    for _, dt in ipairs {'float32', 'float64'} do
      for _, v in ipairs(variants(nd.rand(6, 5, dt):add(0.5))) do
        for _, op in ipairs {'cumsum', 'cumprod'} do
          for d = 1, 2 do
            check(core.cumulate(op, nil, v[3], d), core.cumulate(op, nil, v[2], d), op .. ' ' .. d .. ' ' .. v[1])
          end
        end
      end
    end
    local i = nd.Tensor({{1, 2}, {3, 4}}, 'int64')
    check(core.cumulate('cumsum', nil, G(i), 1), core.cumulate('cumsum', nil, i, 1), 'cumsum int64')
  end)
end)

describe('nd math on CUDA: products (cuBLAS)', function()
  local function mats(r, c, dt)
    local x = nd.randn(r, c, dt)
    return variants(x)
  end

  git('mm on every layout pair, float32 and float64', function()
    for _, dt in ipairs {'float32', 'float64'} do
      local A, B = mats(13, 17, dt), mats(17, 11, dt)
      for _, a in ipairs(A) do
        for _, b in ipairs(B) do
          check(nd.mm(a[3], b[3]), nd.mm(a[2], b[2]), 'mm ' .. dt .. ' ' .. a[1] .. ' x ' .. b[1])
        end
      end
    end
    local a, b = nd.randn(130, 70), nd.randn(70, 90)
    check(G(a) * G(b), a * b, 'a * b')
    check(G(b):t():mm(G(a):t()), b:t():mm(a:t()), 'transposed operands')
    assert.is_false(core.cudatf32(), 'TF32 must be off by default')
  end)

  git('addmm with beta, alpha, an expanded bias, a transposed result and aliasing', function()
    local a, b, bias = nd.randn(8, 5), nd.randn(5, 6), nd.randn(6)
    check(nd.addmm(0.5, G(bias):view(1, 6):expand(8, 6), 2, G(a), G(b)), nd.addmm(0.5, bias:view(1, 6):expand(8, 6), 2, a, b),
      'addmm expanded bias')
    local rc = nd.randn(6, 8)
    local rg = G(rc)
    check(rg:t():addmm(0.3, 1.5, G(a), G(b)), rc:t():addmm(0.3, 1.5, a, b), 'addmm into a transposed result')
    local sq = nd.randn(6, 6)
    local sg = G(sq)
    check(sg:addmm(sg, sg), sq:clone():addmm(sq:clone(), sq:clone()), 'addmm with the result as an operand')
    local z = G(nd.Tensor(8, 6):fill(0 / 0))
    check(z:addmm(0, 1, G(a), G(b)), nd.mm(a, b), 'beta 0 ignores NaN in the result')
    local ia, ib = nd.Tensor({{1, 2}, {3, 4}}, 'int64'), nd.Tensor({{5, -6}, {7, 8}}, 'int64')
    check(nd.mm(G(ia), G(ib)), nd.mm(ia, ib), 'mm int64')
  end)

  git('bmm and baddbmm, transposed and expanded batches', function()
    for _, dt in ipairs {'float32', 'float64'} do
      local a, b = nd.randn(4, 6, 5, dt), nd.randn(4, 5, 3, dt)
      check(nd.bmm(G(a), G(b)), nd.bmm(a, b), 'bmm ' .. dt)
      local at = a:transpose(2, 3):contiguous()
      check(nd.bmm(G(at):transpose(2, 3), G(b)), nd.bmm(at:transpose(2, 3), b), 'bmm transposed matrices ' .. dt)
      local b1 = nd.randn(1, 5, 3, dt)
      check(nd.bmm(G(a), G(b1):expand(4, 5, 3)), nd.bmm(a, b1:expand(4, 5, 3)), 'bmm expanded batch ' .. dt)
      local c = nd.randn(4, 6, 3, dt)
      check(nd.baddbmm(0.5, G(c), 2, G(a), G(b)), nd.baddbmm(0.5, c, 2, a, b), 'baddbmm ' .. dt)
      local perm = a:permute(2, 1, 3):contiguous() -- 6 x 4 x 5: batch stride 5, not the largest
      check(nd.bmm(G(perm):permute(2, 1, 3), G(b)), nd.bmm(perm:permute(2, 1, 3), b), 'bmm permuted batch ' .. dt)
    end
  end)

  git('mv, addmv, ger, addr and dot', function()
    for _, dt in ipairs {'float32', 'float64'} do
      local m, v = nd.randn(7, 9, dt), nd.randn(18, dt)
      local vs = v:unfold(1, 1, 2):select(2, 1) -- 9 elements, stride 2
      check(nd.mv(G(m), G(v):unfold(1, 1, 2):select(2, 1)), nd.mv(m, vs), 'mv strided vector ' .. dt)
      check(nd.mv(G(m:t():contiguous()):t(), G(vs:contiguous())), nd.mv(m, vs:contiguous()), 'mv transposed matrix ' .. dt)
      local c = nd.randn(7, dt)
      check(nd.addmv(0.5, G(c), 2, G(m), G(vs:contiguous())), nd.addmv(0.5, c, 2, m, vs:contiguous()), 'addmv ' .. dt)
      local x, y = nd.randn(5, dt), nd.randn(4, dt)
      check(nd.ger(G(x), G(y)), nd.ger(x, y), 'ger ' .. dt)
      local M = nd.randn(5, 4, dt)
      check(nd.addr(0.5, G(M), 3, G(x), G(y)), nd.addr(0.5, M, 3, x, y), 'addr ' .. dt)
      num_check(G(x):dot(G(x)), x:dot(x), 'dot ' .. dt, TOL[dt])
      num_check(G(m):dot(G(m)), m:dot(m), 'dot of matrices ' .. dt, TOL[dt])
      num_check(G(m):t():dot(G(m):t()), m:t():dot(m:t()), 'dot of transposed matrices ' .. dt, TOL[dt])
    end
    local i = nd.Tensor({1, 2, 3}, 'int64')
    assert.are.equal(i:dot(i), G(i):dot(G(i)))
    assert.are.equal('integer', math.type(G(i):dot(G(i))))
  end)
end)

describe('nd math on CUDA: index operations', function()
  git('index_select with GPU and CPU index lists, every layout', function()
    for _, v in ipairs(variants(nd.randn(6, 5))) do
      for d = 1, 2 do
        local idx = nd.LongTensor({3, 1, 3, 2})
        check(v[3]:index(d, G(idx)), v[2]:index(d, idx), 'index ' .. d .. ' ' .. v[1])
        check(v[3]:index(d, {2, 1}), v[2]:index(d, {2, 1}), 'index with a table ' .. d .. ' ' .. v[1])
      end
    end
    local ok1, err = pcall(function() return G(nd.randn(3, 4)):index(1, {1, 4}) end)
    assert.is_false(ok1)
    assert.truthy(tostring(err):find('out of range', 1, true), tostring(err))
  end)

  git('index_copy, index_add, index_fill', function()
    local x, src = nd.randn(5, 4), nd.randn(5, 2)
    local idx = nd.LongTensor({4, 1})
    local gx = G(x)
    check(gx:indexCopy(2, G(idx), G(src)), x:clone():indexCopy(2, idx, src), 'indexCopy')
    local rep = nd.LongTensor({2, 2, 5})
    local s3 = nd.randn(3, 4)
    check(G(x):indexAdd(1, rep, G(s3)), x:clone():indexAdd(1, rep, s3), 'indexAdd with repeated indices')
    check(G(x):t():indexFill(2, {1, 3}, -1), x:clone():t():indexFill(2, {1, 3}, -1), 'indexFill transposed')
  end)

  git('gather, scatter, scatterAdd', function()
    local x = nd.randn(4, 6)
    local idx = nd.LongTensor({{1, 6, 2}, {3, 3, 1}, {6, 5, 4}, {2, 2, 2}})
    for _, v in ipairs(variants(x)) do
      check(v[3]:gather(2, G(idx)), v[2]:gather(2, idx), 'gather ' .. v[1])
    end
    local labels = nd.LongTensor({{2}, {1}, {4}, {3}})
    check(G(x):gather(2, labels), x:gather(2, labels), 'gather with CPU labels')
    local perm = nd.LongTensor({{2, 3, 1, 4}, {4, 1, 2, 3}})
    local src = nd.randn(2, 4)
    check(G(nd.zeros(4, 4)):scatter(1, G(perm), G(src)), nd.zeros(4, 4):scatter(1, perm, src), 'scatter')
    check(G(nd.zeros(4, 4)):scatter(1, G(perm), 7), nd.zeros(4, 4):scatter(1, perm, 7), 'scatter a value')
    local many = nd.LongTensor({{1, 1, 1, 1}, {1, 2, 1, 2}})
    check(G(nd.ones(2, 4)):scatterAdd(1, G(many), G(src)), nd.ones(2, 4):scatterAdd(1, many, src), 'scatterAdd')
    local ok1, err = pcall(function() return G(x):gather(2, G(nd.LongTensor({{7}, {1}, {1}, {1}}))) end)
    assert.is_false(ok1)
    assert.truthy(tostring(err):find('out of range', 1, true), tostring(err))
  end)

  git('maskedFill and cat', function()
    local x = nd.randn(4, 5)
    local m = x:gt(0)
    check(G(x):maskedFill(G(m), -3), x:clone():maskedFill(m, -3), 'maskedFill')
    check(G(x):t():maskedFill(G(m):t(), 9), x:clone():t():maskedFill(m:t(), 9), 'maskedFill transposed')
    local a, b = nd.randn(2, 3), nd.randn(4, 3)
    check(nd.cat(G(a), G(b), 1), nd.cat(a, b, 1), 'cat dim 1')
    check(nd.cat({G(a):t(), G(b):t(), G(a):t()}, 2), nd.cat({a:t(), b:t(), a:t()}, 2), 'cat transposed, dim 2')
    local d = nd.randn(2, 3, 'float64')
    check(nd.cat(G(a), G(d), 1), nd.cat(a, d, 1), 'cat converts to the first dtype')
  end)
end)

describe('nd math on CUDA: devices and errors', function()
  git('mixed devices are an error naming both', function()
    local ok1, err = pcall(function() return nd.add(G(nd.ones(3)), nd.ones(3)) end)
    assert.is_false(ok1)
    assert.truthy(tostring(err):find('one device', 1, true), tostring(err))
    local ok2, err2 = pcall(function() return nd.mm(G(nd.ones(2, 2)), nd.ones(2, 2)) end)
    assert.is_false(ok2)
    assert.truthy(tostring(err2):find('one device', 1, true), tostring(err2))
  end)

  git('ops without a CUDA kernel say so', function()
    local ok1, err = pcall(function() return G(nd.randn(5)):sort() end)
    assert.is_false(ok1)
    assert.truthy(tostring(err):find('CUDA', 1, true) or tostring(err):find('CPU', 1, true), tostring(err))
  end)

  git('results of chained ops stay on the GPU', function()
    local x = G(nd.randn(16, 8))
    local y = (x * 2 + 1):exp():sum(2):mul(0.5)
    assert.are.equal('cuda', core.device(y))
    local w = G(nd.randn(8, 4))
    local z = x:mm(w):add(1):clamp(-1, 1)
    assert.are.equal('cuda', core.device(z))
    check(z, H(x):mm(H(w)):add(1):clamp(-1, 1), 'chain mm add clamp')
  end)
end)

describe('nd math on CUDA: without a GPU', function()
  it('keeps the CPU paths (dispatch through the same bindings)', function()
    local a = nd.randn(4, 3)
    assert.are.equal('cpu', core.device(nd.mm(a, a:t())))
    assert.are.equal('cpu', core.device(a:index(1, {2})))
    assert.are.equal('cpu', core.device(nd.cat(a, a, 1)))
    assert.are.equal('cpu', core.device(a:sum(1)))
    assert.is_true(math.abs(a:sum() - a:sum(1):sum()) < 1e-5)
  end)
end)
