-- Training checkpoints: one nd file (nd.save: versioned, written to a temp file and renamed, so a
-- kill never leaves a half-written checkpoint) holding everything a run needs to continue as if
-- it had never stopped.
--
--   checkpoint.save(path, {model =, optimState =, epoch =, iteration =, options =, history =,
--                          best =})
--       calls model:clearState() and records the global RNG state and the modules' counters
--       (nn.Deconv's freeze cycle is not kept by the module itself across a load)
--   checkpoint.path(p)  -> p, or p/checkpoint.nd when p is a directory
--   checkpoint.load(p)  -> the checkpoint table (clear errors for missing, damaged or foreign files)
--   checkpoint.restore(ck, model)  puts the saved counters back and the RNG state in place
--   checkpoint.signature(model) -> 'nn.Sequential: 12 tensors, 9,750,922 parameters' and a list
--       of parameter shapes, to check a checkpoint against the model its options build
local nd = require('nd')

local checkpoint = {}
checkpoint.FORMAT = 'nd.train.checkpoint'
checkpoint.VERSION = 1
checkpoint.NAME = 'checkpoint.nd'

local function isdir(p)
  local f = io.open(p .. '/.', 'r')
  if f then f:close() return true end
  return false
end
checkpoint.isdir = isdir

function checkpoint.path(p)
  if isdir(p) then return (p:gsub('/+$', '')) .. '/' .. checkpoint.NAME end
  return p
end

-- The counters of the modules, in listModules() order (nil entries kept as false).
local function counters(model)
  local out = {}
  for i, m in ipairs(model:listModules()) do
    out[i] = type(m.counter) == 'number' and m.counter or false
  end
  return out
end

function checkpoint.save(path, s)
  assert(s.model and s.optimState and s.epoch and s.iteration and s.options, 'checkpoint.save: missing fields')
  s.model:clearState()
  nd.save(path, {
    format = checkpoint.FORMAT, version = checkpoint.VERSION, model = s.model, optimState = s.optimState,
    epoch = s.epoch, iteration = s.iteration, options = s.options, history = s.history or {},
    best = s.best, rng = nd.getRNGState(), counters = counters(s.model), saved = os.date('!%Y-%m-%dT%H:%M:%SZ'),
    signature = (checkpoint.signature(s.model)),
  })
end

function checkpoint.load(p)
  local path = checkpoint.path(p)
  local f = io.open(path, 'rb')
  if not f then
    if isdir(p) then error(string.format('no checkpoint in %s (expected %s)', p, path), 0) end
    error(string.format('no checkpoint at %s', path), 0)
  end
  f:close()
  local ok, ck = pcall(nd.load, path)
  if not ok then error(string.format('cannot read the checkpoint %s: %s', path, tostring(ck)), 0) end
  if type(ck) ~= 'table' or ck.format ~= checkpoint.FORMAT then
    error(string.format('%s is not a training checkpoint of scripts/train.lua (it holds %s)', path,
      type(ck) == 'table' and (ck.format and ("a '" .. tostring(ck.format) .. "'") or 'another table') or nd.typename(ck) or type(ck)), 0)
  end
  if type(ck.version) ~= 'number' or ck.version > checkpoint.VERSION then
    error(string.format('%s is a checkpoint of version %s; this train.lua reads version %d or older', path,
      tostring(ck.version), checkpoint.VERSION), 0)
  end
  for _, k in ipairs {'model', 'optimState', 'epoch', 'iteration', 'options', 'rng'} do
    if ck[k] == nil then error(string.format('the checkpoint %s is incomplete: it has no %s', path, k), 0) end
  end
  ck.path = path
  return ck
end

function checkpoint.restore(ck, model)
  local mods = model:listModules()
  for i, c in ipairs(ck.counters or {}) do
    if c and mods[i] then mods[i].counter = c end
  end
  nd.setRNGState(ck.rng)
end

local function commas(n)
  local s = tostring(n)
  local out = s:reverse():gsub('(%d%d%d)', '%1,'):reverse()
  return (out:gsub('^,', ''))
end

function checkpoint.signature(model)
  local params = model:parameters() or {}
  local shapes, total = {}, 0
  for i, p in ipairs(params) do
    shapes[i] = tostring(p:size())
    total = total + p:nElement()
  end
  return string.format('%s with %d parameter tensors, %s parameters', nd.typename(model) or '?', #params, commas(total)), shapes
end

-- Compares the parameter shapes of two models; returns nil when they match, else a sentence.
function checkpoint.mismatch(saved, fresh)
  local s_sig, s_shapes = checkpoint.signature(saved)
  local f_sig, f_shapes = checkpoint.signature(fresh)
  if #s_shapes ~= #f_shapes then
    return string.format('the checkpoint holds a %s, the options build a %s', s_sig, f_sig)
  end
  for i = 1, #s_shapes do
    if s_shapes[i] ~= f_shapes[i] then
      return string.format('parameter tensor %d is %s in the checkpoint but %s in the model the options build (%s vs %s)',
        i, s_shapes[i], f_shapes[i], s_sig, f_sig)
    end
  end
end

return checkpoint
