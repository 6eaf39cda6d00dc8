-- nn behaviour beyond gradients: parameters, serialization, errors, training smoke tests, and
-- the deconvolution layers' defining properties.
local nd = require('nd')
local nn = require('nn')
local optim = require('optim')

local function maxabs(a, b) return (a - b):abs():max() end

describe('nn.Module', function()
  it('getParameters is idempotent and parameters stay views of it', function()
    local m = nn.Sequential():add(nn.Linear(3, 4)):add(nn.ReLU()):add(nn.Linear(4, 2))
    local p, g = m:getParameters()
    assert.are.equal(3 * 4 + 4 + 4 * 2 + 2, p:nElement())
    local p2, g2 = m:getParameters()
    assert.are.equal(p, p2)
    assert.are.equal(g, g2)
    p:fill(0.5)
    assert.are.equal(0.5, m:get(1).weight[1][1])
    m:get(3).gradBias:fill(2)
    assert.are.equal(2, g[g:nElement()])
  end)

  it('saves and loads a model with identical outputs', function()
    nd.manualSeed(3)
    local m = nn.Sequential():add(nn.SpatialConvolution(3, 4, 3, 3, 1, 1, 1, 1)):add(nn.SpatialBatchNormalization(4))
      :add(nn.ReLU()):add(nn.View(4 * 4 * 4)):add(nn.Linear(64, 5))
    local x = nd.randn(2, 3, 4, 4)
    m:forward(x)
    m:evaluate()
    local y = m:forward(x):clone()
    local path = os.tmpname()
    nd.save(path, m:clearState())
    local m2 = nd.load(path)
    os.remove(path)
    assert.are.equal('nn.Sequential', nd.typename(m2))
    assert.is_true(maxabs(m2:forward(x), y) == 0)
  end)

  it('gives the same result for a batch and for single samples', function()
    nd.manualSeed(4)
    local lin = nn.Linear(5, 3)
    local conv = nn.SpatialConvolution(2, 3, 3, 3, 1, 1, 1, 1)
    local x, img = nd.randn(4, 5), nd.randn(4, 2, 5, 5)
    local yb, cb = lin:forward(x):clone(), conv:forward(img):clone()
    for i = 1, 4 do
      assert.is_true(maxabs(lin:forward(x[i]), yb[i]) < 1e-6)
      assert.is_true(maxabs(conv:forward(img[i]), cb[i]) < 1e-5)
    end
  end)

  it('names the container path and shapes in errors', function()
    local m = nn.Sequential():add(nn.Linear(4, 4)):add(nn.Sequential():add(nn.ReLU()):add(nn.SpatialConvolution(64, 8, 3, 3)))
    local ok, err = pcall(function() return m:forward(nd.randn(2, 4)) end)
    assert.is_false(ok)
    assert.matches('nn.Sequential%(2%) > nn.Sequential%(2%) > nn.SpatialConvolution', err)
    local ok2, err2 = pcall(function() return nn.Deconv(64, 8, 3, 3):forward(nd.randn(2, 32, 8, 8)) end)
    assert.is_false(ok2)
    assert.matches('nn.Deconv: expected input of 64 planes, got 32 %(input 2x32x8x8%)', err2)
    local ok3, err3 = pcall(function() return nn.Linear(3, 2):forward(nd.randn(2, 5)) end)
    assert.is_false(ok3)
    assert.matches('3 features, got 5', err3)
  end)

  it('prints a tree with parameter counts', function()
    local s = tostring(nn.Sequential():add(nn.Linear(10, 20)):add(nn.ReLU()))
    assert.matches('%(1%): nn.Linear%(10 %-> 20%)', s)
    assert.matches('220 params', s)
  end)

  it('has a clear error for :cuda() without a GPU build', function()
    if nd.cuda and nd.cuda.available and nd.cuda.available() then return end
    local ok, err = pcall(function() return nn.Linear(2, 2):cuda() end)
    assert.is_false(ok)
    assert.matches('GPU', err)
  end)
end)

