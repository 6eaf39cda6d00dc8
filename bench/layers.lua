-- Forward + backward time of the VGG-11 CIFAR conv layers (batch 128 by default) and the
-- GFLOP/s reached, as a fraction of the sgemm GFLOP/s measured in the same run.
-- Usage: build/bin/nd bench/layers.lua [--batch 128] [--threads 2] [--reps 3]
local nd = require('nd')
local nn = require('nn')
local bench = require('bench.common')

local o = bench.options({batch = 128, threads = 2, reps = 3})
nd.setnumthreads(o.threads)
local anchor = bench.sgemm_gflops(1024)
print(string.format('sgemm 1024^3: %.1f GFLOP/s (%d threads) = the anchor', anchor, o.threads))
print(string.format('%-16s %9s %9s %9s %8s %8s', 'layer', 'fwd ms', 'bwd ms', 'GFLOP/s', 'of sgemm', 'img/s'))
local total_t, total_f = 0, 0
for _, l in ipairs(bench.vgg11_layers) do
  local nIn, nOut, s = l[1], l[2], l[3]
  local conv = nn.SpatialConvolution(nIn, nOut, 3, 3, 1, 1, 1, 1)
  local x = nd.randn(o.batch, nIn, s, s)
  local go = nd.randn(o.batch, nOut, s, s)
  local tf = bench.time(function() conv:forward(x) end, o.reps, 1)
  local tb = bench.time(function() conv:backward(x, go) end, o.reps, 1)
  -- forward 2*N*Cout*HW*Cin*9; backward (input + weight) twice that (the first layer needs no
  -- input gradient in a network, but the module computes it, so it is counted)
  local flops = 2 * o.batch * nOut * s * s * nIn * 9 * 3
  local g = flops / (tf + tb) / 1e9
  total_t, total_f = total_t + tf + tb, total_f + flops
  print(string.format('%-16s %9.1f %9.1f %9.1f %7.0f%% %8.0f', string.format('%d->%d %dx%d', nIn, nOut, s, s),
    tf * 1e3, tb * 1e3, g, 100 * g / anchor, o.batch / (tf + tb)))
end
local g = total_f / total_t / 1e9
print(string.format('%-16s %9s %9.1f %9.1f %7.0f%% %8.0f', 'all 8 layers', '', total_t * 1e3, g, 100 * g / anchor, o.batch / total_t))
