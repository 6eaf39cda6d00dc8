-- CPU/GPU parity of network deconvolution (src/cuda/{isqrt,deconv,channel_deconv}.cu): the
-- Newton-Schulz inverse square root and its backward, the sampled im2col / col2im, the
-- statistics and the weight folding (float32 and float64), then the modules nn.Deconv (k3
-- stride 1 and 2 with strided blocks, 1x1, groups, no bias, 3-d input, freeze), nn.DeconvLinear
-- and nn.ChannelDeconv (leftover channels, 2-d and 4-d) in training and evaluation, on
-- contiguous and non-contiguous inputs: forward within 1e-4, backward within 1e-3 (relative:
-- max |gpu - cpu| / max |cpu|). Convolutions run in strict fp32 (TF32 off); one spec checks the
-- TF32 product switch (nd.cuda.tf32) at looser tolerances. Pending with the reason when there is
-- no usable GPU.
local nd = require('nd')
local nn = require('nn')

local P = require('helpers.cuda_parity')
local ok, why = P.ok, P.why
local core = nd.core
local FWD, BWD = P.FWD, P.BWD
local host, gpu, num_close, variants = P.host, P.gpu, P.num_close, P.variants

local rel, close = P.rel, P.close

local function on_gpu(t, what) assert(core.device(t) == 'cuda', what .. ' is not on the GPU') end

-- g symmetric positive-definite d x d matrices (g = nil: one (d,d) matrix), spectrum spread
-- over about two decades.
local function spd(g, d, dt)
  local n = g or 1
  local A = nd.zeros(n, d, d, dt)
  for i = 1, n do
    local Q = nd.randn(d, 2 * d, dt)
    local M = Q:mm(Q:t()):div(2 * d)
    M:add(0.01, nd.eye(d, dt))
    A[i]:copy(M)
  end
  if not g then return A[1]:clone() end
  return A
end

-- The named tensor fields of two modules (CPU, GPU) compared.
local function same_fields(mc, mg, fields, tol, tag)
  for _, f in ipairs(fields) do
    if mc[f] then
      on_gpu(mg[f], tag .. ' ' .. f)
      close(mg[f], mc[f], tol, tag .. ' ' .. f)
    end
  end
end

-- Training then evaluation on both devices over the input variants: output, gradInput, the
-- parameter gradients and the running buffers.
local function parity(name, m, x, opt)
  opt = opt or {}
  local mg = m:clone():cuda()
  for _, v in ipairs(variants(x)) do
    local tag, xc, xg = name .. ' (' .. v[1] .. ')', v[2], v[3]
    for _, mode in ipairs(opt.modes or {'train', 'eval'}) do
      local t = tag .. ' ' .. mode
      if mode == 'train' then m:training(); mg:training() else m:evaluate(); mg:evaluate() end
      local yc = m:forward(xc)
      local yg = mg:forward(xg)
      on_gpu(yg, t .. ' output')
      close(yg, yc, FWD, t .. ' forward')
      same_fields(m, mg, opt.buffers or {}, FWD, t)
      if mode == 'eval' then -- again: the folded weights are cached
        close(mg:forward(xg), m:forward(xc), FWD, t .. ' cached forward')
      end
      if mode == 'train' or not opt.noEvalBackward then
        local go = nd.randn(yc:size()):type(yc:type())
        m:zeroGradParameters()
        mg:zeroGradParameters()
        local gic = m:backward(xc, go:clone())
        local gig = mg:backward(xg, gpu(go))
        on_gpu(gig, t .. ' gradInput')
        close(gig, gic, BWD, t .. ' gradInput')
        local _, gc = m:parameters()
        local _, gg = mg:parameters()
        for i = 1, #(gc or {}) do close(gg[i], gc[i], BWD, t .. ' gradient ' .. i) end
      end
    end
  end
  return mg
end