-- A small model trained with optim.sgd on generated data: the loss must halve.
local function train(model, x, y, steps, lr)
  local crit = nn.CrossEntropyCriterion()
  local params, grads = model:getParameters()
  local config, state = {learningRate = lr, momentum = 0.9}, {}
  local first, last
  for i = 1, steps do
    local function feval()
      grads:zero()
      local out = model:forward(x)
      local loss = crit:forward(out, y)
      model:backward(x, crit:backward(out, y))
      return loss, grads
    end
    local _, fs = optim.sgd(feval, params, config, state)
    if i == 1 then first = fs[1] end
    last = fs[1]
  end
  return first, last
end

local function blobs(n, c, size)
  -- classes differ by the mean of a channel pattern
  local x = nd.randn(n, c, size, size):mul(0.5)
  local y = nd.LongTensor(n)
  for i = 1, n do
    local k = (i - 1) % 3 + 1
    y[i] = k
    x[i][k % c + 1]:add(k - 2)
  end
  return x, y
end

describe('training smoke tests', function()
  it('a small convnet halves its loss', function()
    nd.manualSeed(5)
    local x, y = blobs(48, 3, 8)
    local m = nn.Sequential()
      :add(nn.SpatialConvolution(3, 8, 3, 3, 1, 1, 1, 1)):add(nn.SpatialBatchNormalization(8)):add(nn.ReLU())
      :add(nn.SpatialMaxPooling(2, 2, 2, 2)):add(nn.View(8 * 4 * 4)):add(nn.Linear(128, 3))
    local first, last = train(m, x, y, 30, 0.05)
    assert.is_true(last < first / 2, string.format('loss %.4f -> %.4f', first, last))
  end)

  it('a small VGG-like net of Deconv layers halves its loss', function()
    nd.manualSeed(6)
    local x, y = blobs(48, 3, 8)
    local m = nn.Sequential()
      :add(nn.Deconv(3, 8, 3, 3, 1, 1, 1, 1, {freeze = true, iters = 15})):add(nn.ReLU())
      :add(nn.SpatialMaxPooling(2, 2, 2, 2))
      :add(nn.Deconv(8, 16, 3, 3, 1, 1, 1, 1, {block = 8})):add(nn.ReLU())
      :add(nn.SpatialMaxPooling(2, 2, 2, 2)):add(nn.View(16 * 2 * 2)):add(nn.DeconvLinear(64, 3))
    local first, last = train(m, x, y, 30, 0.05)
    assert.is_true(last < first / 2, string.format('loss %.4f -> %.4f', first, last))
  end)
end)

describe('network deconvolution layers', function()
  it('eval output equals train output when the running buffers equal the batch statistics', function()
    nd.manualSeed(7)
    local m = nn.Deconv(4, 3, 3, 3, 1, 1, 1, 1, {block = 2, samplingStride = 2, momentum = 1}):double()
    local x = nd.randn(2, 4, 6, 6):double()
    local ytrain = m:forward(x):clone()  -- momentum 1: running buffers = this batch's statistics
    m:evaluate()
    assert.is_true(maxabs(m:forward(x), ytrain) < 1e-10)
    local l = nn.DeconvLinear(6, 2, {block = 3, momentum = 1}):double()
    local z = nd.randn(5, 6):double()
    local ltrain = l:forward(z):clone()
    l:evaluate()
    assert.is_true(maxabs(l:forward(z), ltrain) < 1e-10)
  end)

  it('whitens: the covariance of D (patch - mu) is close to I with 15 iterations', function()
    nd.manualSeed(8)
    -- correlated input: channels mixed by a random matrix
    local base = nd.randn(64, 4, 6, 6):double()
    local mix = nd.randn(4, 4):double():add(nd.eye(4, 'float64'):mul(2))
    local x = nd.mm(mix, base:transpose(1, 2):reshape(4, 64 * 36)):view(4, 64, 6, 6):transpose(1, 2):contiguous()
    local X = nd.core.deconv_im2col(x, 1, 0, 1, 1, 4, 1)  -- 1x1, every pixel, one block of 4 channels
    local mu, D = nd.core.deconv_stats_forward(X, 1, 1e-5, 15)
    local Xc = X - mu:view(1, 4):expandAs(X)
    local W = nd.mm(Xc, D)
    local cov = nd.mm(W:t(), W):div(X:size(1))
    assert.is_true(maxabs(cov, nd.eye(4, 'float64')) < 1e-3, tostring(cov))
  end)

  it('nn.utils.foldDeconv gives identical eval outputs with plain layers', function()
    nd.manualSeed(9)
    local m = nn.Sequential()
      :add(nn.Deconv(3, 4, 3, 3, 1, 1, 1, 1, {block = 3})):add(nn.ReLU())
      :add(nn.View(4 * 5 * 5)):add(nn.DeconvLinear(100, 3, {block = 20}))
    m:double()
    local x = nd.randn(6, 3, 5, 5):double()
    for _ = 1, 3 do m:forward(x) end -- move the running buffers away from their init
    m:evaluate()
    local y = m:forward(x):clone()
    local f = nn.utils.foldDeconv(m)
    assert.are.equal('nn.SpatialConvolution', nd.typename(f:get(1)))
    assert.are.equal('nn.Linear', nd.typename(f:get(4)))
    assert.is_true(maxabs(f:forward(x), y) < 1e-10)
    assert.are.equal('nn.Deconv', nd.typename(m:get(1))) -- original untouched
  end)

  it('nd.isqrt approximates the inverse square root', function()
    local A = nd.Tensor({{4, 1}, {1, 3}}, 'float64')
    local D = nd.isqrt(A, 20)
    local I = nd.mm(nd.mm(D, A), D)
    assert.is_true(maxabs(I, nd.eye(2, 'float64')) < 1e-8)
  end)

  it('runs the freeze cycle: 101 live calls then frozen until the 1000-call cycle restarts', function()
    local m = nn.Deconv(2, 2, 3, 3, 1, 1, 1, 1, {freeze = true, freezeIter = 2})
    local x = nd.randn(2, 2, 4, 4)
    local live = {}
    for i = 1, 22 do
      m:forward(x)
      live[i] = m._saved ~= nil
    end
    -- counter before call i is (i-1) % 20; frozen when counter > 2
    for i = 1, 22 do assert.are.equal(((i - 1) % 20) <= 2, live[i], 'call ' .. i) end
  end)
end)

