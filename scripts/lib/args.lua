-- Command-line options for the scripts: `--name value`, `--name=value`, boolean flags
-- (`--flag`, `--flag=false`, `--no-flag`), `-h`/`--help`.
--
--   local args = require('scripts.lib.args')
--   local p = args.parser{prog = 'train.lua', summary = '...', epilog = '...', options = {
--     {'batch-size', 'integer', 128, 'images per step'},
--     {'norm', {'bn', 'deconv'}, 'deconv', 'normalisation'},        -- a choice
--     {'resume', 'string', nil, 'checkpoint to continue', 'DIR'},   -- no default: nil; 5th: the
--                                                                   -- value's name in --help
--     {'quiet', 'boolean', false, 'less output'},
--   }}
--   local opt, given = p:parse(arg)   -- opt.batchSize (camelCase keys); given[key] = true when
--                                     -- the option was on the command line
--   print(p:help())
--
-- parse raises args.UsageError objects (tostring gives the message) for unknown options, missing
-- or badly typed values; with -h/--help it returns nil and opt.help is not needed.
-- Types: 'string', 'number', 'integer', 'boolean', or a list of allowed strings.
-- Positional arguments are refused unless the parser has `positional = 'NAME'`; then they are
-- returned in opt._positional.
local args = {}

local UsageError = {}
UsageError.__index = UsageError
UsageError.__tostring = function(e) return e.message end
args.UsageError = UsageError

local function usage_error(fmt, ...)
  error(setmetatable({message = string.format(fmt, ...), usage = true}, UsageError), 0)
end
args.usage_error = usage_error

function args.is_usage_error(e) return getmetatable(e) == UsageError end

-- 'batch-size' -> 'batchSize'
function args.key(name) return (name:gsub('%-(%w)', function(c) return c:upper() end)) end
-- 'batchSize' -> 'batch-size'
function args.flag(key) return (key:gsub('(%u)', function(c) return '-' .. c:lower() end)) end

local Parser = {}
Parser.__index = Parser

function args.parser(spec)
  local p = setmetatable({prog = spec.prog or 'script', summary = spec.summary, epilog = spec.epilog,
                          positional = spec.positional, options = {}, byname = {}}, Parser)
  for _, o in ipairs(spec.options or {}) do p:add(table.unpack(o, 1, 5)) end
  return p
end

