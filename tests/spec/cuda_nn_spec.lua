-- CPU/GPU parity of the nn kernels and modules (src/cuda/{conv,pool,act,norm,loss}.cu): every
-- module forward (relative error 1e-4) and backward (1e-3, parameter gradients included) on
-- contiguous and non-contiguous inputs, the cuDNN convolution against our im2col + cuBLAS
-- reference, criterions, and a small conv net trained a few steps on both devices.
-- Relative error: max |gpu - cpu| / max |cpu| over the tensor. cuDNN runs in strict fp32 here
-- (TF32 off); pending with the reason when there is no usable GPU.
local nd = require('nd')
local nn = require('nn')

local P = require('helpers.cuda_parity')
local ok, why = P.ok, P.why
local core = nd.core
local FWD, BWD = P.FWD, P.BWD
local host, gpu, num_close, variants = P.host, P.gpu, P.num_close, P.variants

local rel, close = P.rel, P.close

-- Runs a module on both devices over the input variants: forward, then backward with the same
-- gradOutput; compares output, gradInput and parameter gradients.
local function parity(name, m, x, opt)
  opt = opt or {}
  local mg = m:clone():cuda()
  if opt.evaluate then m:evaluate(); mg:evaluate() end
  for _, v in ipairs(variants(x)) do
    local tag, xc, xg = name .. ' (' .. v[1] .. ')', v[2], v[3]
    if opt.inplace then xc, xg = xc:clone(), xg:clone() end -- forward overwrites them
    local yc = m:forward(xc)
    local yg = mg:forward(xg)
    assert.are.equal('cuda', core.device(yg))
    close(yg, yc, FWD, tag .. ' forward')
    local go = nd.randn(yc:size()):type(yc:type())
    m:zeroGradParameters()
    mg:zeroGradParameters()
    local gic = m:backward(xc, go:clone())
    local gig = mg:backward(xg, gpu(go))
    close(gig, gic, BWD, tag .. ' gradInput')
    local _, gc = m:parameters()
    local _, gg = mg:parameters()
    for i = 1, #(gc or {}) do close(gg[i], gc[i], BWD, tag .. ' gradient ' .. i) end
  end
  return mg
end