describe('noGradInput', function()
  it('gives the same parameter gradients and skips the input gradient', function()
    for _, kind in ipairs {'conv', 'deconv'} do
      nd.manualSeed(3)
      local function make()
        if kind == 'conv' then return nn.SpatialConvolution(3, 4, 3, 3, 1, 1, 1, 1) end
        return nn.Deconv(3, 4, 3, 3, 1, 1, 1, 1, {block = 3, samplingStride = 1})
      end
      local a = make()
      local b = a:clone():noGradInput()
      local x, go = nd.randn(2, 3, 6, 6), nd.randn(2, 4, 6, 6)
      a:zeroGradParameters(); b:zeroGradParameters()
      a:forward(x); b:forward(x)
      local ga = a:backward(x, go)
      local gb = b:backward(x, go)
      assert.are.equal(4, ga:dim())
      assert.are.equal(0, gb:nElement())
      assert.is_true((a.gradWeight - b.gradWeight):abs():max() < 1e-6, kind)
      assert.is_true((a.gradBias - b.gradBias):abs():max() < 1e-6, kind)
    end
  end)

  it('is set on the first layer by models(name, {inputGrad = false})', function()
    local models = require('models')
    local m = models('vgg11', {norm = 'deconv', classes = 10, inputGrad = false})
    local first = m.modules[1]
    while first.modules do first = first.modules[1] end
    assert.is_true(first.skipGradInput)
  end)
end)

describe('core.conv_config winograd mode', function()
  it('sets and restores the mode, rejects unknown ones, and both modes agree', function()
    local core = nd.core
    local _, _, _, before = core.conv_config(nil, nil, 'off')
    local x, w, b = nd.randn(2, 32, 6, 6), nd.randn(32, 32, 3, 3), nd.randn(32)
    local y_off = core.conv2d_forward(nil, x, w, b, 3, 3, 1, 1, 1, 1)
    local _, _, _, prev = core.conv_config(nil, nil, 'force')
    assert.are.equal('off', prev)
    local y_wino = core.conv2d_forward(nil, x, w, b, 3, 3, 1, 1, 1, 1)
    assert.is_true((y_off - y_wino):abs():max() < 1e-3)
    assert.has_error(function() core.conv_config(nil, nil, 'bogus') end)
    core.conv_config(nil, nil, before)
  end)
end)
