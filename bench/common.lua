-- Shared helpers of the benchmarks: wall-clock medians and the sgemm anchor.
local nd = require('nd')

local bench = {}

-- Median wall time of fn() over `reps` runs after `warm` warm-up runs.
function bench.time(fn, reps, warm)
  for _ = 1, warm or 1 do fn() end
  local t = {}
  for i = 1, reps or 3 do
    local t0 = nd.now()
    fn()
    t[i] = nd.now() - t0
  end
  table.sort(t)
  return t[(#t + 1) // 2]
end

-- GFLOP/s of a float32 n x n x n matrix product (the anchor every ratio is taken against).
function bench.sgemm_gflops(n)
  n = n or 1024
  local a, b = nd.randn(n, n), nd.randn(n, n)
  local c = nd.zeros(n, n)
  local t = bench.time(function() nd.mm(c, a, b) end, 5, 2)
  return 2 * n * n * n / t / 1e9
end

-- VGG-11 on CIFAR: the conv layers (nIn, nOut, spatial size).
bench.vgg11_layers = {
  {3, 64, 32}, {64, 128, 16}, {128, 256, 8}, {256, 256, 8},
  {256, 512, 4}, {512, 512, 4}, {512, 512, 2}, {512, 512, 2},
}

-- Reads --key value options from the script's arg table.
function bench.options(defaults)
  local o = {}
  for k, v in pairs(defaults) do o[k] = v end
  local a = arg or {}
  local i = 1
  while a[i] do
    local k = a[i]:match('^%-%-(.+)$')
    if k and a[i + 1] then o[k] = tonumber(a[i + 1]) or a[i + 1]; i = i + 2 else i = i + 1 end
  end
  return o
end

return bench
