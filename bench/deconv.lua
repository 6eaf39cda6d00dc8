-- nn.Deconv against nn.SpatialConvolution + nn.SpatialBatchNormalization on the VGG-11 CIFAR
-- layer shapes (batch 128): forward + backward time of each, their ratio measured in the same
-- run, and the share of each Deconv stage (sampling, covariance, Newton-Schulz, folding,
-- convolution, backward).
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

print(string.format('%-14s %10s %10s %7s   %s', 'layer', 'conv+BN ms', 'Deconv ms', 'ratio', 'Deconv stages (share of the stage total)'))
local tot_bn, tot_dc = 0, 0
local order = {'sampling', 'cov+isqrt', 'folding', 'conv', 'conv bwd', 'stats bwd'}
for _, l in ipairs(bench.vgg11_layers) do
  local nIn, nOut, sz = l[1], l[2], l[3]
  local x = nd.randn(o.batch, nIn, sz, sz)
  local go = nd.randn(o.batch, nOut, sz, sz)
  local bn = nn.Sequential():add(nn.SpatialConvolution(nIn, nOut, 3, 3, 1, 1, 1, 1)):add(nn.SpatialBatchNormalization(nOut))
  local dc = nn.Deconv(nIn, nOut, 3, 3, 1, 1, 1, 1)
  local tbn = bench.time(function() bn:forward(x); bn:backward(x, go) end, o.reps, 1)
  local tdc = bench.time(function() dc:forward(x); dc:backward(x, go) end, o.reps, 1)
  tot_bn, tot_dc = tot_bn + tbn, tot_dc + tdc
  local st = stages(dc, x, go)
  local sum = 0
  for _, k in ipairs(order) do sum = sum + (st[k] or 0) end
  local parts = {}
  for _, k in ipairs(order) do parts[#parts + 1] = string.format('%s %.0f%%', k, 100 * (st[k] or 0) / sum) end
  print(string.format('%-14s %10.1f %10.1f %6.2fx   %s', string.format('%d->%d %dx%d', nIn, nOut, sz, sz),
    tbn * 1e3, tdc * 1e3, tdc / tbn, table.concat(parts, ', ')))
end
print(string.format('%-14s %10.1f %10.1f %6.2fx', 'all 8 layers', tot_bn * 1e3, tot_dc * 1e3, tot_dc / tot_bn))
