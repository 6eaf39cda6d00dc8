-- Forward + backward time of the VGG-11 CIFAR conv layers (batch 128 by default) and the
-- GFLOP/s reached, as a fraction of the sgemm GFLOP/s measured in the same run.
-- Then Winograd F(2x2,3x3) against im2col per layer: each layer is timed in rounds that
-- alternate the modes "off" and "force" (core.conv_config's third argument; `--wino-reps`
-- rounds each, medians), so that both sides see the same machine load. Effective GFLOP/s
-- count the direct convolution's FLOPs.
-- Usage: build/bin/nd bench/layers.lua [--batch 128] [--threads 2] [--reps 3] [--wino-reps 3]
--        (--wino-reps 0 skips the comparison)
local nd = require('nd')
local nn = require('nn')
local bench = require('bench.common')

local o = bench.options({batch = 128, threads = 2, reps = 3, ['wino-reps'] = 3})
nd.setnumthreads(o.threads)

-- Median forward and backward seconds of layer l.
local function time_layer(l)
  local nIn, nOut, s = l[1], l[2], l[3]
  local conv = nn.SpatialConvolution(nIn, nOut, 3, 3, 1, 1, 1, 1)
  local x = nd.randn(o.batch, nIn, s, s)
  local go = nd.randn(o.batch, nOut, s, s)
  local tf = bench.time(function() conv:forward(x) end, o.reps, 1)
  local tb = bench.time(function() conv:backward(x, go) end, o.reps, 1)
  return tf, tb
end

-- forward 2*N*Cout*HW*Cin*9; backward (input + weight) twice that (the first layer needs no
-- input gradient in a network, but the module computes it, so it is counted)
local function layer_flops(l)
  return 2 * o.batch * l[2] * l[3] * l[3] * l[1] * 9 * 3
end

local anchor = bench.sgemm_gflops(1024)
print(string.format('sgemm 1024^3: %.1f GFLOP/s (%d threads) = the anchor', anchor, o.threads))
print(string.format('%-16s %9s %9s %9s %8s %8s', 'layer', 'fwd ms', 'bwd ms', 'GFLOP/s', 'of sgemm', 'img/s'))
local total_t, total_f = 0, 0
for _, l in ipairs(bench.vgg11_layers) do
  local tf, tb = time_layer(l)
  local flops = layer_flops(l)
  local g = flops / (tf + tb) / 1e9
  total_t, total_f = total_t + tf + tb, total_f + flops
  print(string.format('%-16s %9.1f %9.1f %9.1f %7.0f%% %8.0f', string.format('%d->%d %dx%d', l[1], l[2], l[3], l[3]),
    tf * 1e3, tb * 1e3, g, 100 * g / anchor, o.batch / (tf + tb)))
end
local g = total_f / total_t / 1e9
print(string.format('%-16s %9s %9.1f %9.1f %7.0f%% %8.0f', 'all 8 layers', '', total_t * 1e3, g, 100 * g / anchor, o.batch / total_t))

if o['wino-reps'] <= 0 then return end
-- fwd + bwd seconds of layer i in Winograd mode `mode`, the mode in force restored after
local function timed(mode, i)
  local _, _, _, old = nd.core.conv_config(nil, nil, mode)
  local tf, tb = time_layer(bench.vgg11_layers[i])
  nd.core.conv_config(nil, nil, old)
  return tf + tb
end
local function median(t)
  table.sort(t)
  return t[(#t + 1) // 2]
end
print(string.format('\nWinograd F(2x2,3x3) vs im2col, fwd+bwd, medians of %d alternating rounds', o['wino-reps']))
print(string.format('%-16s %10s %10s %8s %10s %8s %8s', 'layer', 'im2col ms', 'wino ms', 'speedup', 'eff GF/s',
  'of sgemm', 'auto'))
local tot = {i = 0, w = 0, a = 0}
for i, l in ipairs(bench.vgg11_layers) do
  local ti, tw = {}, {}
  for r = 1, o['wino-reps'] do
    ti[r] = timed('off', i)
    tw[r] = timed('force', i)
  end
  local mi, mw = median(ti), median(tw)
  local ge = layer_flops(l) / mw / 1e9
  -- what the default (auto) mode picks (src/cpu/conv.c): Winograd from 32 planes on both sides
  -- and 64 output tiles of 2x2
  local auto = l[1] >= 32 and l[2] >= 32 and o.batch * ((l[3] + 1) // 2) ^ 2 >= 64
  tot.i, tot.w, tot.a = tot.i + mi, tot.w + mw, tot.a + (auto and mw or mi)
  print(string.format('%-16s %10.1f %10.1f %7.2fx %10.1f %7.0f%% %8s',
    string.format('%d->%d %dx%d', l[1], l[2], l[3], l[3]), mi * 1e3, mw * 1e3, mi / mw, ge, 100 * ge / anchor,
    auto and 'wino' or 'im2col'))
end
print(string.format('%-16s %10.1f %10.1f %7.2fx   (auto: %.1f ms, %.2fx)', 'all 8 layers', tot.i * 1e3, tot.w * 1e3,
  tot.i / tot.w, tot.a * 1e3, tot.i / tot.a))
