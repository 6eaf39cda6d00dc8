-- A small JSON writer and reader for the run files (options.json, summary.json).
--
--   json.encode(value [, {indent = '  '}]) -> string   objects with sorted keys; arrays are
--       tables whose keys are exactly 1..n (an empty table is written as {}); json.null, nan and
--       infinities are written as null; integers stay integers, floats use %.17g trimmed
--   json.decode(string) -> value                         null comes back as json.null
--   json.write(path, value) / json.read(path)            whole files (write is atomic: a temp
--                                                        file renamed over the target)
local json = {}

json.null = setmetatable({}, {__tostring = function() return 'null' end, __name = 'json.null'})

local escapes = {
  ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f', ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t',
}
local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c) return escapes[c] or string.format('\\u%04x', c:byte()) end) .. '"'
end

local function number(v)
  if math.type(v) == 'integer' then return tostring(v) end
  if v ~= v or v == math.huge or v == -math.huge then return 'null' end
  if v == math.floor(v) and math.abs(v) < 1e15 then return string.format('%.1f', v) end
  -- the shortest of %.15g .. %.17g that reads back exactly
  for p = 15, 17 do
    local s = string.format('%.' .. p .. 'g', v)
    if tonumber(s) == v then return s end
  end
  return string.format('%.17g', v)
end

local function is_array(t)
  local n = 0
  for k in pairs(t) do
    if math.type(k) ~= 'integer' or k < 1 then return false end
    n = n + 1
  end
  for i = 1, n do if t[i] == nil then return false end end
  return n > 0, n
end

