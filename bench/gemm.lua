-- float32 matrix product throughput: build/bin/nd bench/gemm.lua [size ...]
-- For each size n (default 256 1024 2048) and 1 and 2 threads: n x n @ n x n into a preallocated
-- result (nd.mm(res, a, b)), 2 warm-up calls, then the median wall time of at least 5 timed calls
-- (more for small sizes, about 0.5 s per case), reported as GFLOP/s = 2 n^3 / time.
package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path
package.cpath = (os.getenv('ND_BUILD') or 'build') .. '/lib/?.so;' .. package.cpath
local nd = nd or require('nd')

local sizes = {}
for _, a in ipairs(arg or {}) do sizes[#sizes + 1] = math.tointeger(tonumber(a)) end
if #sizes == 0 then sizes = {256, 1024, 2048} end
local threads = {1, 2}
local now = nd.timer

local function median(xs)
  table.sort(xs)
  local n = #xs
  return n % 2 == 1 and xs[(n + 1) // 2] or 0.5 * (xs[n // 2] + xs[n // 2 + 1])
end

local saved = nd.getnumthreads()
print(string.format('%s', nd.blasconfig()))
print(string.format('%6s %8s %10s %10s %6s', 'n', 'threads', 'ms', 'GFLOP/s', 'runs'))
local results = {}
for _, n in ipairs(sizes) do
  nd.manualSeed(1)
  local a, b, res = nd.rand(n, n), nd.rand(n, n), nd.empty(n, n)
  local flop = 2 * n * n * n
  for _, t in ipairs(threads) do
    nd.setnumthreads(t)
    for _ = 1, 2 do nd.mm(res, a, b) end
    local t0 = now()
    nd.mm(res, a, b)
    local once = now() - t0
    local runs = math.max(5, math.min(200, math.floor(0.5 / math.max(once, 1e-6))))
    local times = {}
    for r = 1, runs do
      local s = now()
      nd.mm(res, a, b)
      times[r] = now() - s
    end
    local tm = median(times)
    results[#results + 1] = {n = n, threads = t, gflops = flop / tm / 1e9}
    print(string.format('%6d %8d %10.3f %10.1f %6d', n, t, tm * 1e3, flop / tm / 1e9, runs))
  end
end
nd.setnumthreads(saved)
return results
