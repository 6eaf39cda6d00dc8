-- A small busted-compatible spec runner for machines without busted (the GPU machine has no Lua
-- install: only build/bin/nd). Runs busted-style spec files under the nd interpreter:
--
--   build/bin/nd scripts/spec_runner.lua tests/spec/cuda_spec.lua tests/spec/cuda_math_spec.lua
--
-- Supports describe / it / pending / before_each / after_each / setup / teardown (lazy_ and strict_
-- variants) / finally, and the assertions the specs use: assert(v, msg), assert.are.equal (equal,
-- equals), assert.are.same (deep), assert.are_not.equal / same, assert.is_true / is_false /
-- truthy / falsy (also is_truthy / is_falsy) / is_nil / is_not_nil, assert.matches(pattern, s),
-- assert.has_error(fn [, msg]), assert.has_no.errors(fn), assert.error_matches(fn, pattern), assert.near(expected, actual, tol).
-- Prints TAP lines ("ok N - path", "not ok N - path" with the error, "ok N - path # SKIP reason")
-- and a last line "N passed, N failed, N pending". Exit status 1 when anything failed.
package.path = 'lua/?.lua;lua/?/init.lua;./?.lua;./?/init.lua;tests/spec/?.lua;' .. package.path

local PENDING = {}

local function fmt(v)
  if type(v) == 'string' then return string.format('%q', v) end
  return tostring(v)
end

local function deep_same(a, b, seen)
  if a == b then return true end
  if type(a) ~= 'table' or type(b) ~= 'table' then
    return type(a) == 'number' and type(b) == 'number' and a ~= a and b ~= b
  end
  seen = seen or {}
  if seen[a] == b then return true end
  seen[a] = b
  for k, v in pairs(a) do if not deep_same(v, b[k], seen) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

local function fail(msg, level) error(msg, (level or 1) + 2) end