local function encode(v, indent, level, seen, out)
  local ty = type(v)
  if v == nil or v == json.null then out[#out + 1] = 'null'
  elseif ty == 'boolean' then out[#out + 1] = tostring(v)
  elseif ty == 'number' then out[#out + 1] = number(v)
  elseif ty == 'string' then out[#out + 1] = quote(v)
  elseif ty == 'table' then
    if seen[v] then error('json.encode: a table contains itself', 0) end
    seen[v] = true
    local nl, pad, pad_in = '', '', ''
    if indent then
      nl = '\n'
      pad = string.rep(indent, level)
      pad_in = pad .. indent
    end
    local arr, n = is_array(v)
    if arr then
      out[#out + 1] = '['
      for i = 1, n do
        out[#out + 1] = (i > 1 and ',' or '') .. nl .. pad_in
        encode(v[i], indent, level + 1, seen, out)
      end
      out[#out + 1] = nl .. pad .. ']'
    else
      local keys = {}
      for k in pairs(v) do
        if type(k) ~= 'string' and type(k) ~= 'number' then
          error('json.encode: object keys must be strings or numbers, got ' .. type(k), 0)
        end
        keys[#keys + 1] = k
      end
      table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
      if #keys == 0 then out[#out + 1] = '{}'
      else
        out[#out + 1] = '{'
        for i, k in ipairs(keys) do
          out[#out + 1] = (i > 1 and ',' or '') .. nl .. pad_in .. quote(tostring(k)) .. (indent and ': ' or ':')
          encode(v[k], indent, level + 1, seen, out)
        end
        out[#out + 1] = nl .. pad .. '}'
      end
    end
    seen[v] = nil
  else
    error('json.encode: cannot encode a ' .. ty, 0)
  end
end

function json.encode(v, opts)
  local out = {}
  encode(v, opts and opts.indent, 0, {}, out)
  return table.concat(out)
end

-- ---- decoding ----

local function decode_error(s, pos, what)
  local line = 1
  for _ in s:sub(1, pos - 1):gmatch('\n') do line = line + 1 end
  error(string.format('json.decode: %s at line %d (byte %d)', what, line, pos), 0)
end

local function skip(s, pos)
  return s:find('[^ \t\r\n]', pos) or #s + 1
end

local decode_value

local function decode_string(s, pos)
  local out, i = {}, pos + 1
  while true do
    local j = s:find('["\\%c]', i)
    if not j then decode_error(s, pos, 'unterminated string') end
    out[#out + 1] = s:sub(i, j - 1)
    local c = s:sub(j, j)
    if c == '"' then return table.concat(out), j + 1 end
    if c ~= '\\' then decode_error(s, j, 'control character in a string') end
    local e = s:sub(j + 1, j + 1)
    local simple = {['"'] = '"', ['\\'] = '\\', ['/'] = '/', b = '\b', f = '\f', n = '\n', r = '\r', t = '\t'}
    if simple[e] then
      out[#out + 1] = simple[e]
      i = j + 2
    elseif e == 'u' then
      local hex = s:match('^%x%x%x%x', j + 2)
      if not hex then decode_error(s, j, 'bad \\u escape') end
      local cp = tonumber(hex, 16)
      i = j + 6
      if cp >= 0xD800 and cp <= 0xDBFF then
        local lo = s:match('^\\u(%x%x%x%x)', i)
        if lo then
          cp = 0x10000 + (cp - 0xD800) * 0x400 + (tonumber(lo, 16) - 0xDC00)
          i = i + 6
        end
      end
      out[#out + 1] = utf8.char(cp)
    else
      decode_error(s, j, 'bad escape')
    end
  end
end

decode_value = function(s, pos)
  pos = skip(s, pos)
  local c = s:sub(pos, pos)
  if c == '{' then
    local obj = {}
    pos = skip(s, pos + 1)
    if s:sub(pos, pos) == '}' then return obj, pos + 1 end
    while true do
      if s:sub(pos, pos) ~= '"' then decode_error(s, pos, 'expected a key') end
      local k
      k, pos = decode_string(s, pos)
      pos = skip(s, pos)
      if s:sub(pos, pos) ~= ':' then decode_error(s, pos, "expected ':'") end
      obj[k], pos = decode_value(s, pos + 1)
      pos = skip(s, pos)
      local d = s:sub(pos, pos)
      if d == '}' then return obj, pos + 1 end
      if d ~= ',' then decode_error(s, pos, "expected ',' or '}'") end
      pos = skip(s, pos + 1)
    end
  elseif c == '[' then
    local arr = {}
    pos = skip(s, pos + 1)
    if s:sub(pos, pos) == ']' then return arr, pos + 1 end
    while true do
      arr[#arr + 1], pos = decode_value(s, pos)
      pos = skip(s, pos)
      local d = s:sub(pos, pos)
      if d == ']' then return arr, pos + 1 end
      if d ~= ',' then decode_error(s, pos, "expected ',' or ']'") end
      pos = pos + 1
    end
  elseif c == '"' then
    return decode_string(s, pos)
  elseif s:sub(pos, pos + 3) == 'true' then return true, pos + 4
  elseif s:sub(pos, pos + 4) == 'false' then return false, pos + 5
  elseif s:sub(pos, pos + 3) == 'null' then return json.null, pos + 4
  else
    local num = s:match('^-?%d+%.?%d*[eE]?[-+]?%d*', pos)
    if not num or num == '' or num == '-' then decode_error(s, pos, 'unexpected ' .. (c == '' and 'end of input' or "'" .. c .. "'")) end
    local v = tonumber(num)
    if v and not num:find('[.eE]') then v = math.tointeger(v) or v end
    if v == nil then decode_error(s, pos, 'bad number') end
    return v, pos + #num
  end
end

function json.decode(s)
  if type(s) ~= 'string' then error('json.decode: expected a string, got ' .. type(s), 2) end
  local v, pos = decode_value(s, 1)
  pos = skip(s, pos)
  if pos <= #s then decode_error(s, pos, 'trailing characters') end
  return v
end

function json.write(path, value)
  local text = json.encode(value, {indent = '  '}) .. '\n'
  local tmp = path .. '.tmp'
  local f, err = io.open(tmp, 'w')
  if not f then error('cannot write ' .. tostring(err), 2) end
  f:write(text)
  f:close()
  local ok, rerr = os.rename(tmp, path)
  if not ok then error('cannot rename ' .. tmp .. ': ' .. tostring(rerr), 2) end
end

function json.read(path)
  local f, err = io.open(path, 'r')
  if not f then error('cannot read ' .. tostring(err), 2) end
  local s = f:read('a')
  f:close()
  local ok, v = pcall(json.decode, s)
  if not ok then error(path .. ': ' .. tostring(v), 2) end
  return v
end

return json
