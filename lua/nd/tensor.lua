-- Tensor construction, metadata, views, copies, indexing: the Torch7 API over nd.core.
-- Every view shares storage with its source; methods that change `self` in Torch7 do so here.
return function(nd, Tensor, core)
  local dtypes = {float32 = 'Float', float64 = 'Double', int64 = 'Long', uint8 = 'Byte'}
  local dtype_of_name = {
    ['nd.FloatTensor'] = 'float32', ['nd.DoubleTensor'] = 'float64', ['nd.LongTensor'] = 'int64',
    ['nd.ByteTensor'] = 'uint8', ['torch.FloatTensor'] = 'float32', ['torch.DoubleTensor'] = 'float64',
    ['torch.LongTensor'] = 'int64', ['torch.ByteTensor'] = 'uint8', ['torch.IntTensor'] = 'int64',
    float = 'float32', double = 'float64', long = 'int64', byte = 'uint8', int = 'int64',
    float32 = 'float32', float64 = 'float64', int64 = 'int64', uint8 = 'uint8',
    ['torch.CudaTensor'] = 'float32', ['nd.CudaTensor'] = 'float32',
    ['torch.CudaDoubleTensor'] = 'float64', ['nd.CudaDoubleTensor'] = 'float64',
    ['torch.CudaLongTensor'] = 'int64', ['nd.CudaLongTensor'] = 'int64',
    ['torch.CudaByteTensor'] = 'uint8', ['nd.CudaByteTensor'] = 'uint8',
  }
  local default_dtype = 'float32'

  local istensor = core.istensor
  nd.isTensor = istensor
  nd.istensor = istensor

  -- A size list that prints as 2x3 and compares by value.
  local Size = {}
  Size.__index = Size
  Size.__tostring = function(s) return #s == 0 and 'empty' or table.concat(s, 'x') end
  Size.__eq = function(a, b)
    if #a ~= #b then return false end
    for i = 1, #a do if a[i] ~= b[i] then return false end end
    return true
  end
  function Size.totable(s) local t = {} for i = 1, #s do t[i] = s[i] end return t end
  function Size.size(s) return #s end
  nd.Size = Size
  local function mksize(t) return setmetatable(t, Size) end

  local function shape(t) return tostring(mksize(core.size(t))) end
  nd.shape = shape

  -- Reads sizes given as numbers, a table or a Size; returns a plain list.
  local function sizes_of(...)
    local first = ...
    if type(first) == 'table' and not istensor(first) then
      local s = {}
      for i = 1, #first do s[i] = first[i] end
      return s
    end
    local s = {...}
    for i = 1, #s do
      if math.type(s[i]) == nil then
        error(string.format('expected integer sizes, got %s at position %d', type(s[i]), i), 3)
      end
    end
    return s
  end
  nd._sizes = sizes_of

  local function resolve_dtype(name)
    if name == nil then return default_dtype end
    local dt = dtype_of_name[name]
    if not dt then error("unknown tensor type '" .. tostring(name) .. "'", 3) end
    return dt
  end
  nd._dtype = resolve_dtype

  function nd.setdefaulttensortype(name) default_dtype = resolve_dtype(name) end
  function nd.getdefaulttensortype() return 'nd.' .. dtypes[default_dtype] .. 'Tensor' end
  nd.setDefaultTensorType = nd.setdefaulttensortype

  -- Nested table -> sizes and a flat list; errors on ragged input.
  local function flatten(tbl)
    local sizes, flat = {}, {}
    local probe = tbl
    while type(probe) == 'table' do
      sizes[#sizes + 1] = #probe
      if #probe == 0 then error('nd.Tensor: empty table (sizes must be positive)', 4) end
      probe = probe[1]
    end
    local function walk(t, d)
      if #t ~= sizes[d] then error(string.format('nd.Tensor: ragged table: %d entries at depth %d, expected %d', #t, d, sizes[d]), 5) end
      for i = 1, #t do
        local v = t[i]
        if d == #sizes then
          if type(v) ~= 'number' then error(string.format('nd.Tensor: non-number %s at depth %d', type(v), d), 5) end
          flat[#flat + 1] = v
        else
          if type(v) ~= 'table' then error('nd.Tensor: ragged table at depth ' .. d, 5) end
          walk(v, d + 1)
        end
      end
    end
    walk(tbl, 1)
    return sizes, flat
  end

  -- nd.Tensor(), nd.Tensor(2,3), nd.Tensor({{1,2},{3,4}}), nd.Tensor(other) (a view),
  -- nd.Tensor(nd.Size), each with an optional trailing dtype ('float64', 'nd.LongTensor', ...).
  local function construct(dt, ...)
    local n = select('#', ...)
    local args = {...}
    if type(args[n]) == 'string' then
      dt = resolve_dtype(args[n]); args[n] = nil; n = n - 1
    end
    dt = dt or default_dtype
    local a = args[1]
    if n == 0 then return core.empty(dt, {}) end
    if istensor(a) then
      if dt ~= core.dtype(a) then return core.clone(a, dt) end
      return core.set(core.empty(dt, {}), a)
    end
    if type(a) == 'table' and getmetatable(a) == Size then return core.empty(dt, sizes_of(a)) end
    if type(a) == 'table' then
      local sizes, flat = flatten(a)
      return core.fromflat(core.empty(dt, sizes), flat)
    end
    return core.empty(dt, sizes_of(table.unpack(args, 1, n)))
  end

  local function ctor(dt)
    return setmetatable({}, {__call = function(_, ...) return construct(dt, ...) end})
  end
  nd.Tensor = setmetatable({}, {__call = function(_, ...) return construct(nil, ...) end})
  nd.FloatTensor, nd.DoubleTensor = ctor('float32'), ctor('float64')
  nd.LongTensor, nd.ByteTensor, nd.IntTensor = ctor('int64'), ctor('uint8'), ctor('int64')

  -- Splits a trailing dtype string off an argument list.
  local function split_dtype(...)
    local n = select('#', ...)
    local last = select(n, ...)
    if n > 0 and type(last) == 'string' then
      return resolve_dtype(last), {table.unpack({...}, 1, n - 1)}
    end
    return default_dtype, {...}
  end

  local function filled(value)
    return function(...)
      local dt, args = split_dtype(...)
      local t = core.zeros(dt, sizes_of(table.unpack(args)))
      if value ~= 0 then t:fill(value) end
      return t
    end
  end
  nd.zeros, nd.ones = filled(0), filled(1)
  function nd.empty(...) local dt, args = split_dtype(...); return core.empty(dt, sizes_of(table.unpack(args))) end
  function nd.rand(...) local dt, args = split_dtype(...); return core.rand(core.empty(dt, sizes_of(table.unpack(args)))) end
  function nd.randn(...) local dt, args = split_dtype(...); return core.randn(core.empty(dt, sizes_of(table.unpack(args)))) end
  function nd.randperm(n) return core.randperm(n) end
  function nd.manualSeed(s) core.manualseed(s) end
  nd.manualseed = nd.manualSeed
  function nd.initialSeed() return core.initialseed() end
  function nd.getRNGState() return core.rngstate() end
  function nd.setRNGState(s) core.setrngstate(s) end
  function nd.uniform(a, b) a = a or 0; b = b or 1; return a + (b - a) * core.uniform() end
  function nd.normal(m, s) local t = core.randn(core.empty('float64', {1}), m or 0, s or 1); return core.get(t, 1) end
  function nd.random(a, b)
    if a == nil then a, b = 1, 2 ^ 31 elseif b == nil then a, b = 1, a end
    return core.get(core.randint(core.empty('int64', {1}), a, b), 1)
  end
  function nd.timer() return core.now() end
  nd.now = core.now
  function nd.memory() local cpu, gpu, peak = core.memory(); return {cpu = cpu, gpu = gpu, peak = peak} end

  -- nd.range(a, b [, step]): a..b inclusive (Torch7); nd.arange(a, b [, step]): b exclusive.
  -- A 1-d tensor of n values f(1..n): allocated first (an absurd n fails at once, naming op),
  -- then filled from Lua tables of at most 65536 values.
  local function fill_seq(op, dt, n, f)
    if math.type(n) == 'float' and n == math.floor(n) and n >= 1 and n < 2^63 then n = math.tointeger(n) end
    if math.type(n) ~= 'integer' then error(string.format('%s: bad number of elements %s', op, tostring(n)), 3) end
    local ok, t = pcall(core.empty, dt, {n})
    if not ok then error(string.format('%s: cannot make %d elements: %s', op, n, tostring(t)), 3) end
    local chunk = 65536
    for first = 1, n, chunk do
      local len = math.min(chunk, n - first + 1)
      local flat = {}
      for j = 1, len do flat[j] = f(first + j - 1) end
      core.fromflat(core.narrow(t, 1, first, len), flat)
    end
    return t
  end
  function nd.range(a, b, step, dt)
    step = step or 1
    if step == 0 then error('nd.range: step must not be 0', 2) end
    local n = math.floor((b - a) / step + 1e-9) + 1
    if n < 1 then error(string.format('nd.range: empty range %s to %s step %s', a, b, step), 2) end
    if dt == nil then
      dt = (math.type(a) == 'integer' and math.type(step) == 'integer' and default_dtype == 'float32') and 'float32' or default_dtype
    end
    return fill_seq('nd.range', resolve_dtype(dt), n, function(i) return a + (i - 1) * step end)
  end
  function nd.arange(a, b, step, dt)
    if b == nil then a, b = 0, a end
    step = step or 1
    local n = math.ceil((b - a) / step)
    if n < 1 then error('nd.arange: empty range', 2) end
    return nd.range(a, a + (n - 1) * step, step, dt)
  end
  function nd.linspace(a, b, n, dt)
    n = n or 100
    if n < 1 then error('nd.linspace: n must be positive', 2) end
    return fill_seq('nd.linspace', resolve_dtype(dt), n, function(i) return n == 1 and a or a + (b - a) * (i - 1) / (n - 1) end)
  end
  function nd.eye(n, m, dt)
    if type(m) == 'string' then dt, m = m, nil end
    m = m or n
    local t = core.zeros(resolve_dtype(dt), {n, m})
    for i = 1, math.min(n, m) do core.setelem(t, 1, i, i) end
    return t
  end

  -- ---- metadata ----
  function Tensor.size(t, d)
    if d then return core.size(t, d) end
    return mksize(core.size(t))
  end
  function Tensor.stride(t, d)
    if d then return core.stride(t, d) end
    return mksize(core.stride(t))
  end
  Tensor.dim = core.dim
  Tensor.nDimension = core.dim
  Tensor.nElement = core.numel
  Tensor.numel = core.numel
  Tensor.isContiguous = core.iscontiguous
  Tensor.is_contiguous = core.iscontiguous
  Tensor.dtype = core.dtype
  Tensor.device = core.device
  Tensor.storageOffset = core.offset
  Tensor.free = core.free
  function Tensor.isSameSizeAs(a, b) return Size.__eq(core.size(a), core.size(b)) end
  function Tensor.isSetTo(a, b)
    return core.storageid(a) == core.storageid(b) and core.offset(a) == core.offset(b)
      and Size.__eq(core.size(a), core.size(b)) and Size.__eq(core.stride(a), core.stride(b))
  end
  function Tensor.type(t, name)
    local dt = core.dtype(t)
    if name == nil then
      if core.device(t) == 'cuda' then return dt == 'float32' and 'nd.CudaTensor' or 'nd.Cuda' .. dtypes[dt] .. 'Tensor' end
      return 'nd.' .. dtypes[dt] .. 'Tensor'
    end
    local want = resolve_dtype(name)
    local cuda = name:find('Cuda') ~= nil
    if want == dt and (core.device(t) == 'cuda') == cuda then return t end
    return core.clone(t, want, cuda and 'cuda' or 'cpu')
  end
  function Tensor.typeAs(t, other) return t:type(other:type()) end
  function Tensor.double(t) return t:type('float64') end
  function Tensor.float(t)
    if core.device(t) == 'cuda' then return core.clone(t, 'float32', 'cpu') end
    return t:type('float32')
  end
  function Tensor.long(t) return t:type('int64') end
  Tensor.int = Tensor.long
  function Tensor.byte(t) return t:type('uint8') end
  -- t:to('cpu' | 'cuda' | 'cuda:N' | dtype | type name): t itself when nothing changes.
  function Tensor.to(t, what)
    if what == 'cpu' or (type(what) == 'string' and what:match('^cuda')) then
      local d, i = core.device(t)
      if what == 'cpu' and d == 'cpu' then return t end
      if what == 'cuda' and d == 'cuda' then return t end
      if d == 'cuda' and what == 'cuda:' .. i then return t end
      return core.clone(t, core.dtype(t), what)
    end
    return t:type(what)
  end

  -- ---- copies ----
  Tensor.copy = core.copy
  function Tensor.clone(t) return core.clone(t) end
  Tensor.contiguous = core.contiguous
  function Tensor.set(t, src) return core.set(t, src) end
  function Tensor.resize(t, ...) return core.resize(t, sizes_of(...)) end
  function Tensor.resizeAs(t, other) return core.resize(t, core.size(other)) end
  -- t:new(...): a new tensor of t's dtype on t's device (Torch7).
  function Tensor.new(t, ...)
    local d, i = core.device(t)
    if d == 'cpu' or select('#', ...) == 0 then return construct(core.dtype(t), ...) end
    local a = ...
    if istensor(a) or (type(a) == 'table' and getmetatable(a) ~= Size) then
      return core.clone(construct(core.dtype(t), ...), nil, 'cuda:' .. i)
    end
    return core.empty(core.dtype(t), sizes_of(...), 'cuda:' .. i)
  end
  -- fill/zero: GPU tensors through the CUDA fill kernel (copy.cu).
  function Tensor.fill(t, v)
    if core.device(t) == 'cuda' then return core.cuda_fill(t, v) end
    return core.fill(t, v)
  end
  function Tensor.zero(t) return Tensor.fill(t, 0) end
  -- in-place random fills from the global generator (Torch7 names)
  function Tensor.uniform(t, a, b) return core.rand(t, a or 0, b or 1) end
  function Tensor.normal(t, mean, std) return core.randn(t, mean or 0, std or 1) end
  function Tensor.bernoulli(t, p) return core.bernoulli(t, p or 0.5) end
  function Tensor.random(t, a, b)
    if a == nil then a, b = 1, 2 ^ 31 elseif b == nil then a, b = 1, a end
    return core.randint(t, a, b)
  end

  -- ---- views ----
  local function pos(d, n) if d < 0 then return n + d + 1 end return d end
  function Tensor.narrow(t, d, start, len) return core.narrow(t, d, start, len) end
  function Tensor.select(t, d, i) return core.select(t, d, i) end
  function Tensor.transpose(t, a, b) return core.transpose(t, pos(a, core.dim(t)), pos(b, core.dim(t))) end
  function Tensor.t(t)
    if core.dim(t) ~= 2 then error('t(): expected a 2-d tensor, got ' .. shape(t), 2) end
    return core.transpose(t, 1, 2)
  end
  function Tensor.permute(t, ...) return core.permute(t, sizes_of(...)) end
  function Tensor.unsqueeze(t, d) return core.unsqueeze(t, d) end
  function Tensor.squeeze(t, d) return core.squeeze(t, d) end
  function Tensor.expand(t, ...)
    local a = ...
    if istensor(a) then return core.expand(t, core.size(a)) end
    return core.expand(t, sizes_of(...))
  end
  function Tensor.expandAs(t, other) return core.expand(t, core.size(other)) end
  function Tensor.view(t, ...)
    local a = ...
    if istensor(a) then return core.view(t, core.size(a)) end
    return core.view(t, sizes_of(...))
  end
  function Tensor.viewAs(t, other) return core.view(t, core.size(other)) end
  -- reshape: a view when the strides allow it, otherwise a contiguous copy.
  function Tensor.reshape(t, ...)
    local s = sizes_of(...)
    local ok, v = pcall(core.view, t, s)
    if ok then return v end
    return core.view(core.contiguous(t), s)
  end
  function Tensor.unfold(t, d, size, step) return core.unfold(t, d, size, step) end
  function Tensor.flatten(t) return t:reshape(t:nElement()) end
  -- sub(d1start, d1end, d2start, d2end, ...): inclusive ranges, negative counts from the end.
  function Tensor.sub(t, ...)
    local r = {...}
    local v = t
    for k = 1, #r, 2 do
      local d = (k + 1) // 2
      local n = core.size(t, d)
      local a, b = pos(r[k], n), pos(r[k + 1] or n, n)
      v = core.narrow(v, d, a, b - a + 1)
    end
    return v
  end

  -- t[i] / t[{...}] indexing. A number selects (1-d: the value); a table entry i selects,
  -- {a, b} narrows to a..b (inclusive, negative from the end), {} or ':' keeps the dim.
  local function index_view(t, key, for_write)
    if math.type(key) then
      if core.dim(t) == 1 then return nil, key end
      return core.select(t, 1, key)
    end
    if istensor(key) then return nil, nil, key end
    if type(key) ~= 'table' then error('invalid tensor index of type ' .. type(key), 3) end
    local v, d, dropped = t, 1, 0
    local nd_ = core.dim(t)
    if #key > nd_ then error(string.format('too many indices (%d) for a %s tensor', #key, shape(t)), 3) end
    local scalar_idx = {}
    for k = 1, #key do
      local e = key[k]
      local n = core.size(v, d)
      if math.type(e) then
        e = pos(e, n)
        if core.dim(v) == 1 then scalar_idx[#scalar_idx + 1] = e; d = d + 1
        else
          if e < 1 or e > n then error(string.format('index %d out of range for dimension %d of size %d (%s)', e, k, n, shape(t)), 3) end
          v = core.select(v, d, e); dropped = dropped + 1
        end
      elseif type(e) == 'table' or e == ':' then
        local a = e == ':' and 1 or pos(e[1] or 1, n)
        local b = e == ':' and n or pos(e[2] or e[1] or n, n)
        if e ~= ':' and e[1] == nil then a, b = 1, n end
        if a < 1 or b > n or b < a then
          error(string.format('range {%d, %d} out of bounds for dimension %d of size %d (%s)', a, b, k, n, shape(t)), 3)
        end
        v = core.narrow(v, d, a, b - a + 1)
        d = d + 1
      else
        error('invalid index entry of type ' .. type(e), 3)
      end
    end
    if #scalar_idx > 0 then return nil, scalar_idx[1], nil, v end
    return v
  end

  local function index_get(t, key)
    local v, i, mask, base = index_view(t, key)
    if mask then return t:maskedSelect(mask) end
    if i then return core.get(base or t, i) end
    return v
  end
  local function index_set(t, key, value)
    local v, i, mask, base = index_view(t, key, true)
    if mask then
      if istensor(value) then t:maskedCopy(mask, value) else t:maskedFill(mask, value) end
      return
    end
    if i then
      if istensor(value) then error('cannot assign a tensor to a single element', 2) end
      core.setelem(base or t, value, i)
      return
    end
    if istensor(value) then core.copy(v, value) else v:fill(value) end
  end
  core.setindex(Tensor, index_get)
  local mt = core.metatable()
  mt.__newindex = function(t, k, v)
    if type(k) == 'string' then error("cannot set field '" .. k .. "' on a tensor", 2) end
    index_set(t, k, v)
  end
  mt.__len = function(t) return Tensor.size(t) end
  -- Arithmetic metamethods dispatch to Tensor.__add etc. when nd.math defines them.
  for _, op in ipairs {'__add', '__sub', '__mul', '__div', '__unm', '__pow', '__mod', '__idiv'} do
    mt[op] = function(a, b)
      local f = Tensor[op]
      if not f then error('tensor operator ' .. op .. ' is not available', 2) end
      return f(a, b)
    end
  end
  mt.__tostring = function(t) return Tensor.__tostring(t) end
  -- The footer of a printed tensor: [nd.FloatTensor of size 2x3], [nd.CudaTensor of size 2x3 on cuda:0].
  function nd._footer(t)
    local d, i = core.device(t)
    local where = d == 'cuda' and (' on cuda:' .. i) or ''
    if core.dim(t) == 0 then return string.format('[%s with no dimension%s]', t:type(), where) end
    return string.format('[%s of size %s%s]', t:type(), shape(t), where)
  end
  function Tensor.__tostring(t) return nd._footer(t) end

  -- ---- conversions to Lua ----
  function Tensor.totable(t)
    local n = core.dim(t)
    if n == 0 then return {} end
    local flat = core.toflat(t)
    local sizes = core.size(t)
    local k = 0
    local function build(d)
      local r = {}
      for i = 1, sizes[d] do
        if d == n then k = k + 1; r[i] = flat[k] else r[i] = build(d + 1) end
      end
      return r
    end
    return build(1)
  end
  function Tensor.tolist(t) return core.toflat(t) end
  function Tensor.item(t)
    if core.numel(t) ~= 1 then error('item(): the tensor has ' .. core.numel(t) .. ' elements, not 1', 2) end
    return core.toflat(t)[1]
  end
  function Tensor.storageId(t) return core.storageid(t) end
end
