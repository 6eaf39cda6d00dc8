-- nn.Deconv against nn.SpatialConvolution + nn.SpatialBatchNormalization on the VGG-11 CIFAR
-- layer shapes (batch 128): forward + backward time of each, their ratio measured in the same
-- run, and the share of each Deconv stage (sampling, covariance, Newton-Schulz, folding,
-- convolution, backward), and the floor an exact Deconv cannot go below on this machine.
-- Usage: build/bin/nd bench/deconv.lua [--batch 128] [--threads 2] [--reps 3]
local nd = require('nd')
local nn = require('nn')
local bench = require('bench.common')
local core = nd.core

local o = bench.options({batch = 128, threads = 2, reps = 3})
nd.setnumthreads(o.threads)

-- The stages of one Deconv training step, timed separately (the same calls nn.Deconv makes).
local function stages(m, x, go)
  local t = {}
  local function clock(name, fn)
    local t0 = nd.now()
    local a, b, c, d = fn()
    t[name] = (t[name] or 0) + nd.now() - t0
    return a, b, c, d
  end
  local s = m.samplingStride * m.dW
  local X = clock('sampling', function() return core.deconv_im2col(x, m.kW, m.padW, m.dilation, s, m.block, m.groups) end)
  local mu, D, saved = clock('cov+isqrt', function() return core.deconv_stats_forward(X, m.groups, m.eps, m.iters) end)
  local Wf, b = clock('folding', function() return core.deconv_fold_forward(m.weight, m.bias, D, mu, m.groups) end)
  clock('conv', function() return core.conv2d_forward(nil, x, Wf, b, 3, 3, 1, 1, 1, 1) end)
  local GW = nd.zeros(Wf:size())
  local Gb = nd.zeros(Wf:size(1))
  local gx = clock('conv bwd', function()
    return core.conv2d_backward(nil, GW, Gb, x, go, Wf, 1, 3, 3, 1, 1, 1, 1)
  end)
  local _, _, GD, Gmu = clock('stats bwd', function() return core.deconv_fold_backward(GW, Gb, m.weight, D, mu, m.groups) end)
  clock('stats bwd', function()
    local GX = core.deconv_stats_backward(GD, Gmu, saved)
    core.deconv_col2im(gx, GX, m.kW, m.padW, m.dilation, s, m.block, m.groups)
  end)
  return t
end

-- The floor: what an exact Deconv of the reference's algorithm cannot go below on this machine,
-- from figures of this run: the layer's own convolution (fwd + bwd, measured), the extra dense
-- products at this run's sgemm rate (covariance M F^2 as a rank-k update, its backward 2 M F^2,
-- the fold and its two backward products 3 x 2 (Cout G) F^2), and this run's isqrt forward and
-- backward of an F x F covariance (the eigen path). Sampling, regrouping and col2im count as free.
local rate = bench.sgemm_gflops(1024) * 1e9
local isqrt_ms = {}
local function isqrt_time(F)
  if not isqrt_ms[F] then
    nd.manualSeed(0)
    local X = nd.randn(4 * F, F)
    local C = X:t():mm(X):div(4 * F)
    C = (C + C:t()):div(2)
    local GD = nd.randn(F, F)
    local _, sv = core.isqrt_forward(C, 5)
    isqrt_ms[F] = bench.time(function() core.isqrt_forward(C, 5) end, o.reps, 1)
      + bench.time(function() core.isqrt_backward(GD, sv, C, 5) end, o.reps, 1)
  end
  return isqrt_ms[F]
end
local function extra_flops(m, nIn, nOut, sz)
  local G = nIn // m.block
  local F = m.kW * m.kH * m.block
  local s = m.samplingStride * m.dW
  local L = (sz + 2 * m.padW - m.kW) // s + 1
  local M = o.batch * L * L * G
  return 3 * M * F * F + 6 * nOut * G * F * F, F
end

print(string.format('sgemm 1024^3: %.1f GFLOP/s (the anchor); floor = least exact Deconv time / conv+BN time;', rate / 1e9))
print('products = the same floor without the isqrt (as if the inverse square root were free)')
print(string.format('%-14s %10s %10s %7s %7s %8s   %s', 'layer', 'conv+BN ms', 'Deconv ms', 'ratio', 'floor', 'products',
  'Deconv stages (share of the stage total)'))
local tot_bn, tot_dc, tot_floor, tot_prod = 0, 0, 0, 0
local order = {'sampling', 'cov+isqrt', 'folding', 'conv', 'conv bwd', 'stats bwd'}
for _, l in ipairs(bench.vgg11_layers) do
  local nIn, nOut, sz = l[1], l[2], l[3]
  local x = nd.randn(o.batch, nIn, sz, sz)
  local go = nd.randn(o.batch, nOut, sz, sz)
  local conv = nn.SpatialConvolution(nIn, nOut, 3, 3, 1, 1, 1, 1)
  local bn = nn.Sequential():add(nn.SpatialConvolution(nIn, nOut, 3, 3, 1, 1, 1, 1)):add(nn.SpatialBatchNormalization(nOut))
  local dc = nn.Deconv(nIn, nOut, 3, 3, 1, 1, 1, 1)
  local tbn = bench.time(function() bn:forward(x); bn:backward(x, go) end, o.reps, 1)
  local tdc = bench.time(function() dc:forward(x); dc:backward(x, go) end, o.reps, 1)
  local tconv = bench.time(function() conv:forward(x); conv:backward(x, go) end, o.reps, 1)
  local flops, F = extra_flops(dc, nIn, nOut, sz)
  local tprod = tconv + flops / rate
  local tfloor = tprod + isqrt_time(F)
  tot_bn, tot_dc, tot_floor, tot_prod = tot_bn + tbn, tot_dc + tdc, tot_floor + tfloor, tot_prod + tprod
  local st = stages(dc, x, go)
  local sum = 0
  for _, k in ipairs(order) do sum = sum + (st[k] or 0) end
  local parts = {}
  for _, k in ipairs(order) do parts[#parts + 1] = string.format('%s %.0f%%', k, 100 * (st[k] or 0) / sum) end
  print(string.format('%-14s %10.1f %10.1f %6.2fx %6.2fx %7.2fx   %s', string.format('%d->%d %dx%d', nIn, nOut, sz, sz),
    tbn * 1e3, tdc * 1e3, tdc / tbn, tfloor / tbn, tprod / tbn, table.concat(parts, ', ')))
end
print(string.format('%-14s %10.1f %10.1f %6.2fx %6.2fx %7.2fx', 'all 8 layers', tot_bn * 1e3, tot_dc * 1e3, tot_dc / tot_bn,
  tot_floor / tot_bn, tot_prod / tot_bn))
