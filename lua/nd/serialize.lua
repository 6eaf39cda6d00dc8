-- nd.save / nd.load / nd.serialize / nd.deserialize: a versioned, type-tagged, little-endian
-- binary format with reference tracking. Never bytecode: functions are refused.
--
-- File layout (all integers little-endian):
--   "NDSER"  u32 format version (1)  value
-- A value is a tag byte and its body:
--   0 nil | 1 false | 2 true | 3 integer i64 | 4 float f64 | 5 string (u32 length, bytes)
--   6 table:  (key value)* 255             -- the table gets the next reference number
--   7 ref:    u32 reference number          -- a table, object or tensor written before
--   8 object: class name (u8 length, bytes), u32 class version, then a table's body
--   9 tensor: u32 storage number, then
--             0: the empty tensor: dtype (u8 length, bytes)
--             the next new number: the storage follows: dtype, u8 device (0 cpu, 1 cuda),
--                 i64 elements, u64 bytes, the bytes (the whole storage, row-major)
--             an earlier number: that storage again
--             and (unless 0) i64 1-based storage offset, u8 ndim, i64 sizes[ndim], i64 strides[ndim]
-- Tables, objects and tensors share one numbering (1, 2, ... in order of first appearance), so a
-- table seen twice, a cycle, or a tensor seen twice comes back as one; storages have their own
-- numbering, so views of one storage come back sharing one storage with the same offsets and
-- strides. Class objects come back with their registered class as metatable (loaded on demand,
-- see nd.class) and then each gets `Class:read(version)` when the class defines it, children
-- before parents. GPU storages are written from host copies and restored on the CPU.
-- Byte order: tensor bytes are written in host order, which must be little-endian.
return function(nd, Tensor, core)
  local spack, sunpack, sbyte, schar, ssub = string.pack, string.unpack, string.byte, string.char, string.sub
  local concat = table.concat
  local istensor = core.istensor

  local MAGIC, FORMAT = 'NDSER', 1
  local T_NIL, T_FALSE, T_TRUE, T_INT, T_FLOAT, T_STRING = 0, 1, 2, 3, 4, 5
  local T_TABLE, T_REF, T_OBJECT, T_TENSOR, T_END = 6, 7, 8, 9, 255
  local ESIZE = {float32 = 4, float64 = 8, int64 = 8, uint8 = 1}
  local LITTLE = spack('=i4', 1) == spack('<i4', 1)

  -- ---- writing ----

  -- "root.modules[2].weight" for error messages, from the stack of keys being written.
  local function where(keys, n)
    local out = {'root'}
    for i = 1, n do
      local k = keys[i]
      if type(k) == 'string' and k:match('^[%a_][%w_]*$') then out[#out + 1] = '.' .. k
      elseif type(k) == 'string' then out[#out + 1] = string.format('[%q]', k)
      elseif type(k) == 'number' then out[#out + 1] = '[' .. tostring(k) .. ']'
      else out[#out + 1] = '[<' .. type(k) .. ' key>]' end
    end
    return concat(out)
  end

  -- Encodes obj into a list of strings (concatenated, they are the file). Raises on values that
  -- cannot be saved, before anything is written anywhere.
  local function encode(obj, fname)
    local parts, np = {spack('<c5I4', MAGIC, FORMAT)}, 1
    local refs, nref = {}, 0
    local storages, nstor = {}, 0
    local keys, depth = {}, 0
    local function put(s) np = np + 1; parts[np] = s end
    local function refuse(what, hint)
      error(string.format('%s: cannot save %s at %s%s', fname, what, where(keys, depth), hint or ''), 0)
    end

    local write

    local function write_tensor(t)
      local dt = core.dtype(t)
      local sid = core.storageid(t)
      if sid == nil or core.dim(t) == 0 or core.numel(t) == 0 then
        put(spack('<BI4s1', T_TENSOR, 0, dt))
        return
      end
      if not LITTLE then refuse('a tensor', ' (this host is big-endian; nd files are little-endian)') end
      local num = storages[sid]
      if num then
        put(spack('<BI4', T_TENSOR, num))
      else
        nstor = nstor + 1
        storages[sid] = nstor
        local count = core.storagesize(t)
        local whole = core.setview(core.empty(dt, {}), t, 1, {count}, {1})
        local bytes = core.tobytes(whole)
        put(spack('<BI4s1Bi8I8', T_TENSOR, nstor, dt, core.device(t) == 'cuda' and 1 or 0, count, #bytes))
        put(bytes)
      end
      local sizes, strides = core.size(t), core.stride(t)
      local n = #sizes
      put(spack('<i8B', core.offset(t), n))
      for d = 1, n do sizes[n + d] = strides[d] end
      put(spack('<' .. string.rep('i8', 2 * n), table.unpack(sizes, 1, 2 * n)))
    end

    local function write_body(tbl)
      for k, v in next, tbl do
        depth = depth + 1
        keys[depth] = k
        write(k)
        write(v)
        depth = depth - 1
      end
      put(schar(T_END))
    end

    write = function(v)
      local ty = type(v)
      if ty == 'nil' then put(schar(T_NIL))
      elseif ty == 'boolean' then put(schar(v and T_TRUE or T_FALSE))
      elseif ty == 'number' then
        if math.type(v) == 'integer' then put(spack('<Bi8', T_INT, v)) else put(spack('<Bd', T_FLOAT, v)) end
      elseif ty == 'string' then
        if #v > 0xffffffff then refuse('a string longer than 4 GiB') end
        put(spack('<Bs4', T_STRING, v))
      elseif ty == 'table' or (ty == 'userdata' and istensor(v)) then
        local r = refs[v]
        if r then put(spack('<BI4', T_REF, r)); return end
        nref = nref + 1
        refs[v] = nref
        if ty == 'userdata' then write_tensor(v); return end
        local mt = getmetatable(v)
        if mt == nil then
          put(schar(T_TABLE))
        else
          local name = nd._classname and nd._classname(mt)
          if not name then refuse('a table with a metatable that is not a registered class', ' (see nd.class)') end
          put(spack('<Bs1I4', T_OBJECT, name, rawget(mt, '__version') or 1))
        end
        write_body(v)
      elseif ty == 'function' then
        refuse('a function', ' (functions are never saved: keep them out of saved tables)')
      else
        refuse('a value of type ' .. (ty == 'userdata' and 'userdata (not a tensor)' or ty))
      end
    end

    local ok, err = pcall(write, obj)
    if not ok then
      if type(err) == 'string' and err:find('stack overflow', 1, true) and not err:find(fname, 1, true) then
        err = fname .. ': the value is nested too deeply to save (' .. err .. ')'
      end
      error(err, 0)
    end
    return parts
  end

  -- ---- reading ----

  -- Decodes s. `label` names the source in errors ("nd.load: path"). Raises
  -- "<label> is not an nd file", "<label> is truncated or corrupt (...)", or a clear message for
  -- a newer format version or an unknown class.
  local function decode(s, label)
    local len = #s
    if len < 5 or ssub(s, 1, 5) ~= MAGIC then
      if len < 5 and ssub(MAGIC, 1, len) == s then error(label .. ' is truncated or corrupt (empty or cut inside the header)', 0) end
      error(label .. ' is not an nd file', 0)
    end
    if len < 9 then error(label .. ' is truncated or corrupt (cut inside the header)', 0) end
    local version = sunpack('<I4', s, 6)
    if version > FORMAT then
      error(string.format('%s was written in format version %d by a newer nd; this one reads versions up to %d',
        label, version, FORMAT), 0)
    elseif version < 1 then
      error(label .. ' is truncated or corrupt (format version 0)', 0)
    end

    local pos = 10
    local refs, nref = {}, 0
    local storages, nstor = {}, 0
    local objects, nobj = {}, 0
    local CORRUPT = {}
    local function corrupt(why) CORRUPT.why = why; error(CORRUPT, 0) end
    local function need(n, what)
      if pos + n - 1 > len then corrupt('cut inside ' .. what .. ' at byte ' .. (pos - 1)) end
    end
    local function u8(what) need(1, what); pos = pos + 1; return sbyte(s, pos - 1) end
    local function u32(what) need(4, what); local v = sunpack('<I4', s, pos); pos = pos + 4; return v end
    local function i64(what) need(8, what); local v = sunpack('<i8', s, pos); pos = pos + 8; return v end
    local function bytes(n, what) need(n, what); pos = pos + n; return ssub(s, pos - n, pos - 1) end
    local function short(what) return bytes(u8(what), what) end

    local function dtype(what)
      local dt = short(what)
      if not ESIZE[dt] then corrupt("unknown dtype '" .. dt .. "'") end
      return dt
    end

    local read

    local function read_tensor()
      local num = u32('a tensor')
      if num == 0 then
        local t = core.empty(dtype('a tensor'), {})
        nref = nref + 1; refs[nref] = t
        return t
      end
      local st
      if num == nstor + 1 then
        local dt = dtype('a storage')
        local _device = u8('a storage')
        local count, nbytes = i64('a storage'), i64('a storage')
        if count < 1 or nbytes ~= count * ESIZE[dt] or count > len then corrupt('bad storage size') end
        need(nbytes, 'tensor data')
        st = core.empty(dt, {count})
        core.frombytes(st, s, pos)
        pos = pos + nbytes
        nstor = num
        storages[num] = st
      else
        st = storages[num]
        if not st then corrupt('reference to storage ' .. num .. ' before it was written') end
      end
      local offset, ndim = i64('a tensor'), u8('a tensor')
      if ndim < 1 or ndim > 8 then corrupt('a tensor with ' .. ndim .. ' dimensions') end
      need(16 * ndim, 'a tensor')
      local v = {sunpack('<' .. string.rep('i8', 2 * ndim), s, pos)}
      pos = pos + 16 * ndim
      local sizes, strides = {table.unpack(v, 1, ndim)}, {table.unpack(v, ndim + 1, 2 * ndim)}
      local ok, t = pcall(core.setview, core.empty(core.dtype(st), {}), st, offset, sizes, strides)
      if not ok then corrupt(tostring(t)) end
      nref = nref + 1; refs[nref] = t
      return t
    end

    local function read_body(tbl)
      while true do
        need(1, 'a table')
        if sbyte(s, pos) == T_END then pos = pos + 1; return tbl end
        local k = read()
        if k == nil or k ~= k then corrupt('a table key that is nil or NaN') end
        rawset(tbl, k, read())
      end
    end

    read = function()
      local tag = u8('a value')
      if tag == T_NIL then return nil
      elseif tag == T_FALSE then return false
      elseif tag == T_TRUE then return true
      elseif tag == T_INT then return i64('an integer')
      elseif tag == T_FLOAT then need(8, 'a number'); pos = pos + 8; return (sunpack('<d', s, pos - 8))
      elseif tag == T_STRING then return bytes(u32('a string'), 'a string')
      elseif tag == T_TABLE then
        local t = {}
        nref = nref + 1; refs[nref] = t
        return read_body(t)
      elseif tag == T_REF then
        local r = u32('a reference')
        local v = refs[r]
        if v == nil then corrupt('reference ' .. r .. ' to nothing') end
        return v
      elseif tag == T_OBJECT then
        local name, version = short('a class name'), u32('a class version')
        local ok, cls = pcall(nd._findclass, name)
        if not ok then
          error({msg = string.format("%s: loading class '%s' failed: %s", label, name, tostring(cls))}, 0)
        elseif not cls then
          error({msg = string.format("%s: unknown class '%s' (require the module that defines it before loading)",
            label, name)}, 0)
        end
        local obj = setmetatable({}, cls)
        nref = nref + 1; refs[nref] = obj
        read_body(obj)
        nobj = nobj + 1; objects[nobj] = {obj, version}
        return obj
      elseif tag == T_TENSOR then return read_tensor()
      else corrupt('unknown tag ' .. tag .. ' at byte ' .. (pos - 2)) end
    end

    local ok, value = pcall(read)
    if ok and pos ~= len + 1 then ok, value = false, CORRUPT; CORRUPT.why = (len + 1 - pos) .. ' bytes after the end' end
    if not ok then
      if value == CORRUPT then error(label .. ' is truncated or corrupt (' .. CORRUPT.why .. ')', 0) end
      if type(value) == 'table' and value.msg then error(value.msg, 0) end
      error(label .. ' is truncated or corrupt (' .. tostring(value) .. ')', 0)
    end
    for i = 1, nobj do
      local obj, version = objects[i][1], objects[i][2]
      local hook = getmetatable(obj).read
      if type(hook) == 'function' then hook(obj, version) end
    end
    return value
  end

  -- ---- the API ----

  -- nd.serialize(obj) -> string
  function nd.serialize(obj) return concat(encode(obj, 'nd.serialize')) end

  -- nd.deserialize(s) -> obj
  function nd.deserialize(s)
    if type(s) ~= 'string' then error('nd.deserialize: expected a string, got ' .. type(s), 2) end
    return decode(s, 'nd.deserialize: the string')
  end

  -- A temp-file suffix that does not touch the random generators (nd's or math.random's).
  local function suffix()
    return string.format('%d.%s', os.time(), (string.format('%p', {}):gsub('^0x', '')))
  end

  -- nd.save(path, obj): writes path atomically (a temp file next to it, then a rename). On any
  -- error nothing is left behind and an existing file at path is untouched.
  function nd.save(path, obj)
    if type(path) ~= 'string' then error('nd.save: expected a file name, got ' .. type(path), 2) end
    local parts = encode(obj, 'nd.save: ' .. path)
    local tmp = path .. '.tmp.' .. suffix()
    local f, err = io.open(tmp, 'wb')
    if not f then error('nd.save: cannot write ' .. path .. ': ' .. tostring(err), 2) end
    for i = 1, #parts do
      local ok, werr = f:write(parts[i])
      if not ok then
        f:close(); os.remove(tmp)
        error('nd.save: writing ' .. path .. ' failed: ' .. tostring(werr), 2)
      end
    end
    local ok, cerr = f:close()
    if not ok then os.remove(tmp); error('nd.save: writing ' .. path .. ' failed: ' .. tostring(cerr), 2) end
    local rok, rerr = os.rename(tmp, path)
    if not rok then os.remove(tmp); error('nd.save: cannot rename onto ' .. path .. ': ' .. tostring(rerr), 2) end
  end

  -- nd.load(path) -> obj
  function nd.load(path)
    if type(path) ~= 'string' then error('nd.load: expected a file name, got ' .. type(path), 2) end
    local f, err = io.open(path, 'rb')
    if not f then error('nd.load: cannot open ' .. tostring(err), 2) end
    local s = f:read('a')
    f:close()
    if not s then error('nd.load: cannot read ' .. path, 2) end
    return decode(s, 'nd.load: ' .. path)
  end
end