describe('CUDA nn parity', function()
  if not ok then
    it('needs a GPU', function() pending('no usable GPU, CUDA parity specs skipped: ' .. tostring(why)) end)
    return
  end

  local restore
  setup(function() restore = P.strict_fp32() end)
  teardown(function() restore() end)
  before_each(function() nd.manualSeed(1234) end)

  describe('convolution', function()
    local cases = {
      {'3x3 pad 1', {3, 8, 3, 3, 1, 1, 1, 1}, {2, 3, 9, 9}},
      {'kernel 5x3 (WxH), stride 1x2, padding 1x2', {4, 6, 5, 3, 1, 2, 1, 2}, {3, 4, 11, 8}},
      {'1x1', {8, 4, 1, 1}, {2, 8, 5, 5}},
      {'groups 2, dilation 2', {4, 6, 3, 3, 1, 1, 2, 2, {groups = 2, dilation = 2}}, {2, 4, 10, 9}},
      {'no bias, 3-d input', {3, 5, 3, 3, 2, 2, 1, 1, {bias = false}}, {3, 7, 7}},
    }
    for _, c in ipairs(cases) do
      it('SpatialConvolution ' .. c[1], function()
        local m = nn.SpatialConvolution(table.unpack(c[2]))
        parity('conv ' .. c[1], m, nd.randn(table.unpack(c[3])))
      end)
    end

    it('cuDNN matches the im2col + cuBLAS reference and the CPU (float32 and float64)', function()
      for _, dt in ipairs({'float32', 'float64'}) do
        local x, w, b = nd.randn(2, 4, 7, 6, dt), nd.randn(6, 2, 3, 3, dt), nd.randn(6, dt)
        local go = nd.randn(2, 6, 4, 3, dt)
        local xg, wg, bg, gog = gpu(x), gpu(w), gpu(b), gpu(go)
        local args = {3, 3, 2, 2, 1, 1, 1, 1, 2} -- kW kH dW dH padW padH dilW dilH groups
        local yc = core.conv2d_forward(nil, x, w, b, table.unpack(args))
        local yf = core.conv2d_forward(nil, xg, wg, bg, table.unpack(args))
        local yr = core.conv2d_forward_ref(nil, xg, wg, bg, table.unpack(args))
        close(yf, host(yr), FWD, dt .. ' cuDNN vs reference forward')
        close(yr, yc, FWD, dt .. ' reference vs CPU forward')
        local gwc, gbc = nd.zeros(6, 2, 3, 3, dt), nd.zeros(6, dt)
        local gic = core.conv2d_backward(nil, gwc, gbc, x, go, w, 0.5, table.unpack(args))
        for _, ref in ipairs({false, true}) do
          local gwg, gbg = gpu(nd.zeros(6, 2, 3, 3, dt)), gpu(nd.zeros(6, dt))
          local f = ref and core.conv2d_backward_ref or core.conv2d_backward
          local gig = f(nil, gwg, gbg, xg, gog, wg, 0.5, table.unpack(args))
          local tag = dt .. (ref and ' reference' or ' cuDNN')
          close(gig, gic, BWD, tag .. ' gradInput')
          close(gwg, gwc, BWD, tag .. ' gradWeight')
          close(gbg, gbc, BWD, tag .. ' gradBias')
        end
      end
    end)

    it('separate backward entry points accumulate with scale', function()
      local x, w, go = nd.randn(2, 3, 6, 6), nd.randn(4, 3, 3, 3), nd.randn(2, 4, 6, 6)
      local gw, gb = nd.ones(4, 3, 3, 3), nd.ones(4)
      local gwg, gbg = gpu(gw), gpu(gb)
      core.conv2d_backward_params(gw, gb, x, go, 2, 3, 3, 1, 1, 1, 1)
      core.conv2d_backward_params(gwg, gbg, gpu(x), gpu(go), 2, 3, 3, 1, 1, 1, 1)
      close(gwg, gw, BWD, 'gradWeight')
      close(gbg, gb, BWD, 'gradBias')
      local gi = core.conv2d_backward_input(nil, x, go, w, 3, 3, 1, 1, 1, 1)
      local gig = core.conv2d_backward_input(nil, gpu(x), gpu(go), gpu(w), 3, 3, 1, 1, 1, 1)
      close(gig, gi, BWD, 'gradInput')
    end)

    it('im2col and col2im match the CPU', function()
      local x = nd.randn(2, 3, 5, 6)
      local c = core.im2col(nil, x, 3, 2, 2, 1, 1, 0, 1, 2)
      local cg = core.im2col(nil, gpu(x), 3, 2, 2, 1, 1, 0, 1, 2)
      close(cg, c, FWD, 'im2col')
      close(core.col2im(nil, cg, {2, 3, 5, 6}, 3, 2, 2, 1, 1, 0, 1, 2),
            core.col2im(nil, c, {2, 3, 5, 6}, 3, 2, 2, 1, 1, 0, 1, 2), FWD, 'col2im')
    end)

    it('rejects mixed devices with the op name', function()
      local ok2, err = pcall(core.conv2d_forward, nil, gpu(nd.randn(1, 2, 4, 4)), nd.randn(3, 2, 3, 3), false,
                             3, 3, 1, 1, 0, 0)
      assert.is_false(ok2)
      assert.matches('conv2d', err)
    end)
  end)

  describe('pooling', function()
    it('SpatialMaxPooling (floor and ceil, padding)', function()
      parity('maxpool 2x2', nn.SpatialMaxPooling(2, 2, 2, 2), nd.randn(2, 3, 8, 8))
      parity('maxpool 3x3 s2 p1 ceil', nn.SpatialMaxPooling(3, 3, 2, 2, 1, 1):ceil(), nd.randn(2, 3, 10, 9))
      parity('maxpool 3-d', nn.SpatialMaxPooling(3, 2, 1, 2), nd.randn(4, 7, 6))
    end)

    it('stores the same indices as the CPU', function()
      local x = nd.randn(2, 3, 9, 9)
      local _, ic = core.maxpool2d_forward(nil, nil, x, 3, 3, 2, 2, 1, 1, true)
      local _, ig = core.maxpool2d_forward(nil, nil, gpu(x), 3, 3, 2, 2, 1, 1, true)
      assert.are.equal(0, (host(ig) - ic):abs():max())
    end)

    it('SpatialAveragePooling (count_include_pad on and off, ceil)', function()
      parity('avgpool 2x2', nn.SpatialAveragePooling(2, 2, 2, 2), nd.randn(2, 3, 8, 8))
      parity('avgpool 3x3 s2 p1 ceil', nn.SpatialAveragePooling(3, 3, 2, 2, 1, 1):ceil(), nd.randn(2, 3, 10, 9))
      parity('avgpool exclude pad', nn.SpatialAveragePooling(3, 3, 2, 2, 1, 1):setCountExcludePad(),
             nd.randn(2, 3, 7, 7))
    end)

    it('SpatialAdaptiveAveragePooling', function()
      parity('adaptive 1x1', nn.SpatialAdaptiveAveragePooling(1, 1), nd.randn(2, 4, 5, 5))
      parity('adaptive 3x2 of 7x5', nn.SpatialAdaptiveAveragePooling(3, 2), nd.randn(2, 4, 5, 7))
    end)
  end)

  describe('activations', function()
    for _, c in ipairs({{'ReLU', nn.ReLU}, {'Sigmoid', nn.Sigmoid}, {'Tanh', nn.Tanh}}) do
      it(c[1], function()
        parity(c[1], c[2](), nd.randn(3, 4, 5, 6))
        parity(c[1] .. ' in place', c[2](true), nd.randn(3, 4, 5, 6), {inplace = true})
      end)
    end
    it('SoftMax and LogSoftMax over (N,C), (N,C,H,W) and (C)', function()
      for _, c in ipairs({{'SoftMax', nn.SoftMax}, {'LogSoftMax', nn.LogSoftMax}}) do
        parity(c[1] .. ' 2-d', c[2](), nd.randn(7, 10) * 3)
        parity(c[1] .. ' 2-d wide', c[2](), nd.randn(3, 1000))
        parity(c[1] .. ' 4-d', c[2](), nd.randn(2, 5, 3, 4))
        local m, x1 = c[2](), nd.randn(6)
        close(m:clone():cuda():forward(gpu(x1)), m:forward(x1), FWD, c[1] .. ' 1-d')
      end
    end)
  end)

  describe('batch normalisation', function()
    it('BatchNormalization (N,C): training, running statistics, evaluation', function()
      local m = nn.BatchNormalization(6)
      m.weight:uniform(0.5, 1.5)
      m.bias:uniform(-1, 1)
      local mg = parity('bn 2-d', m, nd.randn(8, 6) * 2 + 3)
      close(mg.running_mean, m.running_mean, FWD, 'running_mean')
      close(mg.running_var, m.running_var, FWD, 'running_var')
      parity('bn 2-d eval', m, nd.randn(8, 6), {evaluate = true})
    end)

    it('SpatialBatchNormalization: training, evaluation, no affine, float64', function()
      local m = nn.SpatialBatchNormalization(5)
      m.weight:uniform(0.5, 1.5)
      local mg = parity('sbn', m, nd.randn(4, 5, 6, 7) + 1)
      close(mg.running_var, m.running_var, FWD, 'running_var')
      parity('sbn eval', m, nd.randn(4, 5, 6, 7), {evaluate = true})
      parity('sbn no affine', nn.SpatialBatchNormalization(3, 1e-5, 0.1, false), nd.randn(2, 3, 4, 4))
      local md = nn.SpatialBatchNormalization(4):double()
      local x = nd.randn(3, 4, 5, 5, 'float64')
      local yd = md:forward(x)
      local mgd = md:clone():type('nd.CudaDoubleTensor')
      assert.is_true(rel(mgd:forward(gpu(x)), yd) < 1e-10)
    end)
  end)

  describe('other modules', function()
    it('Linear (2-d and 1-d input)', function()
      parity('linear', nn.Linear(7, 5), nd.randn(4, 7))
      local m = nn.Linear(7, 5)
      local x = nd.randn(7)
      close(m:clone():cuda():forward(gpu(x)), m:forward(x), FWD, 'linear 1-d')
    end)

    it('Dropout: evaluation is the identity, training masks and scales on the GPU', function()
      local m = nn.Dropout(0.25):cuda()
      local x = gpu(nd.rand(50, 40) + 1)
      local y = host(m:forward(x))
      local xs = host(x)
      local kept = 0
      for i = 1, 50 do
        for j = 1, 40 do
          local v = y[i][j]
          if v ~= 0 then
            kept = kept + 1
            assert(math.abs(v - xs[i][j] / 0.75) < 1e-5)
          end
        end
      end
      assert.is_true(kept > 0.6 * 2000 and kept < 0.9 * 2000)
      local g = host(m:backward(x, gpu(nd.ones(50, 40))))
      close(g, host(m.noise), FWD, 'dropout gradient is the mask')
      m:evaluate()
      close(m:forward(x), xs, 0, 'dropout evaluation')
    end)

    it('View, Identity and Sequential keep tensors on the GPU', function()
      local m = nn.Sequential():add(nn.View(12)):add(nn.Identity()):add(nn.Linear(12, 3))
      parity('view net', m, nd.randn(5, 3, 4))
    end)
  end)

  describe('criterions', function()
    -- make() builds the criterion (once per device); tg: the targets given to the GPU one
    -- (default: t moved to the GPU).
    local function crit_parity(name, make, x, t, tg)
      local c, cg = make(), make():cuda()
      local xg = gpu(x)
      num_close(cg:forward(xg, tg or gpu(t)), c:forward(x, t), FWD, name .. ' loss')
      close(cg:backward(xg, tg or gpu(t)), c:backward(x, t), BWD, name .. ' gradInput')
    end

    it('ClassNLLCriterion with CPU and GPU targets, class weights, sizeAverage off', function()
      local x = nn.LogSoftMax():forward(nd.randn(9, 5))
      local t = nd.LongTensor({1, 5, 2, 3, 3, 4, 1, 5, 2})
      local w = nd.rand(5) + 0.5
      crit_parity('nll', function() return nn.ClassNLLCriterion() end, x, t, t) -- CPU targets, GPU input
      crit_parity('nll gpu targets', function() return nn.ClassNLLCriterion() end, x, t)
      crit_parity('nll float targets', function() return nn.ClassNLLCriterion() end, x, t, gpu(t:double()))
      crit_parity('nll weighted', function() return nn.ClassNLLCriterion(w:clone()) end, x, t)
      crit_parity('nll sum', function() return nn.ClassNLLCriterion(nil, false) end, x, t)
    end)

    it('ClassNLLCriterion rejects an out-of-range GPU target', function()
      local c = nn.ClassNLLCriterion():cuda()
      local x = gpu(nd.randn(3, 4))
      local ok2, err = pcall(function() return c:forward(x, gpu(nd.LongTensor({1, 5, 2}))) end)
      assert.is_false(ok2)
      assert.matches('nll_loss', tostring(err))
    end)

    it('CrossEntropyCriterion', function()
      crit_parity('cross entropy', function() return nn.CrossEntropyCriterion() end, nd.randn(16, 10) * 2,
                  nd.LongTensor({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 2, 3, 4, 5, 6}))
    end)

    it('MSECriterion and BCECriterion (non-contiguous input too)', function()
      local x = nd.randn(6, 5)
      local mse = function() return nn.MSECriterion() end
      crit_parity('mse', mse, x, nd.randn(6, 5))
      crit_parity('mse non-contiguous', mse, nd.randn(5, 6):t(), nd.randn(6, 5))
      local p = nn.Sigmoid():forward(nd.randn(6, 5)):clone()
      local y, w = nd.rand(6, 5), nd.rand(6, 5)
      crit_parity('bce', function() return nn.BCECriterion() end, p, y)
      crit_parity('bce weighted', function() return nn.BCECriterion(w:clone()) end, p, y)
    end)
  end)

  describe('a small conv net', function()
    local function net()
      return nn.Sequential()
        :add(nn.SpatialConvolution(3, 8, 3, 3, 1, 1, 1, 1)):add(nn.SpatialBatchNormalization(8)):add(nn.ReLU(true))
        :add(nn.SpatialMaxPooling(2, 2, 2, 2))
        :add(nn.SpatialConvolution(8, 16, 3, 3, 1, 1, 1, 1, {groups = 2})):add(nn.ReLU(true))
        :add(nn.SpatialAveragePooling(2, 2, 2, 2)):add(nn.SpatialAdaptiveAveragePooling(1, 1))
        :add(nn.View(16)):add(nn.Linear(16, 10))
    end

    it('forward, backward and SGD steps agree on both devices', function()
      local mc = net()
      local mg = mc:clone():cuda()
      local cc, cg = nn.CrossEntropyCriterion(), nn.CrossEntropyCriterion():cuda()
      local pc, gc = mc:getParameters()
      local pg, gg = mg:getParameters()
      assert.are.equal('cuda', core.device(pg))
      close(pg, pc, 0, 'initial parameters')
      local x = nd.randn(8, 3, 16, 16)
      local t = nd.LongTensor({1, 2, 3, 4, 5, 6, 7, 8})
      local xg = gpu(x)
      for step = 1, 3 do
        gc:zero()
        gg:zero()
        local lc = cc:forward(mc:forward(x), t)
        local lg = cg:forward(mg:forward(xg), t)
        num_close(lg, lc, 1e-4 * step, 'loss at step ' .. step)
        mc:backward(x, cc:backward(mc.output, t))
        mg:backward(xg, cg:backward(mg.output, t))
        close(gg, gc, BWD * step, 'gradients at step ' .. step)
        close(mg.gradInput, mc.gradInput, BWD * step, 'gradInput at step ' .. step)
        pc:add(-0.1, gc)
        pg:add(-0.1, gg)
      end
      mc:evaluate()
      mg:evaluate()
      close(mg:forward(xg), mc:forward(x), 1e-3, 'evaluation output after training')
    end)
  end)
end)