describe('CUDA deconvolution parity', function()
  if not ok then
    it('needs a GPU', function()
      pending('no usable GPU, CUDA deconvolution parity specs skipped: ' .. tostring(why))
    end)
    return
  end

  local restore
  setup(function() restore = P.strict_fp32() end)
  teardown(function() restore() end)
  before_each(function() nd.manualSeed(4321) end)

  describe('Newton-Schulz', function()
    for _, dt in ipairs({'float64', 'float32'}) do
      it('forward and backward, single and batched, 0 to 15 iterations (' .. dt .. ')', function()
        for _, c in ipairs({{nil, 5}, {3, 9}, {2, 27}, {nil, 70}}) do
          for _, n in ipairs({0, 1, 5, 15}) do
            local tag = string.format('%s g=%s d=%d n=%d', dt, tostring(c[1]), c[2], n)
            local A = spd(c[1], c[2], dt)
            local Dc, svc = core.isqrt_forward(A, n)
            local Dg, svg = core.isqrt_forward(gpu(A), n)
            on_gpu(Dg, tag .. ' D')
            close(Dg, Dc, FWD, tag .. ' D')
            close(core.isqrt(gpu(A), n), Dc, FWD, tag .. ' D without saved')
            assert.are.same(core.size(svc), core.size(svg))
            local GD = nd.randn(A:size()):type(A:type())
            local GAc = core.isqrt_backward(GD, svc, A, n)
            local GAg = core.isqrt_backward(gpu(GD), svg, gpu(A), n)
            close(GAg, GAc, BWD, tag .. ' GA')
          end
        end
      end)
    end

    it('accepts non-contiguous A and GD', function()
      local A = spd(nil, 12, 'float64')
      local At = A:t() -- symmetric: same values, transposed strides
      local Dc, svc = core.isqrt_forward(A, 5)
      local Dg, svg = core.isqrt_forward(gpu(A:clone()):t(), 5)
      close(Dg, Dc, FWD, 'D')
      local GD = nd.randn(12, 12, 'float64')
      local GAc = core.isqrt_backward(GD, svc, At:contiguous(), 5)
      local GAg = core.isqrt_backward(gpu(GD:t():contiguous()):t(), svg, gpu(A), 5)
      close(GAg, GAc, BWD, 'GA')
    end)
  end)

  describe('FastDeconv kernels', function()
    -- {tag, x size, k, pad, dil, s, B, groups}
    local geoms = {
      {'k3 strided blocks', {2, 6, 9, 8}, 3, 1, 1, 2, 2, 1},
      {'k3 stride-2 sampling, dilation 2', {2, 4, 11, 9}, 3, 2, 2, 4, 2, 1},
      {'k1', {3, 8, 5, 7}, 1, 0, 1, 3, 4, 1},
      {'k3 groups 2', {2, 4, 7, 7}, 3, 1, 1, 2, 2, 2},
      {'k1 groups 4 (depthwise)', {2, 4, 6, 6}, 1, 0, 1, 2, 1, 4},
    }
    for _, dt in ipairs({'float64', 'float32'}) do
      it('im2col, col2im, statistics and their backward (' .. dt .. ')', function()
        for _, c in ipairs(geoms) do
          local tag = dt .. ' ' .. c[1]
          local x = nd.randn(table.unpack(c[2])):type(dt == 'float64' and 'nd.DoubleTensor' or 'nd.FloatTensor')
          for _, v in ipairs(variants(x)) do
            local t = tag .. ' ' .. v[1]
            local Xc = core.deconv_im2col(v[2], c[3], c[4], c[5], c[6], c[7], c[8])
            local Xg = core.deconv_im2col(v[3], c[3], c[4], c[5], c[6], c[7], c[8])
            close(Xg, Xc, 0, t .. ' im2col')
            local GX = nd.randn(Xc:size()):type(Xc:type())
            local gx0 = nd.randn(x:size()):type(x:type())
            local gxc = core.deconv_col2im(gx0:clone(), GX, c[3], c[4], c[5], c[6], c[7], c[8])
            local gxg = core.deconv_col2im(gpu(gx0), gpu(GX), c[3], c[4], c[5], c[6], c[7], c[8])
            close(gxg, gxc, 1e-12 + (dt == 'float32' and 1e-6 or 0), t .. ' col2im')
            -- col2im into a non-contiguous gradient
            local base = gpu(gx0:transpose(3, 4):contiguous())
            local gxs = base:transpose(3, 4)
            core.deconv_col2im(gxs, gpu(GX), c[3], c[4], c[5], c[6], c[7], c[8])
            close(gxs, gxc, 1e-6, t .. ' col2im strided')
          end
          local X = core.deconv_im2col(x, c[3], c[4], c[5], c[6], c[7], c[8])
          local muc, Dc, savedc = core.deconv_stats_forward(X, c[8], 1e-3, 5)
          local mug, Dg, savedg = core.deconv_stats_forward(gpu(X), c[8], 1e-3, 5)
          close(mug, muc, FWD, tag .. ' mean')
          close(savedg.C, savedc.C, FWD, tag .. ' covariance')
          close(Dg, Dc, FWD, tag .. ' D')
          local GD, Gmu = nd.randn(Dc:size()):type(Dc:type()), nd.randn(muc:size()):type(muc:type())
          close(core.deconv_stats_backward(gpu(GD), gpu(Gmu), savedg), core.deconv_stats_backward(GD, Gmu, savedc),
                BWD, tag .. ' stats backward')
          close(core.deconv_stats_backward(gpu(GD), nil, savedg), core.deconv_stats_backward(GD, nil, savedc),
                BWD, tag .. ' stats backward without Gmu')
        end
      end)

      it('weight folding and its backward (' .. dt .. ')', function()
        local T = dt == 'float64' and 'nd.DoubleTensor' or 'nd.FloatTensor'
        -- {tag, W size, F, groups, layout}
        for _, c in ipairs({{'strided', {5, 6, 3, 3}, 18, 1, 'strided'}, {'single block', {4, 2, 3, 3}, 18, 1, 'strided'},
                            {'contiguous', {7, 24}, 8, 1, 'contiguous'}, {'groups 3', {6, 2, 3, 3}, 18, 3, 'strided'}}) do
          local tag = dt .. ' ' .. c[1]
          local W = nd.randn(table.unpack(c[2])):type(T)
          local Cout, g, F = c[2][1], c[4], c[3]
          local D = g == 1 and spd(nil, F, dt) or spd(g, F, dt)
          local mu, b0 = nd.randn(g * F):type(T), nd.randn(Cout):type(T)
          for _, bias in ipairs({true, false}) do
            local t = tag .. (bias and '' or ' no bias')
            local bb = bias and b0 or nil
            local Wfc, bc = core.deconv_fold_forward(W, bb, D, mu, g, c[5])
            local Wfg, bg = core.deconv_fold_forward(gpu(W), bias and gpu(b0) or nil, gpu(D), gpu(mu), g, c[5])
            close(Wfg, Wfc, FWD, t .. ' Wf')
            close(bg, bc, FWD, t .. ' b')
            local GWf, Gb = nd.randn(W:size()):type(T), nd.randn(Cout):type(T)
            local rc = {core.deconv_fold_backward(GWf, bias and Gb or nil, W, D, mu, g, c[5])}
            local rg = {core.deconv_fold_backward(gpu(GWf), bias and gpu(Gb) or nil, gpu(W), gpu(D), gpu(mu), g, c[5])}
            for i, what in ipairs({'GW', 'Gb0', 'GD', 'Gmu'}) do close(rg[i], rc[i], BWD, t .. ' ' .. what) end
          end
        end
      end)
    end

    it('rejects mixed devices with the op name', function()
      local x = nd.randn(2, 4, 6, 6)
      local X = core.deconv_im2col(x, 3, 1, 1, 2, 2, 1)
      local okc, err = pcall(core.deconv_col2im, gpu(x), X, 3, 1, 1, 2, 2, 1)
      assert.is_false(okc)
      assert.truthy(tostring(err):find('deconv_col2im'))
    end)
  end)

  describe('modules', function()
    local dbuf = {'runningMean', 'runningDeconv'}
    local cases = {
      {'k3 stride 1, strided blocks', {6, 5, 3, 3, 1, 1, 1, 1, {block = 2, samplingStride = 2}}, {3, 6, 9, 9}},
      {'k3 stride 2, strided blocks', {6, 4, 3, 3, 2, 2, 1, 1, {block = 3, samplingStride = 1}}, {3, 6, 11, 10}},
      {'1x1', {8, 6, 1, 1, 1, 1, 0, 0, {block = 4}}, {4, 8, 7, 7}},
      {'groups 2', {4, 6, 3, 3, 1, 1, 1, 1, {groups = 2, samplingStride = 2}}, {3, 4, 8, 8}},
      {'no bias', {4, 5, 3, 3, 1, 1, 1, 1, {bias = false, block = 2, samplingStride = 2}}, {3, 4, 8, 8}},
      {'3-d input', {3, 4, 3, 3, 1, 1, 1, 1, {samplingStride = 1}}, {3, 9, 9}},
    }
    for _, c in ipairs(cases) do
      it('Deconv ' .. c[1], function()
        parity('Deconv ' .. c[1], nn.Deconv(table.unpack(c[2])), nd.randn(table.unpack(c[3])), {buffers = dbuf})
      end)
    end

    it('Deconv frozen statistics (training with the running buffers)', function()
      local m = nn.Deconv(4, 4, 3, 3, 1, 1, 1, 1, {freeze = true, freezeIter = 1, block = 2, samplingStride = 2})
      local mg = m:clone():cuda()
      local x = nd.randn(2, 4, 8, 8)
      for step = 1, 4 do -- calls 3 and 4 are frozen
        local yc, yg = m:forward(x), mg:forward(gpu(x))
        close(yg, yc, FWD, 'step ' .. step .. ' forward')
        local go = nd.randn(yc:size())
        m:zeroGradParameters(); mg:zeroGradParameters()
        close(mg:backward(gpu(x), gpu(go)), m:backward(x, go), BWD, 'step ' .. step .. ' gradInput')
        close(mg.gradWeight, m.gradWeight, BWD, 'step ' .. step .. ' gradWeight')
        same_fields(m, mg, dbuf, FWD, 'step ' .. step)
      end
    end)

    it('Deconv eval folding follows parameter updates after training()', function()
      local m = nn.Deconv(4, 4, 3, 3, 1, 1, 1, 1, {block = 2, samplingStride = 2})
      local mg = m:clone():cuda()
      local x = nd.randn(2, 4, 8, 8)
      m:forward(x); mg:forward(gpu(x))
      m:evaluate(); mg:evaluate()
      close(mg:forward(gpu(x)), m:forward(x), FWD, 'eval')
      m.weight:mul(0.5); mg.weight:mul(0.5); m:refold(); mg:refold()
      close(mg:forward(gpu(x)), m:forward(x), FWD, 'eval after refold')
      local Wc, bc = m:folded()
      local Wg, bg = mg:folded()
      close(Wg, Wc, FWD, 'folded weight')
      close(bg, bc, FWD, 'folded bias')
    end)

    it('DeconvLinear (shared contiguous blocks, with and without bias)', function()
      parity('DeconvLinear', nn.DeconvLinear(24, 7, {block = 8}), nd.randn(16, 24), {buffers = dbuf})
      parity('DeconvLinear no bias', nn.DeconvLinear(12, 5, {block = 12, bias = false}), nd.randn(20, 12),
             {buffers = dbuf})
    end)

    it('ChannelDeconv with leftover channels (4-d, sampled) and 2-d input', function()
      for _, c in ipairs({{'4-d leftovers', 4, {3, 10, 7, 7}}, {'4-d exact blocks', 4, {2, 8, 6, 6}},
                          {'2-d leftovers', 8, {32, 20}}, {'4-d small maps (no sampling)', 3, {4, 7, 2, 2}}}) do
        local m = nn.ChannelDeconv(c[2], {eps = 1e-3})
        local mg = parity('ChannelDeconv ' .. c[1], m, nd.randn(table.unpack(c[3])),
                          {buffers = {'runningMean1', 'runningDeconv'}, noEvalBackward = true})
        num_close(mg.runningMean2, m.runningMean2, FWD, c[1] .. ' runningMean2')
        num_close(mg.runningVar, m.runningVar, FWD, c[1] .. ' runningVar')
        assert.are.equal(m.numBatchesTracked, mg.numBatchesTracked)
      end
    end)

    it('Deconv with TF32 products (nd.cuda.tf32, the speed experiment): close to strict float32', function()
      local m = nn.Deconv(64, 32, 3, 3, 1, 1, 1, 1) -- F = 576 as in VGG; 1152 sampled rows
      local mg = m:clone():cuda()
      local x, go = nd.randn(32, 64, 16, 16), nd.randn(32, 32, 16, 16)
      local was = nd.cuda.tf32(true)
      local okc, err = pcall(function()
        close(mg:forward(gpu(x)), m:forward(x), 2e-2, 'tf32 forward')
        close(mg:backward(gpu(x), gpu(go)), m:backward(x, go), 5e-2, 'tf32 gradInput')
      end)
      nd.cuda.tf32(was)
      assert(okc, err)
      assert.is_false(nd.cuda.tf32(), 'the TF32 switch is restored (strict for the other specs)')
    end)

    it('a small deconvolution net trains the same few steps on both devices', function()
      local function net()
        return nn.Sequential()
          :add(nn.Deconv(3, 8, 3, 3, 1, 1, 1, 1, {block = 3, samplingStride = 2, iters = 15, freeze = true}))
          :add(nn.ReLU())
          :add(nn.Deconv(8, 8, 3, 3, 2, 2, 1, 1, {block = 4}))
          :add(nn.ReLU())
          :add(nn.SpatialAdaptiveAveragePooling(1, 1)):add(nn.View(8))
          :add(nn.ChannelDeconv(3, {eps = 1e-3}))
          :add(nn.DeconvLinear(8, 4, {block = 4}))
      end
      local mc = net()
      local mg = mc:clone():cuda()
      local crit = nn.CrossEntropyCriterion()
      local critg = nn.CrossEntropyCriterion():cuda()
      local x, y = nd.randn(16, 3, 12, 12), nd.Tensor({1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4}):long()
      local xg, yg = gpu(x), y:to('cuda')
      local pc, gc = mc:getParameters()
      local pg, gg = mg:getParameters()
      for step = 1, 3 do
        gc:zero(); gg:zero()
        local lc = crit:forward(mc:forward(x), y)
        local lg = critg:forward(mg:forward(xg), yg)
        num_close(lg, lc, 1e-4, 'step ' .. step .. ' loss')
        mc:backward(x, crit:backward(mc.output, y))
        mg:backward(xg, critg:backward(mg.output, yg))
        close(gg, gc, 2e-3, 'step ' .. step .. ' gradients')
        pc:add(-0.05, gc); pg:add(-0.05, gg)
      end
      mc:evaluate(); mg:evaluate()
      close(mg:forward(xg), mc:forward(x), 1e-3, 'evaluation after training')
    end)
  end)
end)
