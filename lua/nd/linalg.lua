-- Matrix products, index operations, sorting, concatenation and splitting: the Torch7 API over
-- the nd.core kernels (src/lua/bind_linalg.c). Indices are 1-based everywhere in Lua.
--
-- Result conventions (Torch7's, with one addition):
--   nd.mm(a, b)          a new tensor a @ b
--   nd.mm(res, a, b)     res = a @ b (res resized), returns res; res:mm(a, b) is the same call
--   a:mm(b)              ONE tensor argument: a new tensor a @ b (self is the left operand).
-- Torch7 reads x:mm(a, b) as "x = a @ b"; with a single argument there is no result tensor to
-- fill, so the only useful reading is "self @ b". The same rule holds for bmm, mv, ger and cat.
-- add* functions take Torch7's [res,] [beta,] M, [alpha,] x, y: as functions (nd.addmm(M, a, b))
-- they return a new tensor; as methods (res:addmm(a, b)) self is the result, and self is also M
-- when M is left out. A number right before M is beta, a number right before x is alpha; with M
-- left out, one number is alpha and two are beta, alpha.
--
-- topk follows Torch7: x:topk(k, dim, dir, sorted) returns the k SMALLEST by default; pass
-- dir = true for the k largest (values and indices are always returned sorted, best first).
return function(nd, Tensor, core)
  local istensor = core.istensor
  local cdim, csize = core.dim, core.size

  local function shape(t) return nd.shape(t) end
  local function fail(level, fname, fmt, ...)
    error(fname .. ': ' .. string.format(fmt, ...), level + 1)
  end
  local function posdim(t, d, fname)
    local n = cdim(t)
    if math.type(d) ~= 'integer' then fail(3, fname, 'dimension must be an integer, got %s', tostring(d)) end
    if d < 0 then d = d + n + 1 end
    if d < 1 or d > n then fail(3, fname, 'dimension %d out of range for a %d-d tensor (%s)', d, n, shape(t)) end
    return d
  end
  local function need_tensor(fname, what, t)
    if not istensor(t) then fail(3, fname, 'expected a tensor as %s, got %s', what, type(t)) end
  end

  -- ---------------------------------------------------------------- products

  local function check_mm(fname, a, b)
    need_tensor(fname, 'left operand', a); need_tensor(fname, 'right operand', b)
    if cdim(a) ~= 2 or cdim(b) ~= 2 then
      fail(3, fname, 'expected two matrices, got %s and %s', shape(a), shape(b))
    end
    local k1, k2 = csize(a, 2), csize(b, 1)
    if k1 ~= k2 then
      fail(3, fname, 'size mismatch, %s and %s (inner dimensions %d and %d differ)', shape(a), shape(b), k1, k2)
    end
  end
  local function check_bmm(fname, a, b)
    need_tensor(fname, 'left operand', a); need_tensor(fname, 'right operand', b)
    if cdim(a) ~= 3 or cdim(b) ~= 3 then
      fail(3, fname, 'expected two 3-d batches of matrices, got %s and %s', shape(a), shape(b))
    end
    if csize(a, 1) ~= csize(b, 1) then fail(3, fname, 'batch sizes differ, %s and %s', shape(a), shape(b)) end
    if csize(a, 3) ~= csize(b, 2) then
      fail(3, fname, 'size mismatch, %s and %s (inner dimensions %d and %d differ)', shape(a), shape(b),
        csize(a, 3), csize(b, 2))
    end
  end
  local function check_mv(fname, a, v)
    need_tensor(fname, 'matrix', a); need_tensor(fname, 'vector', v)
    if cdim(a) ~= 2 or cdim(v) ~= 1 then
      fail(3, fname, 'expected a matrix and a vector, got %s and %s', shape(a), shape(v))
    end
    if csize(a, 2) ~= csize(v, 1) then
      fail(3, fname, 'size mismatch, %s and %s (matrix columns %d, vector length %d)', shape(a), shape(v),
        csize(a, 2), csize(v, 1))
    end
  end
  local function check_ger(fname, x, y)
    need_tensor(fname, 'first vector', x); need_tensor(fname, 'second vector', y)
    if cdim(x) ~= 1 or cdim(y) ~= 1 then fail(3, fname, 'expected two vectors, got %s and %s', shape(x), shape(y)) end
  end

  -- Each product: its shape check, the result size, and the core kernel.
  local products = {
    mm = {check_mm, function(a, b) return {csize(a, 1), csize(b, 2)} end, core.addmm, 'addmm'},
    bmm = {check_bmm, function(a, b) return {csize(a, 1), csize(a, 2), csize(b, 3)} end, core.baddbmm, 'baddbmm'},
    mv = {check_mv, function(a) return {csize(a, 1)} end, core.addmv, 'addmv'},
    ger = {check_ger, function(x, y) return {csize(x, 1), csize(y, 1)} end, core.addr, 'addr'},
  }

  -- res = beta * M + alpha * (x . y); res nil: a new tensor.
  local function run_product(p, fname, res, beta, M, alpha, x, y)
    p[1](fname, x, y)
    if res ~= nil then
      need_tensor(fname, 'result', res)
      if res ~= M then core.resize(res, p[2](x, y)) end
    end
    if M ~= nil and beta ~= 0 then need_tensor(fname, 'added tensor', M) end
    return p[3](res, beta, M, alpha, x, y)
  end

  -- mm-like: f(a, b) new; f(res, a, b) into res.
  local function plain(name)
    local p = products[name]
    return function(r, a, b)
      if b == nil then return run_product(p, name, nil, 0, nil, 1, r, a) end
      return run_product(p, name, r, 0, nil, 1, a, b)
    end
  end

  -- Torch7's [res,] [beta,] M, [alpha,] x, y. method: self is the result (and M when left out).
  local function add_args(fname, method, ...)
    local args = table.pack(...)
    local ts, nums, pending = {}, {}, {}
    for i = 1, args.n do
      local v = args[i]
      if istensor(v) then
        ts[#ts + 1] = v; nums[#ts] = pending; pending = {}
      elseif type(v) == 'number' then
        pending[#pending + 1] = v
      elseif v ~= nil then
        fail(3, fname, 'unexpected argument %d of type %s', i, type(v))
      end
    end
    local usage = '[res,] [beta,] M, [alpha,] x, y'
    if #pending > 0 or #ts < 3 or #ts > 4 then fail(3, fname, 'expected %s', usage) end
    local res, M, x, y, beta, alpha
    if #ts == 4 then
      if #nums[1] > 0 or #nums[2] > 1 or #nums[3] > 1 or #nums[4] > 0 then fail(3, fname, 'expected %s', usage) end
      res, M, x, y, beta, alpha = ts[1], ts[2], ts[3], ts[4], nums[2][1], nums[3][1]
    elseif method then -- res:addmm([beta,] [alpha,] x, y): M is res
      local n = nums[2]
      if #nums[1] > 0 or #n > 2 or #nums[3] > 0 then fail(3, fname, 'expected %s', usage) end
      res, M, x, y = ts[1], ts[1], ts[2], ts[3]
      if #n == 2 then beta, alpha = n[1], n[2] else alpha = n[1] end
    else -- nd.addmm([beta,] M, [alpha,] x, y): a new result
      if #nums[1] > 1 or #nums[2] > 1 or #nums[3] > 0 then fail(3, fname, 'expected %s', usage) end
      M, x, y, beta, alpha = ts[1], ts[2], ts[3], nums[1][1], nums[2][1]
    end
    return res, beta or 1, M, alpha or 1, x, y
  end

  local function add_product(name, fname)
    local p = products[name]
    return function(...) return run_product(p, fname, add_args(fname, false, ...)) end,
      function(...) return run_product(p, fname, add_args(fname, true, ...)) end
  end

  for _, name in ipairs {'mm', 'bmm', 'mv', 'ger'} do
    nd[name] = plain(name)
    Tensor[name] = nd[name]
  end
  nd.addmm, Tensor.addmm = add_product('mm', 'addmm')
  nd.baddbmm, Tensor.baddbmm = add_product('bmm', 'baddbmm')
  nd.addmv, Tensor.addmv = add_product('mv', 'addmv')
  nd.addr, Tensor.addr = add_product('ger', 'addr')

  -- addbmm: res = beta * M + alpha * sum_i x[i] @ y[i] (a sum of batched products).
  local function addbmm(method, ...)
    local res, beta, M, alpha, x, y = add_args('addbmm', method, ...)
    check_bmm('addbmm', x, y)
    local first = core.select(x, 1, 1)
    local r = run_product(products.mm, 'addbmm', res, beta, M, alpha, first, core.select(y, 1, 1))
    for i = 2, csize(x, 1) do core.addmm(r, 1, nil, alpha, core.select(x, 1, i), core.select(y, 1, i)) end
    return r
  end
  nd.addbmm = function(...) return addbmm(false, ...) end
  Tensor.addbmm = function(...) return addbmm(true, ...) end

  function nd.dot(a, b)
    need_tensor('dot', 'first operand', a); need_tensor('dot', 'second operand', b)
    return core.dot(a, b)
  end
  Tensor.dot = nd.dot

  -- matmul: by dimensions, 1-d . 1-d dot, 2-d . 1-d mv, 1-d . 2-d (row vector), 2-d . 2-d mm,
  -- 3-d . 3-d bmm.
  function nd.matmul(a, b)
    need_tensor('matmul', 'left operand', a); need_tensor('matmul', 'right operand', b)
    local da, db = cdim(a), cdim(b)
    if da == 1 and db == 1 then return core.dot(a, b) end
    if da == 2 and db == 1 then return nd.mv(a, b) end
    if da == 1 and db == 2 then
      check_mm('matmul', core.unsqueeze(a, 1), b)
      return core.view(nd.mm(core.unsqueeze(a, 1), b), {csize(b, 2)})
    end
    if da == 2 and db == 2 then return nd.mm(a, b) end
    if da == 3 and db == 3 then return nd.bmm(a, b) end
    fail(2, 'matmul', 'unsupported operand shapes %s and %s', shape(a), shape(b))
  end
  Tensor.matmul = nd.matmul

  -- ---------------------------------------------------------------- threads

  function nd.setnumthreads(n)
    if math.type(n) ~= 'integer' or n < 1 then error('setnumthreads: expected a positive integer, got ' .. tostring(n), 2) end
    core.setnumthreads(n)
  end
  function nd.getnumthreads() return core.getnumthreads() end
  nd.setNumThreads, nd.getNumThreads = nd.setnumthreads, nd.getnumthreads
  function nd.blasconfig() return core.blasconfig() end

  -- ---------------------------------------------------------------- index operations

  -- Index lists may be tensors of any dtype or Lua tables of integers (1-based).
  local function as_index(fname, idx)
    if istensor(idx) then return idx end
    if type(idx) == 'table' then return nd.LongTensor(idx) end
    if math.type(idx) == 'integer' then return nd.LongTensor({idx}) end
    fail(3, fname, 'expected an index tensor or a table of indices, got %s', type(idx))
  end

  -- x:index(dim, idx) -> new; res:index(src, dim, idx) -> res (Torch7). nd.index likewise.
  local function index(a, b, c, d)
    local res, x, dim, idx
    if istensor(b) then res, x, dim, idx = a, b, c, d else x, dim, idx = a, b, c end
    need_tensor('index', 'source', x)
    dim = posdim(x, dim, 'index')
    idx = as_index('index', idx)
    if res ~= nil then
      local s = csize(x)
      s[dim] = core.numel(idx)
      core.resize(res, s)
    end
    return core.indexselect(res, x, dim, idx)
  end
  nd.index, Tensor.index = index, index
  nd.indexSelect, Tensor.indexSelect = index, index

  function Tensor.indexCopy(x, dim, idx, src)
    need_tensor('indexCopy', 'source', src)
    return core.indexcopy(x, posdim(x, dim, 'indexCopy'), as_index('indexCopy', idx), src)
  end
  function Tensor.indexAdd(x, dim, idx, src)
    need_tensor('indexAdd', 'source', src)
    return core.indexadd(x, posdim(x, dim, 'indexAdd'), as_index('indexAdd', idx), src)
  end
  function Tensor.indexFill(x, dim, idx, value)
    return core.indexfill(x, posdim(x, dim, 'indexFill'), as_index('indexFill', idx), value)
  end
  nd.indexCopy, nd.indexAdd, nd.indexFill = Tensor.indexCopy, Tensor.indexAdd, Tensor.indexFill

  -- x:gather(dim, idx) -> new (idx's shape); res:gather(src, dim, idx) -> res.
  local function gather(a, b, c, d)
    local res, x, dim, idx
    if istensor(b) then res, x, dim, idx = a, b, c, d else x, dim, idx = a, b, c end
    need_tensor('gather', 'source', x)
    dim = posdim(x, dim, 'gather')
    idx = as_index('gather', idx)
    if res ~= nil then core.resize(res, csize(idx)) end
    return core.gather(res, x, dim, idx)
  end
  nd.gather, Tensor.gather = gather, gather

  -- x:scatter(dim, idx, src or value) -> x; x:scatterAdd(dim, idx, src) -> x.
  function Tensor.scatter(x, dim, idx, src)
    if type(src) ~= 'number' then need_tensor('scatter', 'source', src) end
    return core.scatter(x, posdim(x, dim, 'scatter'), as_index('scatter', idx), src)
  end
  function Tensor.scatterAdd(x, dim, idx, src)
    need_tensor('scatterAdd', 'source', src)
    return core.scatteradd(x, posdim(x, dim, 'scatterAdd'), as_index('scatterAdd', idx), src)
  end
  nd.scatter, nd.scatterAdd = Tensor.scatter, Tensor.scatterAdd

  -- A mask of x's shape: same shape, broadcastable (expanded), or the same element count.
  local function mask_for(fname, x, mask)
    need_tensor(fname, 'mask', mask)
    if Tensor.isSameSizeAs(x, mask) then return mask end
    local ok, m = pcall(core.expand, mask, csize(x))
    if ok then return m end
    if core.numel(mask) == core.numel(x) then return core.view(core.contiguous(mask), csize(x)) end
    fail(3, fname, 'mask %s does not match tensor %s', shape(mask), shape(x))
  end

  function Tensor.maskedFill(x, mask, value)
    if type(value) ~= 'number' then fail(2, 'maskedFill', 'expected a number as value, got %s', type(value)) end
    return core.maskedfill(x, mask_for('maskedFill', x, mask), value)
  end
  function Tensor.maskedCopy(x, mask, src)
    need_tensor('maskedCopy', 'source', src)
    return core.maskedcopy(x, mask_for('maskedCopy', x, mask), src)
  end
  -- x:maskedSelect(mask) -> new 1-d; res:maskedSelect(src, mask) -> res.
  function Tensor.maskedSelect(a, b, c)
    local res, x, mask = nil, a, b
    if c ~= nil then res, x, mask = a, b, c end
    need_tensor('maskedSelect', 'source', x)
    local r = core.maskedselect(x, mask_for('maskedSelect', x, mask))
    if res ~= nil then return core.set(res, r) end
    return r
  end
  nd.maskedFill, nd.maskedCopy, nd.maskedSelect = Tensor.maskedFill, Tensor.maskedCopy, Tensor.maskedSelect

  -- x:nonzero() -> int64 n x ndim of 1-based coordinates (an empty tensor when none).
  function Tensor.nonzero(a, b)
    if b ~= nil then return core.set(a, core.nonzero(b)) end
    need_tensor('nonzero', 'source', a)
    return core.nonzero(a)
  end
  nd.nonzero = Tensor.nonzero

  -- ---------------------------------------------------------------- sorting

  local function empty_pair(x) return core.empty(core.dtype(x), {}), core.empty('int64', {}) end

  local function resize_pair(rv, ri, s)
    if rv ~= nil then core.resize(rv, s) end
    if ri ~= nil then core.resize(ri, s) end
  end

  -- x:sort([dim] [, descending]) -> values, indices; nd.sort([resval, resind,] x [, dim] [, desc]).
  -- dim defaults to the last; stable: equal values keep their order. NaN sorts as the largest.
  local function sort(...)
    local a, b, c = ...
    local rv, ri, x, dim, desc
    if istensor(a) and istensor(b) and istensor(c) then
      rv, ri, x, dim, desc = a, b, c, select(4, ...)
    else
      x, dim, desc = ...
    end
    need_tensor('sort', 'source', x)
    if type(dim) == 'boolean' then dim, desc = nil, dim end
    if cdim(x) == 0 then return empty_pair(x) end
    dim = posdim(x, dim or cdim(x), 'sort')
    resize_pair(rv, ri, csize(x))
    return core.sort(rv, ri, x, dim, desc and true or false)
  end
  nd.sort, Tensor.sort = sort, sort

  -- x:topk(k [, dim] [, dir] [, sorted]) -> values, indices: the k smallest along dim (last by
  -- default), or the k largest when dir is true. Always sorted (smallest / largest first).
  local function topk(...)
    local a, b, c = ...
    local rv, ri, x, k, dim, dir
    if istensor(a) and istensor(b) and istensor(c) then
      rv, ri, x, k, dim, dir = a, b, c, select(4, ...)
    else
      x, k, dim, dir = ...
    end
    need_tensor('topk', 'source', x)
    if math.type(k) ~= 'integer' then fail(2, 'topk', 'expected an integer k, got %s', tostring(k)) end
    if cdim(x) == 0 then return empty_pair(x) end
    dim = posdim(x, dim or cdim(x), 'topk')
    local n = csize(x, dim)
    if k < 1 or k > n then
      fail(2, 'topk', 'k = %d out of range for dimension %d of size %d (%s)', k, dim, n, shape(x))
    end
    local s = csize(x)
    s[dim] = k
    resize_pair(rv, ri, s)
    return core.topk(rv, ri, x, k, dim, dir and true or false)
  end
  nd.topk, Tensor.topk = topk, topk

  -- x:kthvalue(k [, dim]) -> values, indices of the k-th smallest, dim kept with size 1 (Torch7).
  -- x:median([dim]) -> the lower median the same way. Left alone if nd.math already defines them.
  local function kthvalue(x, k, dim)
    need_tensor('kthvalue', 'source', x)
    dim = posdim(x, dim or cdim(x), 'kthvalue')
    local v, i = topk(x, k, dim, false)
    return core.clone(core.narrow(v, dim, k, 1)), core.clone(core.narrow(i, dim, k, 1))
  end
  if not Tensor.kthvalue then nd.kthvalue, Tensor.kthvalue = kthvalue, kthvalue end
  local function median(x, dim)
    need_tensor('median', 'source', x)
    dim = posdim(x, dim or cdim(x), 'median')
    return kthvalue(x, (csize(x, dim) + 1) // 2, dim)
  end
  if not Tensor.median then nd.median, Tensor.median = median, median end

  -- ---------------------------------------------------------------- cat, split, chunk

  -- nd.cat(a, b [, dim]), nd.cat({a, b, c} [, dim]), nd.cat(res, a, b [, dim]),
  -- nd.cat(res, {a, b} [, dim]); a:cat(b [, dim]) -> new. dim defaults to the last dimension of
  -- the first non-empty tensor; negative dims count from the end. Empty tensors are skipped.
  local function cat(...)
    local args = table.pack(...)
    local res, list, dim
    local function islist(v) return type(v) == 'table' and not istensor(v) end
    if istensor(args[1]) and islist(args[2]) then
      res, list, dim = args[1], args[2], args[3]
    elseif islist(args[1]) then
      list, dim = args[1], args[2]
    else
      local ts = {}
      for i = 1, args.n do
        local v = args[i]
        if istensor(v) then ts[#ts + 1] = v
        elseif i == args.n and (math.type(v) == 'integer' or v == nil) then dim = v
        else fail(2, 'cat', 'unexpected argument %d of type %s', i, type(v)) end
      end
      if #ts == 3 then res, list = ts[1], {ts[2], ts[3]}
      elseif #ts == 2 then list = ts
      else fail(2, 'cat', 'expected [res,] x1, x2 [, dim] or [res,] {x1, x2, ...} [, dim]') end
    end
    if #list == 0 then fail(2, 'cat', 'expected at least one tensor') end
    local ref
    for i = 1, #list do
      if not istensor(list[i]) then fail(2, 'cat', 'entry %d is a %s, not a tensor', i, type(list[i])) end
      if not ref and cdim(list[i]) > 0 then ref = list[i] end
    end
    if not ref then return res or core.empty(core.dtype(list[1]), {}) end
    dim = posdim(ref, dim or cdim(ref), 'cat')
    if res ~= nil then
      local s, total = csize(ref), 0
      for i = 1, #list do
        local t = list[i]
        if cdim(t) > 0 then
          if cdim(t) ~= #s then
            fail(2, 'cat', 'tensor %d (%s) and tensor %d (%s) differ in their number of dimensions', 1, shape(ref), i, shape(t))
          end
          total = total + csize(t, dim)
        end
      end
      s[dim] = total
      core.resize(res, s)
    end
    return core.cat(res, list, dim)
  end
  nd.cat, Tensor.cat = cat, cat

  -- x:split(size [, dim]) -> {views of `size` along dim (the last may be shorter)}; dim defaults to 1.
  local function split(x, size, dim)
    need_tensor('split', 'source', x)
    if math.type(size) ~= 'integer' or size < 1 then
      fail(2, 'split', 'expected a positive integer size, got %s', tostring(size))
    end
    dim = posdim(x, dim or 1, 'split')
    local n, out = csize(x, dim), {}
    for start = 1, n, size do out[#out + 1] = core.narrow(x, dim, start, math.min(size, n - start + 1)) end
    return out
  end
  -- x:chunk(n [, dim]) -> at most n views of equal size (ceil(size / n); the last may be shorter).
  local function chunk(x, n, dim)
    need_tensor('chunk', 'source', x)
    if math.type(n) ~= 'integer' or n < 1 then fail(2, 'chunk', 'expected a positive number of chunks, got %s', tostring(n)) end
    dim = posdim(x, dim or 1, 'chunk')
    return split(x, (csize(x, dim) + n - 1) // n, dim)
  end
  nd.split, Tensor.split = split, split
  nd.chunk, Tensor.chunk = chunk, chunk
end
