-- Newton-Schulz inverse square root of a d x d covariance (float32, 5 iterations): forward and
-- backward time by the iterate products (the reference) and by the eigen basis (the default for
-- d >= 64), and their ratio. Each method runs in a child process (ND_ISQRT_METHOD is read once).
-- Usage: build/bin/nd bench/isqrt.lua [--d 576] [--reps 5]
local nd = require('nd')
local bench = require('bench.common')
local o = bench.options({d = 576, reps = 5, child = ''})

if o.child ~= '' then
  local core = nd.core
  local d = o.d
  nd.manualSeed(0)
  local X = nd.randn(4 * d, d)
  local C = X:t():mm(X):div(4 * d)
  C = (C + C:t()):div(2) -- exactly symmetric, as the layer's covariance
  local GD = nd.randn(d, d)
  local D, sv
  local f = bench.time(function() D, sv = core.isqrt_forward(C, 5) end, o.reps, 1)
  local b = bench.time(function() core.isqrt_backward(GD, sv, C, 5) end, o.reps, 1)
  print(string.format('%.3f %.3f', f * 1e3, b * 1e3))
  return
end

local function run(method)
  local cmd = string.format('ND_ISQRT_METHOD=%s %q %q --child 1 --d %d --reps %d', method, arg[-1], arg[0], o.d, o.reps)
  local p = assert(io.popen(cmd))
  local out = p:read('a')
  p:close()
  local f, b = out:match('([%d.]+) ([%d.]+)')
  assert(f, 'child failed: ' .. out)
  return tonumber(f), tonumber(b)
end
local nf, nb = run('ns')
local ef, eb = run('eig')
print(string.format('isqrt d=%d float32, 5 iterations (median of %d)', o.d, o.reps))
print(string.format('%-22s %10s %10s %10s', 'method', 'fwd ms', 'bwd ms', 'total'))
print(string.format('%-22s %10.1f %10.1f %10.1f', 'iterate products (ns)', nf, nb, nf + nb))
print(string.format('%-22s %10.1f %10.1f %10.1f', 'eigen basis (eig)', ef, eb, ef + eb))
print(string.format('speed-up: %.2fx forward, %.2fx backward, %.2fx total', nf / ef, nb / eb, (nf + nb) / (ef + eb)))
