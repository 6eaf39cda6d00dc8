-- GFLOP/s of the convolution kernels on the 8 conv layers of VGG-11 (CIFAR shapes, 3x3, pad 1)
-- next to plain sgemm of the same GEMM shape, measured in the same run (interleaved, best of
-- `reps`). Usage: build/bin/nd bench/conv_kernels.lua [reps=3] [batch=128] [threads=2]
-- Shared machines are noisy: compare the ratios, not the absolute numbers.
local nd = require('nd')
local core = nd.core

local reps = tonumber(arg and arg[1]) or 3
local batch = math.tointeger(tonumber(arg and arg[2]) or 128)
local threads = math.tointeger(tonumber(arg and arg[3]) or 2)
if core.setnumthreads then core.setnumthreads(threads) end

local layers = {
  {3, 64, 32}, {64, 128, 16}, {128, 256, 8}, {256, 256, 8},
  {256, 512, 4}, {512, 512, 4}, {512, 512, 2}, {512, 512, 2},
}

local function best(f)
  local t0 = core.now(); f(); return core.now() - t0
end

-- sgemm (M x K) @ (K x N) through core.addmm, output reused.
local function gemm_case(M, N, K)
  local a, b, c = nd.randn(M, K), nd.randn(K, N), nd.empty(M, N)
  return function() core.addmm(c, 0, nil, 1, a, b) end
end

local g = gemm_case(2048, 2048, 2048)
g()
local tg = math.huge
for _ = 1, reps do tg = math.min(tg, best(g)) end
print(string.format('threads %d, batch %d, best of %d; sgemm 2048^3: %.1f GFLOP/s',
  threads, batch, reps, 2 * 2048 ^ 3 / tg / 1e9))
print(string.format('%-22s %8s | %8s %6s | %8s %6s | %8s %8s | %s', 'layer', 'sgemm', 'fwd', '%',
  'bwd', '%', 'bwd in', 'bwd par', 'ms fwd/bwd'))

local tot = {flops = 0, g = 0, f = 0, b = 0}
for i, l in ipairs(layers) do
  local C, O, H = l[1], l[2], l[3]
  local x, w, bias = nd.randn(batch, C, H, H), nd.randn(O, C, 3, 3), nd.randn(O)
  local out, gi = nd.empty(batch, O, H, H), nd.empty(batch, C, H, H)
  local gw, gb = nd.zeros(O, C, 3, 3), nd.zeros(O)
  local flops = 2 * batch * O * H * H * C * 9
  local gemm = gemm_case(O, batch * H * H, C * 9)
  local fwd = function() core.conv2d_forward(out, x, w, bias, 3, 3, 1, 1, 1, 1) end
  local bwd = function() core.conv2d_backward(gi, gw, gb, x, out, w, 1, 3, 3, 1, 1, 1, 1) end
  local bin = function() core.conv2d_backward_input(gi, x, out, w, 3, 3, 1, 1, 1, 1) end
  local bpar = function() core.conv2d_backward_params(gw, gb, x, out, 1, 3, 3, 1, 1, 1, 1) end
  gemm(); fwd(); bwd()
  local t = {g = math.huge, f = math.huge, b = math.huge, bi = math.huge, bp = math.huge}
  for _ = 1, reps do
    t.g = math.min(t.g, best(gemm))
    t.f = math.min(t.f, best(fwd))
    t.b = math.min(t.b, best(bwd))
    t.bi = math.min(t.bi, best(bin))
    t.bp = math.min(t.bp, best(bpar))
  end
  print(string.format('%d %3d->%3d %2dx%-2d     %8.1f | %8.1f %5.1f%% | %8.1f %5.1f%% | %8.1f %8.1f | %.1f / %.1f',
    i, C, O, H, H, flops / t.g / 1e9, flops / t.f / 1e9, 100 * t.g / t.f, 2 * flops / t.b / 1e9,
    200 * t.g / t.b, flops / t.bi / 1e9, flops / t.bp / 1e9, 1e3 * t.f, 1e3 * t.b))
  tot.flops, tot.g, tot.f, tot.b = tot.flops + flops, tot.g + t.g, tot.f + t.f, tot.b + t.b
end
print(string.format('all 8 layers: sgemm %.1f GFLOP/s | forward %.1f GFLOP/s (%.1f%%, %.1f ms) | backward %.1f GFLOP/s (%.1f%%, %.1f ms)',
  tot.flops / tot.g / 1e9, tot.flops / tot.f / 1e9, 100 * tot.g / tot.f, 1e3 * tot.f,
  2 * tot.flops / tot.b / 1e9, 200 * tot.g / tot.b, 1e3 * tot.b))
local _, scratch, parallel = core.conv_config()
print(string.format('column scratch %.1f MiB; parallel copy loops: %s; %% = share of the same-shape sgemm',
  scratch / 2 ^ 20, tostring(parallel)))
print(string.format('Winograd F(2x2,3x3) mode: %s (ND_CONV_WINOGRAD=off|auto|force; auto takes 3x3 stride-1',
  os.getenv('ND_CONV_WINOGRAD') or 'auto'))
print('layers with >= 32 planes on both sides, so % can pass 100%; bench/layers.lua compares per layer)')
print('(backward = both GEMMs: grad input and grad weight). The copy loops run on OpenMP threads')
print('only with OMP_WAIT_POLICY=PASSIVE (or a small GOMP_SPINCOUNT): spinning OpenMP workers would')
print('steal a core from the OpenBLAS threads of the next GEMM.')
