-- Elementwise math, comparisons, reductions and the arithmetic operators: the Torch7 API over the
-- nd.core kernels of src/lua/bind_math.c.
--
-- Forms (Torch7's):
--   x:abs()            x = |x| in place, returns x      x:abs(y)        x = |y| (x resized), returns x
--   nd.abs(y)          a new tensor                     nd.abs(res, y)  res = |y|, returns res
--   x:add(v)  x:add(y)  x:add(v, y)          in place: x + v, x + y, x + v * y
--   res:add(a, b)  res:add(a, v)  res:add(a, v, b)     res = a + b, a + v, a + v * b (res resized)
--   nd.add(a, b)  nd.add(a, v, b)            new tensors (a number may stand on either side)
--   nd.add(res, a, b)  nd.add(res, a, v)  nd.add(res, a, v, b)   into res
-- The same holds for csub (subtraction: Torch7 keeps x:sub for the sub-tensor view), mul, cmul,
-- div, cdiv, cmax, cmin, fmod, remainder, pow, cpow, atan2 (the v * y forms only for add and csub).
-- Comparisons x:eq(y or v), ne, lt, le, gt, ge return a NEW uint8 mask (Torch7's ByteTensor);
-- res:eq(a, b) and nd.eq(res, a, b) write res; nd.eq(a, b) is new. logicalAnd/Or/Xor likewise
-- (tensors only; nonzero is true).
--
-- Broadcasting: numpy rules (align trailing dims; size 1 expands). In-place forms broadcast the
-- operand to self's shape. Shapes that do not broadcast but hold the same number of elements pair
-- up in row-major order (Torch7). Otherwise: "nd.add: sizes 2x3 and 4 do not broadcast".
--
-- dtypes: in-place and result forms keep the result's dtype. New tensors take the promoted dtype
-- of the tensor operands (float64 > float32 > int64 > uint8); a number never changes the dtype
-- (Torch7: int64 x:mul(0.5) stays int64, truncated). Integer div / cdiv / `/` truncate toward
-- zero (Torch7, C); `//` floors; `%` has the sign of the divisor (Lua). Float-only functions
-- (sqrt, exp, log, tanh, sigmoid, ...) of integer tensors give new tensors of the default dtype;
-- in place on an integer tensor they raise an error.
--
-- Reductions: x:sum() is a number, x:sum(d) a tensor that keeps dim d with size 1 (negative d
-- counts from the end). x:max(d) / x:min(d) return values and int64 indices (1-based, first
-- occurrence, NaN wins); x:max() is a number. mean/var/std/norm/logsumexp of integer tensors are
-- float64; sum/prod of integer tensors int64. var/std(d, flag): Torch7's flag, true divides by n,
-- the default by n - 1. x:norm(p, d) (p = 2 by default, 0 counts nonzeros, math.huge: max |x|).
-- Sums of integer tensors come back as Lua integers.
--
-- Operators: + - / % // ^ and unary - work elementwise (broadcasting) with numbers on either side
-- and return new tensors; * is elementwise with a number, and between two tensors the matrix
-- product as in Torch7 (2-d * 2-d: mm, 2-d * 1-d: mv, 1-d * 1-d: dot, a number).
return function(nd, Tensor, core)
  local istensor = core.istensor
  local csize, cdim, cnumel, cdtype = core.size, core.dim, core.numel, core.dtype
  local samesize = core.samesize
  local unary, binary, ternary = core.unary, core.binary, core.ternary
  local reduce, reduceall, cumulate = core.reduce, core.reduceall, core.cumulate

  local function shape(t) return nd.shape(t) end
  local function fail(fname, fmt, ...) error('nd.' .. fname .. ': ' .. string.format(fmt, ...), 0) end
  local function isnum(v) return type(v) == 'number' end
  local function typename(v) return istensor(v) and 'tensor' or type(v) end

  -- ---------------------------------------------------------------- broadcasting

  local function same_list(a, b)
    if #a ~= #b then return false end
    for i = 1, #a do if a[i] ~= b[i] then return false end end
    return true
  end

  -- numpy broadcast of two size lists, or nil.
  local function bsizes(sa, sb)
    local na, nb = #sa, #sb
    if (na == 0) ~= (nb == 0) then return nil end
    local n = na > nb and na or nb
    local r = {}
    for i = 1, n do
      local x, y = sa[i - n + na] or 1, sb[i - n + nb] or 1
      if x == y or y == 1 then r[i] = x elseif x == 1 then r[i] = y else return nil end
    end
    return r
  end

  local function numel_of(s)
    local n = #s > 0 and 1 or 0
    for i = 1, #s do n = n * s[i] end
    return n
  end

  -- t seen with sizes s: expanded, or (Torch7) reshaped when the element counts match; nil if neither.
  local function fit(t, s)
    local st = csize(t)
    if same_list(st, s) then return t end
    local b = bsizes(s, st)
    if b and same_list(b, s) then return core.expand(t, s) end
    if cnumel(t) == numel_of(s) and #s > 0 then return core.view(core.contiguous(t), s) end
    return nil
  end

  local function no_broadcast(fname, ts)
    local names = {}
    for k = 1, #ts do names[k] = shape(ts[k]) end
    fail(fname, 'sizes %s do not broadcast', table.concat(names, ' and '))
  end

  -- The tensors of list ts seen with their common sizes, and those sizes.
  local function broadcast(fname, ts)
    local same = true
    for k = 2, #ts do same = same and samesize(ts[1], ts[k]) end
    if same then return ts, csize(ts[1]) end
    local s = csize(ts[1])
    for k = 2, #ts do s = s and bsizes(s, csize(ts[k])) end
    if not s then -- Torch7: equal element counts pair up in row-major order
      local n = cnumel(ts[1])
      for k = 2, #ts do if cnumel(ts[k]) ~= n then no_broadcast(fname, ts) end end
      s = csize(ts[1])
    end
    local out = {}
    for k = 1, #ts do out[k] = fit(ts[k], s) or no_broadcast(fname, ts) end
    return out, s
  end
  nd._broadcast = broadcast

  local function prepare(res, s)
    if not same_list(csize(res), s) then core.resize(res, s) end
  end

  local rank = {float64 = 3, float32 = 2, int64 = 1, uint8 = 0}
  local function promote(a, b) return rank[a] >= rank[b] and a or b end

  -- A number as a tensor of dtype dt that broadcasts to anything, on the device of tensor `like`.
  local function scalar_tensor(v, dt, like) return core.fill(core.empty(dt, {1}, nd.deviceOf(like)), v) end

  -- ---------------------------------------------------------------- binary arithmetic

  -- op: core.binary op for two tensors; sop: core.unary op for (tensor, number) (neg: negate the
  -- number); rop: core.unary op for (number, tensor); alpha: the a + v * b forms exist.
  local specs = {
    add = {op = 'add', sop = 'add', rop = 'add', alpha = true},
    csub = {op = 'sub', sop = 'add', neg = true, rop = 'rsub', alpha = true},
    mul = {op = 'mul', sop = 'mul', rop = 'mul'},
    div = {op = 'div', sop = 'div', rop = 'rdiv'},
    cmax = {op = 'max', sop = 'max', rop = 'max'},
    cmin = {op = 'min', sop = 'min', rop = 'min'},
    fmod = {op = 'fmod', sop = 'fmod'},
    remainder = {op = 'remainder', sop = 'remainder'},
    pow = {op = 'pow', sop = 'pow', rop = 'rpow'},
    atan2 = {op = 'atan2'},
    floordiv = {op = 'floordiv', sop = 'floordiv'},
    lerp = {op = 'lerp'},
  }
  specs.cmul, specs.cdiv, specs.cpow = specs.mul, specs.div, specs.pow

  -- res (nil: a new tensor) = a op b (+ alpha for add/sub/lerp); a, b tensors or numbers.
  -- res == a is the in-place form: b then broadcasts to a's shape.
  local function compute(fname, spec, res, a, b, alpha)
    if res ~= nil and not istensor(res) then fail(fname, 'expected a tensor result, got %s', typename(res)) end
    if isnum(b) and istensor(a) and spec.sop then
      if res and not samesize(res, a) then core.resize(res, csize(a)) end
      return unary(spec.sop, res, a, spec.neg and -b or b)
    end
    if isnum(a) and istensor(b) then
      if spec.rop then
        if res and not samesize(res, b) then core.resize(res, csize(b)) end
        return unary(spec.rop, res, b, a)
      end
      a = scalar_tensor(a, cdtype(b), b)
    elseif isnum(b) and istensor(a) then
      b = scalar_tensor(b, cdtype(a), a)
    end
    if not istensor(a) or not istensor(b) then
      fail(fname, 'expected tensors or numbers, got %s and %s', typename(a), typename(b))
    end
    if res ~= nil and rawequal(res, a) then
      local bb = fit(b, csize(a)) or no_broadcast(fname, {a, b})
      return binary(spec.op, res, a, bb, alpha)
    end
    local ts, s = broadcast(fname, {a, b})
    if res then prepare(res, s) end
    return binary(spec.op, res, ts[1], ts[2], alpha)
  end

  -- Methods: (v) / (y) in place; (v, y) in place with alpha; (a, v) / (a, b) / (a, v, b) into self.
  local function method(name, spec)
    return function(self, x, y, z)
      if not istensor(self) then fail(name, 'expected a tensor as self, got %s', typename(self)) end
      if z ~= nil then
        if not (spec.alpha and isnum(y)) then fail(name, 'expected [a,] [v,] b, got 3 arguments') end
        return compute(name, spec, self, x, z, y)
      end
      if y == nil then return compute(name, spec, self, self, x) end
      if spec.alpha and isnum(x) and istensor(y) then return compute(name, spec, self, self, y, x) end
      return compute(name, spec, self, x, y)
    end
  end

  -- Functions: (a, b) / (a, v, b) new; (res, a, b) / (res, a, v) / (res, a, v, b) into res.
  local function func(name, spec)
    return function(a, b, c, d)
      if d ~= nil then
        if not (spec.alpha and isnum(c)) then fail(name, 'expected res, a, [v,] b') end
        return compute(name, spec, a, b, d, c)
      end
      if c ~= nil then
        if istensor(a) and (istensor(b) or isnum(b)) and not (spec.alpha and isnum(b)) then
          return compute(name, spec, a, b, c)
        end
        if spec.alpha and isnum(b) then return compute(name, spec, nil, a, c, b) end
        fail(name, 'unexpected arguments %s, %s, %s', typename(a), typename(b), typename(c))
      end
      return compute(name, spec, nil, a, b)
    end
  end

  for _, name in ipairs {'add', 'csub', 'mul', 'cmul', 'div', 'cdiv', 'cmax', 'cmin', 'fmod', 'remainder', 'pow',
                         'cpow', 'atan2'} do
    Tensor[name] = method(name, specs[name])
    nd[name] = func(name, specs[name])
  end
  -- res:pow(v, x) is v ^ x (Torch7); nd.pow(v, x) likewise.

  -- ---------------------------------------------------------------- comparisons

  local flipped = {eq = 'eq', ne = 'ne', lt = 'gt', le = 'ge', gt = 'lt', ge = 'le'}
  local function compare(name, res, a, b)
    if res ~= nil and not istensor(res) then fail(name, 'expected a tensor result, got %s', typename(res)) end
    if istensor(a) and isnum(b) then
      if res then prepare(res, csize(a)) end
      return unary(name, res, a, b)
    end
    if isnum(a) and istensor(b) then
      if res then prepare(res, csize(b)) end
      return unary(flipped[name], res, b, a)
    end
    if not istensor(a) or not istensor(b) then
      fail(name, 'expected tensors or numbers, got %s and %s', typename(a), typename(b))
    end
    local ts, s = broadcast(name, {a, b})
    if res then prepare(res, s) end
    return binary(name, res, ts[1], ts[2])
  end
  for name in pairs(flipped) do
    Tensor[name] = function(self, x, y)
      if y == nil then return compare(name, nil, self, x) end
      return compare(name, self, x, y)
    end
    nd[name] = function(a, b, c)
      if c == nil then return compare(name, nil, a, b) end
      return compare(name, a, b, c)
    end
  end

  -- x:logicalAnd(y), logicalOr, logicalXor: new uint8 masks (nonzero is true); res:logicalAnd(a, b).
  for name, opname in pairs {logicalAnd = 'and', logicalOr = 'or', logicalXor = 'xor'} do
    local function run(res, a, b)
      if not istensor(a) or not istensor(b) then
        fail(name, 'expected two tensors, got %s and %s', typename(a), typename(b))
      end
      local ts, s = broadcast(name, {a, b})
      if res then prepare(res, s) end
      return binary(opname, res, ts[1], ts[2])
    end
    Tensor[name] = function(self, x, y)
      if y == nil then return run(nil, self, x) end
      return run(self, x, y)
    end
    nd[name] = function(a, b, c)
      if c == nil then return run(nil, a, b) end
      return run(a, b, c)
    end
  end

  -- ---------------------------------------------------------------- unary functions

  local float_only = {}
  for _, n in ipairs {'sqrt', 'rsqrt', 'exp', 'log', 'log1p', 'expm1', 'log2', 'log10', 'tanh', 'sigmoid', 'sin',
                      'cos', 'tan', 'asin', 'acos', 'atan', 'sinh', 'cosh', 'erf', 'reciprocal'} do
    float_only[n] = true
  end
  local unary_names = {'neg', 'abs', 'sign', 'relu', 'square', 'floor', 'ceil', 'round', 'trunc', 'frac'}
  for n in pairs(float_only) do unary_names[#unary_names + 1] = n end

  local function is_float(t) local d = cdtype(t); return d == 'float32' or d == 'float64' end

  for _, name in ipairs(unary_names) do
    local fo = float_only[name]
    local function into(res, src)
      if not istensor(res) then fail(name, 'expected a tensor, got %s', typename(res)) end
      if src == nil then return unary(name, res, res) end
      if not istensor(src) then fail(name, 'expected a tensor source, got %s', typename(src)) end
      prepare(res, csize(src))
      return unary(name, res, src)
    end
    Tensor[name] = into
    nd[name] = function(a, b)
      if b ~= nil then return into(a, b) end
      if not istensor(a) then fail(name, 'expected a tensor, got %s', typename(a)) end
      local out = nil
      if fo and not is_float(a) then out = core.empty(nd._dtype(nil), csize(a), nd.deviceOf(a)) end
      return unary(name, out, a)
    end
  end
  Tensor.cinv, nd.cinv = Tensor.reciprocal, nd.reciprocal -- Torch7's name

  -- x:clamp(lo, hi) in place (either bound may be nil); res:clamp(x, lo, hi); nd.clamp(x, lo, hi).
  function Tensor.clamp(self, a, b, c)
    if istensor(a) then
      prepare(self, csize(a))
      return unary('clamp', self, a, b, c)
    end
    return unary('clamp', self, self, a, b)
  end
  function nd.clamp(a, b, c, d)
    if istensor(b) then return Tensor.clamp(a, b, c, d) end
    return unary('clamp', nil, a, b, c)
  end

  -- ---------------------------------------------------------------- ternary

  local function ternary_into(fname, op, res, a, b, c, v)
    for _, t in ipairs {a, b, c} do
      if not istensor(t) then fail(fname, 'expected tensors, got %s', typename(t)) end
    end
    if res ~= nil and rawequal(res, a) then
      local s = csize(a)
      local bb, cc = fit(b, s), fit(c, s)
      if not bb or not cc then no_broadcast(fname, {a, b, c}) end
      return ternary(op, res, a, bb, cc, v)
    end
    local ts, s = broadcast(fname, {a, b, c})
    if res then prepare(res, s) end
    return ternary(op, res, ts[1], ts[2], ts[3], v)
  end

  -- Tensors and the one optional number among the arguments.
  local function split_args(fname, ...)
    local ts, v = {}, nil
    for i = 1, select('#', ...) do
      local x = select(i, ...)
      if istensor(x) then ts[#ts + 1] = x
      elseif isnum(x) and v == nil then v = x
      elseif x ~= nil then fail(fname, 'unexpected argument %d (%s)', i, typename(x)) end
    end
    return ts, v
  end

  -- x:addcmul([v,] t1, t2): x += v * t1 * t2; res:addcmul(a, [v,] t1, t2): res = a + v * t1 * t2;
  -- nd.addcmul(a, [v,] t1, t2) new; nd.addcmul(res, a, [v,] t1, t2). addcdiv: t1 / t2.
  for _, name in ipairs {'addcmul', 'addcdiv'} do
    Tensor[name] = function(self, ...)
      local ts, v = split_args(name, ...)
      if #ts == 2 then return ternary_into(name, name, self, self, ts[1], ts[2], v) end
      if #ts == 3 then return ternary_into(name, name, self, ts[1], ts[2], ts[3], v) end
      fail(name, 'expected [a,] [v,] t1, t2')
    end
    nd[name] = function(...)
      local ts, v = split_args(name, ...)
      if #ts == 3 then return ternary_into(name, name, nil, ts[1], ts[2], ts[3], v) end
      if #ts == 4 then return ternary_into(name, name, ts[1], ts[2], ts[3], ts[4], v) end
      fail(name, 'expected [res,] a, [v,] t1, t2')
    end
  end

  -- res = a + w * (b - a), w a number or a tensor.
  local function lerp(res, a, b, w)
    if isnum(w) then return compute('lerp', specs.lerp, res, a, b, w) end
    return ternary_into('lerp', 'lerp', res, a, b, w)
  end
  -- x:lerp(b, w) in place; res:lerp(a, b, w); nd.lerp(a, b, w) new; nd.lerp(res, a, b, w).
  function Tensor.lerp(self, a, b, c)
    if c == nil then return lerp(self, self, a, b) end
    return lerp(self, a, b, c)
  end
  function nd.lerp(a, b, c, d)
    if d == nil then return lerp(nil, a, b, c) end
    return lerp(a, b, c, d)
  end

  -- nd.where(mask, a, b): a where mask is nonzero, else b (tensors or numbers; broadcasting).
  function nd.where(mask, a, b)
    if not istensor(mask) then fail('where', 'expected a tensor mask, got %s', typename(mask)) end
    local dt
    if istensor(a) and istensor(b) then dt = promote(cdtype(a), cdtype(b))
    else dt = istensor(a) and cdtype(a) or istensor(b) and cdtype(b) or nd._dtype(nil) end
    if isnum(a) then a = scalar_tensor(a, dt, mask) end
    if isnum(b) then b = scalar_tensor(b, dt, mask) end
    if not istensor(a) or not istensor(b) then
      fail('where', 'expected tensors or numbers, got %s and %s', typename(a), typename(b))
    end
    local ts, s = broadcast('where', {mask, a, b})
    local out = core.empty(dt, s, nd.deviceOf(mask))
    return ternary('where', out, ts[1], ts[2], ts[3])
  end

  -- ---------------------------------------------------------------- reductions

  -- Resizes res to x's sizes with dim d set to 1 (when d is valid; the kernel reports bad dims).
  local function prep_reduced(res, x, d)
    if not istensor(res) or not istensor(x) or math.type(d) ~= 'integer' then return end
    local s = csize(x)
    local dd = d < 0 and d + #s + 1 or d
    if dd >= 1 and dd <= #s then
      s[dd] = 1
      prepare(res, s)
    end
  end

  -- x:sum() number; x:sum(d) tensor; res:sum(x, d); nd.sum(x [, d]); nd.sum(res, x, d).
  for _, name in ipairs {'sum', 'prod', 'mean', 'logsumexp'} do
    Tensor[name] = function(x, d, e)
      if istensor(d) then
        if e == nil then fail(name, 'expected res, x, dim') end
        prep_reduced(x, d, e)
        return reduce(name, x, nil, d, e)
      end
      if d == nil then return reduceall(name, x) end
      return reduce(name, nil, nil, x, d)
    end
    nd[name] = Tensor[name]
  end

  -- x:var() / x:var(flag) numbers; x:var(d [, flag]) tensor; flag true: divide by n (Torch7).
  for _, name in ipairs {'var', 'std'} do
    Tensor[name] = function(x, d, flag, f2)
      if istensor(d) then -- res:var(x, dim [, flag])
        prep_reduced(x, d, flag)
        return reduce(name, x, nil, d, flag, not f2)
      end
      if d == nil or type(d) == 'boolean' then return reduceall(name, x, not d) end
      return reduce(name, nil, nil, x, d, not flag)
    end
    nd[name] = Tensor[name]
  end

  -- x:norm([p]) number; x:norm(p, d) tensor; res:norm(x, p, d).
  function Tensor.norm(x, p, d, e)
    if istensor(p) then
      prep_reduced(x, p, e)
      return reduce('norm', x, nil, p, e, d or 2)
    end
    if d == nil then return reduceall('norm', x, p or 2) end
    return reduce('norm', nil, nil, x, d, p or 2)
  end
  nd.norm = Tensor.norm
  -- ||a - b||_p over all elements (broadcasting).
  function Tensor.dist(a, b, p) return reduceall('norm', compute('dist', specs.csub, nil, a, b), p or 2) end
  nd.dist = Tensor.dist

  -- x:max() number; x:max(d) values, indices; x:max(y) elementwise (new, as nd.cmax);
  -- vals:max(idx, x, d) fills vals and idx (Torch7's torch.max(resval, resind, x, d)).
  for name, cname in pairs {max = 'cmax', min = 'cmin'} do
    Tensor[name] = function(x, a, b, c)
      if a == nil then
        local v = reduceall(name, x)
        return v
      end
      if istensor(a) then
        if istensor(b) then
          prep_reduced(x, b, c)
          prep_reduced(a, b, c)
          return reduce(name, x, a, b, c)
        end
        return nd[cname](x, a)
      end
      return reduce(name, nil, nil, x, a)
    end
    nd[name] = Tensor[name]
  end

  -- x:argmax() the 1-based row-major position; x:argmax(d) an int64 tensor of 1-based indices.
  -- x:all() / x:any() booleans; x:all(d) a uint8 tensor.
  for _, name in ipairs {'argmax', 'argmin', 'all', 'any'} do
    Tensor[name] = function(x, d)
      if d == nil then return reduceall(name, x) end
      return reduce(name, nil, nil, x, d)
    end
    nd[name] = Tensor[name]
  end

  -- x:countNonzero() an integer; x:countNonzero(d) an int64 tensor.
  function Tensor.countNonzero(x, d)
    if d == nil then return reduceall('count_nonzero', x) end
    return reduce('count_nonzero', nil, nil, x, d)
  end
  nd.countNonzero = Tensor.countNonzero

  -- x:cumsum([d = 1]) a new tensor; res:cumsum(x [, d]); nd.cumsum([res,] x [, d]).
  for _, name in ipairs {'cumsum', 'cumprod'} do
    Tensor[name] = function(x, a, b)
      if istensor(a) then
        prepare(x, csize(a))
        return cumulate(name, x, a, b or 1)
      end
      return cumulate(name, nil, x, a or 1)
    end
    nd[name] = Tensor[name]
  end

  -- ---------------------------------------------------------------- operators

  local function op(name, spec) return function(a, b) return compute(name, spec, nil, a, b) end end
  Tensor.__add = op('add', specs.add)
  Tensor.__sub = op('sub', specs.csub)
  Tensor.__div = op('div', specs.div)
  Tensor.__mod = op('mod', specs.remainder)
  Tensor.__idiv = op('idiv', specs.floordiv)
  Tensor.__pow = op('pow', specs.pow)
  function Tensor.__unm(a) return unary('neg', nil, a) end
  function Tensor.__mul(a, b)
    if isnum(a) or isnum(b) then return compute('mul', specs.mul, nil, a, b) end
    if not istensor(a) or not istensor(b) then
      fail('mul', 'expected tensors or numbers, got %s and %s', typename(a), typename(b))
    end
    local da, db = cdim(a), cdim(b)
    if da == 2 and db == 2 then return nd.mm(a, b) end
    if da == 2 and db == 1 then return nd.mv(a, b) end
    if da == 1 and db == 1 then return nd.dot(a, b) end
    fail('mul', 'tensor * tensor is a matrix product (2-d * 2-d, 2-d * 1-d or 1-d * 1-d), got %s and %s; '
      .. 'use cmul for elementwise products', shape(a), shape(b))
  end
end