local function make_assert()
  local A = {}
  local function check(cond, msg) if not cond then fail(msg, 2) end end
  local function equal(expected, actual, msg)
    check(expected == actual, msg or ('expected ' .. fmt(expected) .. ', got ' .. fmt(actual)))
  end
  local function not_equal(expected, actual, msg)
    check(expected ~= actual, msg or ('expected a value other than ' .. fmt(expected)))
  end
  local function same(expected, actual, msg)
    check(deep_same(expected, actual), msg or ('expected the same values as ' .. fmt(expected) .. ', got ' .. fmt(actual)))
  end
  local function not_same(expected, actual, msg) check(not deep_same(expected, actual), msg or 'expected different values') end
  local function is_true(v, msg) check(v == true, msg or ('expected true, got ' .. fmt(v))) end
  local function is_false(v, msg) check(v == false, msg or ('expected false, got ' .. fmt(v))) end
  local function truthy(v, msg) check(v, msg or ('expected a truthy value, got ' .. fmt(v))) end
  local function falsy(v, msg) check(not v, msg or ('expected a falsy value, got ' .. fmt(v))) end
  local function is_nil(v, msg) check(v == nil, msg or ('expected nil, got ' .. fmt(v))) end
  local function not_nil(v, msg) check(v ~= nil, msg or 'expected a value, got nil') end
  local function matches(pat, s, init, plain, msg)
    check(type(s) == 'string' and s:find(pat, init, plain) ~= nil,
          msg or ('expected ' .. fmt(s) .. ' to match ' .. fmt(pat)))
  end
  local function has_error(fn, expected)
    local ok, err = pcall(fn)
    check(not ok, 'expected an error')
    if expected ~= nil then
      local e = tostring(err)
      check(e == expected or e:sub(-#expected) == expected, 'expected error ' .. fmt(expected) .. ', got ' .. fmt(e))
    end
  end
  local function no_error(fn)
    local ok, err = pcall(fn)
    check(ok, 'expected no error, got ' .. tostring(err))
  end
  local function error_matches(fn, pat, init, plain)
    local ok, err = pcall(fn)
    check(not ok, 'expected an error matching ' .. fmt(pat))
    check(tostring(err):find(pat, init, plain) ~= nil, 'expected an error matching ' .. fmt(pat) .. ', got ' .. fmt(tostring(err)))
  end
  local function near(expected, actual, tol)
    check(type(actual) == 'number' and math.abs(expected - actual) <= tol,
          'expected ' .. fmt(expected) .. ' +- ' .. fmt(tol) .. ', got ' .. fmt(actual))
  end
  local pos = {equal = equal, equals = equal, same = same, is_true = is_true, is_false = is_false, truthy = truthy,
               falsy = falsy, is_nil = is_nil, is_not_nil = not_nil, matches = matches, match = matches,
               has_error = has_error, error = has_error, has_errors = has_error, error_matches = error_matches,
               near = near, is_near = near, True = is_true, False = is_false, is_truthy = truthy,
               is_falsy = falsy}
  local neg = {equal = not_equal, equals = not_equal, same = not_same, is_nil = not_nil, truthy = falsy, falsy = truthy,
               errors = no_error, error = no_error, has_error = no_error}
  for k, v in pairs(pos) do A[k] = v end
  A.are, A.is, A.has = pos, pos, pos
  A.are_not, A.is_not, A.has_no, A.no = neg, neg, neg, neg
  A.not_nil = not_nil
  A.are_equal, A.are_same = equal, same
  return setmetatable(A, {__call = function(_, v, msg, ...)
    if not v then fail(msg or 'assertion failed!', 1) end
    return v, msg, ...
  end})
end

-- ---- the tree of blocks ----
local function block(name, parent)
  return {name = name, parent = parent, children = {}, before = {}, after = {}, setup = {}, teardown = {}}
end
local root = block('', nil)
local current = root

local function add_hook(kind) return function(fn) table.insert(current[kind], fn) end end

local env = setmetatable({}, {__index = _G})
env.assert = make_assert()
function env.describe(name, fn)
  local b = block(name, current)
  table.insert(current.children, {kind = 'block', block = b})
  local saved = current
  current = b
  fn()
  current = saved
end
env.context = env.describe
env.insulate, env.expose = env.describe, env.describe
function env.it(name, fn) table.insert(current.children, {kind = 'test', name = name, fn = fn}) end
env.test, env.spec = env.it, env.it
local finalizers
function env.finally(fn) if finalizers then table.insert(finalizers, fn) end end
function env.pending(msg)
  if finalizers then error({[PENDING] = msg or 'pending'}, 0) end
  table.insert(current.children, {kind = 'pending', name = msg or 'pending'})
end
env.before_each, env.after_each = add_hook('before'), add_hook('after')
env.setup, env.teardown = add_hook('setup'), add_hook('teardown')
env.lazy_setup, env.lazy_teardown = env.setup, env.teardown
env.strict_setup, env.strict_teardown = env.setup, env.teardown

local n, passed, failed, npending = 0, 0, 0, 0

local function path_of(b, name)
  local parts = {}
  while b and b.parent do table.insert(parts, 1, b.name); b = b.parent end
  parts[#parts + 1] = name
  return table.concat(parts, ' ')
end

local function run_hooks(b, kind, inner_first)
  local chain = {}
  local x = b
  while x do table.insert(chain, 1, x); x = x.parent end
  if inner_first then
    for i = #chain, 1, -1 do for _, f in ipairs(chain[i][kind]) do f() end end
  else
    for _, c in ipairs(chain) do for _, f in ipairs(c[kind]) do f() end end
  end
end

local function report(ok, label, err)
  n = n + 1
  if ok == true then
    passed = passed + 1
    print(string.format('ok %d - %s', n, label))
  elseif ok == PENDING then
    npending = npending + 1
    print(string.format('ok %d - %s # SKIP %s', n, label, err))
  else
    failed = failed + 1
    print(string.format('not ok %d - %s', n, label))
    print('# ' .. tostring(err):gsub('\n', '\n# '))
  end
end

local function run_block(b)
  local ok, err = true, nil
  for _, f in ipairs(b.setup) do
    ok, err = xpcall(f, debug.traceback)
    if not ok then break end
  end
  for _, c in ipairs(b.children) do
    if c.kind == 'block' then
      if ok then run_block(c.block) else report(false, path_of(c.block, '(setup)'), err) end
    elseif c.kind == 'pending' then
      report(PENDING, path_of(b, c.name), c.name)
    elseif not ok then
      report(false, path_of(b, c.name), 'setup failed: ' .. tostring(err))
    else
      finalizers = {}
      local tok, terr = xpcall(function()
        run_hooks(b, 'before', false)
        c.fn()
      end, function(e)
        if type(e) == 'table' and e[PENDING] then return e end
        return debug.traceback(tostring(e), 2)
      end)
      local aok, aerr = pcall(run_hooks, b, 'after', true)
      for _, f in ipairs(finalizers) do pcall(f) end
      finalizers = nil
      if not tok and type(terr) == 'table' and terr[PENDING] then
        report(PENDING, path_of(b, c.name), terr[PENDING])
      elseif not tok then
        report(false, path_of(b, c.name), terr)
      elseif not aok then
        report(false, path_of(b, c.name), 'after_each: ' .. tostring(aerr))
      else
        report(true, path_of(b, c.name))
      end
      collectgarbage()
    end
  end
  for _, f in ipairs(b.teardown) do pcall(f) end
end

local files = {...}
if #files == 0 then
  io.stderr:write('usage: nd scripts/spec_runner.lua file_spec.lua ...\n')
  os.exit(2)
end
for _, file in ipairs(files) do
  local b = block(file, root)
  table.insert(root.children, {kind = 'block', block = b})
  current = b
  local chunk, err = loadfile(file, 't', env)
  if not chunk then
    table.insert(b.children, {kind = 'test', name = '(load)', fn = function() error(err, 0) end})
  else
    local ok, lerr = xpcall(chunk, debug.traceback)
    if not ok then table.insert(b.children, {kind = 'test', name = '(load)', fn = function() error(lerr, 0) end}) end
  end
  current = root
end
print('1..?')
run_block(root)
print(string.format('%d passed, %d failed, %d pending', passed, failed, npending))
os.exit(failed == 0 and 0 or 1)