function Parser:add(name, ty, default, help, meta)
  local o = {name = name, key = args.key(name), type = ty, default = default, help = help or '', meta = meta}
  if type(ty) == 'table' then
    o.choices = ty
    o.type = 'choice'
  end
  self.options[#self.options + 1] = o
  self.byname[name] = o
  return self
end

local function convert(o, raw)
  local ty = o.type
  if ty == 'string' then return raw end
  if ty == 'number' then
    local v = tonumber(raw)
    if v == nil or v ~= v then usage_error("--%s expects a number, got '%s'", o.name, raw) end
    return v + 0.0
  end
  if ty == 'integer' then
    local v = math.tointeger(tonumber(raw))
    if v == nil then usage_error("--%s expects an integer, got '%s'", o.name, raw) end
    return v
  end
  if ty == 'boolean' then
    local l = raw:lower()
    if l == 'true' or l == '1' or l == 'yes' or l == 'on' then return true end
    if l == 'false' or l == '0' or l == 'no' or l == 'off' then return false end
    usage_error("--%s expects true or false, got '%s'", o.name, raw)
  end
  if ty == 'choice' then
    for _, c in ipairs(o.choices) do if c == raw then return raw end end
    usage_error("--%s must be one of %s, got '%s'", o.name, table.concat(o.choices, ', '), raw)
  end
  error('args: unknown option type ' .. tostring(ty))
end
args.convert = convert

-- The closest option names to a misspelt one (for "did you mean").
local function suggest(self, name)
  local best, bestd
  for _, o in ipairs(self.options) do
    local a, b = name, o.name
    -- edit distance, small strings
    local prev = {}
    for j = 0, #b do prev[j] = j end
    for i = 1, #a do
      local cur = {[0] = i}
      for j = 1, #b do
        local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
        cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
      end
      prev = cur
    end
    local d = prev[#b]
    if not bestd or d < bestd then best, bestd = o.name, d end
  end
  if best and bestd <= math.max(2, #name // 3) then return best end
end

function Parser:parse(argv)
  argv = argv or {}
  local opt, given, positional = {}, {}, {}
  for _, o in ipairs(self.options) do opt[o.key] = o.default end
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == '-h' or a == '--help' then return nil, nil end
    if a == '--' then
      for j = i + 1, #argv do positional[#positional + 1] = argv[j] end
      break
    end
    if a:sub(1, 2) == '--' then
      local name, value = a:match('^%-%-([^=]+)=(.*)$')
      name = name or a:sub(3)
      local o = self.byname[name] or self.byname[(name:gsub('_', '-'))]
      local negated = false
      if not o and name:sub(1, 3) == 'no-' then
        o = self.byname[name:sub(4)]
        if o and o.type == 'boolean' and value == nil then negated = true else o = nil end
      end
      if not o then
        local s = suggest(self, name)
        usage_error('unknown option --%s%s (see --help)', name, s and (' (did you mean --' .. s .. '?)') or '')
      end
      if negated then
        opt[o.key] = false
      elseif o.type == 'boolean' and value == nil then
        opt[o.key] = true
      else
        if value == nil then
          i = i + 1
          value = argv[i]
          if value == nil then usage_error('--%s needs a value', o.name) end
        end
        opt[o.key] = convert(o, value)
      end
      given[o.key] = true
    elseif a:sub(1, 1) == '-' and #a > 1 and not tonumber(a) then
      usage_error("unknown option %s (options start with --; see --help)", a)
    else
      if not self.positional then usage_error("unexpected argument '%s' (see --help)", a) end
      positional[#positional + 1] = a
    end
    i = i + 1
  end
  if self.positional then opt._positional = positional end
  return opt, given
end

local function show_default(o)
  local d = o.default
  if d == nil then return '' end
  if o.type == 'boolean' then return d and ' (default: on)' or '' end
  if type(d) == 'number' and math.type(d) == 'float' then return string.format(' (default: %g)', d) end
  return ' (default: ' .. tostring(d) .. ')'
end

local function metavar(o)
  if o.type == 'boolean' then return '' end
  if o.meta then return ' ' .. o.meta end
  if o.type == 'choice' then return ' ' .. table.concat(o.choices, '|') end
  if o.type == 'integer' then return ' N' end
  if o.type == 'number' then return ' X' end
  return ' ' .. o.name:gsub('%-', '_'):upper()
end

-- Wraps text to width, indenting continuation lines by `indent` spaces.
local function wrap(text, width, indent)
  local lines, line = {}, ''
  for word in text:gmatch('%S+') do
    if #line > 0 and #line + 1 + #word > width then
      lines[#lines + 1] = line
      line = word
    else
      line = #line > 0 and (line .. ' ' .. word) or word
    end
  end
  if #line > 0 then lines[#lines + 1] = line end
  return table.concat(lines, '\n' .. string.rep(' ', indent))
end

function Parser:help()
  local out = {}
  out[#out + 1] = 'usage: ' .. self.prog .. ' [options]' .. (self.positional and (' ' .. self.positional) or '')
  if self.summary then out[#out + 1] = '\n' .. self.summary end
  out[#out + 1] = '\noptions:'
  local col = 0
  local heads = {}
  for i, o in ipairs(self.options) do
    heads[i] = '  --' .. o.name .. metavar(o)
    if #heads[i] <= 34 then col = math.max(col, #heads[i]) end
  end
  col = col + 2
  for i, o in ipairs(self.options) do
    local h = heads[i]
    local text = wrap(o.help .. show_default(o), math.max(30, 100 - col), col)
    if #h + 2 > col then
      out[#out + 1] = h
      out[#out + 1] = string.rep(' ', col) .. text
    else
      out[#out + 1] = h .. string.rep(' ', col - #h) .. text
    end
  end
  out[#out + 1] = '  -h, --help' .. string.rep(' ', math.max(2, col - 12)) .. 'show this help and exit'
  if self.epilog then out[#out + 1] = '\n' .. self.epilog end
  return table.concat(out, '\n')
end

return args
