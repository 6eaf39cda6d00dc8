-- models/: every builder and norm, output shapes, parameter counts, and the deconvolution-mode
-- details of docs/reference-spec.md section 7.
--
-- Parameter counts of the BN baselines are the widely quoted numbers of the reference's CIFAR
-- model zoo (VGG/ResNet/DenseNet with BN, 10 classes) and of torchvision (ImageNet, 1000
-- classes); each was also recomputed by hand from the layer shapes (sum of Cin*Cout*k*k
-- [+ Cout bias] + 2*C per BN + the classifier), see the numbers below.
package.path = 'lua/?.lua;lua/?/init.lua;./?.lua;./?/init.lua;' .. package.path
package.cpath = (os.getenv('ND_BUILD') or 'build') .. '/lib/?.so;' .. package.cpath
local nd = require('nd')
local nn = require('nn')
local models = require('models')

local function typeCount(model, name) return #model:findModules(name) end

-- Builds a model once per (name, norm) for the tests that only inspect it.
local built = {}
local function cached(name, norm)
  local key = name .. '/' .. norm
  if not built[key] then built[key] = models(name, {norm = norm}) end
  return built[key]
end

local function shapeOf(t) return table.concat(t:size():totable(), 'x') end

describe('models registry', function()
  it('lists the known names', function()
    local names = models.list()
    local set = {}
    for _, n in ipairs(names) do set[n] = true end
    for _, n in ipairs {'vgg11', 'vgg13', 'vgg16', 'vgg19', 'resnet18', 'resnet34', 'resnet50', 'densenet121',
                        'mlp', 'linear', 'vgg11-imagenet', 'resnet18-imagenet', 'densenet121-imagenet'} do
      assert.is_true(set[n], n)
    end
  end)

  it('rejects an unknown name with the list of known ones', function()
    local ok, err = pcall(models, 'alexnet')
    assert.is_false(ok)
    assert.truthy(tostring(err):find("unknown model 'alexnet'", 1, true))
    assert.truthy(tostring(err):find('resnet18', 1, true))
    assert.truthy(tostring(err):find('densenet121', 1, true))
  end)

  it('rejects an unknown norm and a bad depth', function()
    assert.has_error(function() require('models.vgg'){norm = 'gn'} end)
    assert.has_error(function() require('models.vgg'){depth = 12} end)
    assert.has_error(function() require('models.resnet'){depth = 101} end)
  end)

  it('dispatches the depth from the name', function()
    assert.equal(10, typeCount(models('vgg13', {norm = 'none'}), 'nn.SpatialConvolution'))
    assert.equal(13, typeCount(models('vgg16', {norm = 'none'}), 'nn.SpatialConvolution'))
    assert.equal(16, typeCount(models('vgg19', {norm = 'deconv'}), 'nn.Deconv'))
  end)
end)

describe('parameter counts', function()
  -- CIFAR, BN baselines, 10 classes (reference zoo / hand count).
  local cifarBN = {
    vgg11 = 9231114, vgg13 = 9416010, vgg16 = 14728266, vgg19 = 20040522,
    resnet18 = 11173962, resnet34 = 21282122, resnet50 = 23520842, densenet121 = 6956298,
  }
  for name, n in pairs(cifarBN) do
    it(name .. ' (bn) has ' .. n, function()
      assert.equal(n, cached(name, 'bn'):nParameters())
    end)
  end

  -- Deconv mode: every conv keeps its bias, no BN, DeconvLinear head (hand counts).
  local cifarDeconv = {vgg11 = 9225610, vgg16 = 14719818, resnet18 = 11169162, resnet50 = 23494282,
                       densenet121 = 6883018}
  for name, n in pairs(cifarDeconv) do
    it(name .. ' (deconv) has ' .. n, function()
      assert.equal(n, cached(name, 'deconv'):nParameters())
    end)
  end

  it('ImageNet variants match torchvision (resnet18 11689512, densenet121 7978856)', function()
    assert.equal(11689512, models('resnet18-imagenet', {norm = 'bn'}):nParameters())
    assert.equal(7978856, models('densenet121-imagenet', {norm = 'bn'}):nParameters())
    -- Deconv: biases on every conv, the downsample BNs kept (resnet), no BN (densenet).
    assert.equal(11686504, cached('resnet18-imagenet', 'deconv'):nParameters())
    assert.equal(7905448, cached('densenet121-imagenet', 'deconv'):nParameters())
  end)

  it('MLP and linear models', function()
    assert.equal(784 * 128 + 128 + 128 * 128 + 128 + 128 * 10 + 10, models('mlp'):nParameters())
    assert.equal(784 * 128 + 128 * 128 + 128 * 10 + 4 * 128, models('mlp', {norm = 'bn'}):nParameters())
    assert.equal(7850, models('linear'):nParameters())
    assert.equal(7850, models('linear', {norm = 'deconv'}):nParameters())
  end)
end)

describe('forward shapes on 2 x 3 x 32 x 32', function()
  local x
  setup(function() nd.manualSeed(1); x = nd.randn(2, 3, 32, 32) end)
  local names = {'vgg11', 'vgg13', 'vgg16', 'vgg19', 'resnet18', 'resnet34', 'resnet50', 'densenet121'}
  for _, name in ipairs(names) do
    for _, norm in ipairs {'bn', 'none', 'cd', 'deconv'} do
      it(name .. ' ' .. norm, function()
        -- Full-size deconv runs are exercised below (VGG-11 backward, ImageNet ResNet-18); a
        -- small block keeps these fast (the structure does not depend on it).
        local opt = {norm = norm, classes = 10}
        if norm == 'deconv' then opt.block = 16 end
        local y = models(name, opt):forward(x)
        assert.equal('2x10', shapeOf(y))
        assert.is_true(y:eq(y):all(), 'NaN in the output')
      end)
    end
  end

  it('honours classes and the eval path', function()
    local m = models('vgg11', {norm = 'deconv', classes = 100, block = 16})
    m:evaluate()
    assert.equal('2x100', shapeOf(m:forward(x)))
  end)

  it('MLP (all methods) and linear models on 4 x 1 x 28 x 28', function()
    local mx = nd.randn(4, 1, 28, 28)
    for _, norm in ipairs {'none', 'bn', 'cd', 'bn+cd', 'deconv'} do
      assert.equal('4x10', shapeOf(models('mlp', {norm = norm}):forward(mx)), norm)
    end
    for method = 1, 4 do assert.equal('4x10', shapeOf(models('mlp', {method = method}):forward(mx))) end
    assert.equal('4x10', shapeOf(models('linear'):forward(mx)))
    assert.equal('4x10', shapeOf(models('linear', {norm = 'deconv'}):forward(mx)))
  end)
end)

describe('deconvolution-mode structure', function()
  it('VGG-11: first layer frozen with 15 iterations, no BN, blocks as spec 7.1, DeconvLinear head', function()
    local m = cached('vgg11', 'deconv')
    local d = m:findModules('nn.Deconv')
    assert.equal(8, #d)
    assert.equal(0, typeCount(m, 'nn.SpatialBatchNormalization'))
    assert.equal(0, typeCount(m, 'nn.SpatialConvolution'))
    assert.is_true(d[1].freeze)
    assert.equal(15, d[1].iters)
    assert.equal(100, d[1].freezeIter)
    for i = 2, 8 do
      assert.is_false(d[i].freeze)
      assert.equal(5, d[i].iters)
    end
    local blocks = {3, 64, 64, 64, 64, 64, 64, 64}
    for i = 1, 8 do
      assert.equal(blocks[i], d[i].block)
      assert.equal(3, d[i].samplingStride)
      assert.equal(1e-5, d[i].eps)
      assert.truthy(d[i].bias)
    end
    local head = m:findModules('nn.DeconvLinear')
    assert.equal(1, #head)
    assert.equal(512, head[1].block)
    assert.equal(512, head[1].nIn)
    assert.equal(0, typeCount(m, 'nn.Linear'))
  end)

  it('BN baseline: conv(bias) + BN + ReLU and a plain Linear head', function()
    local m = cached('vgg11', 'bn')
    assert.equal(8, typeCount(m, 'nn.SpatialBatchNormalization'))
    assert.equal(0, typeCount(m, 'nn.Deconv'))
    assert.equal(1, typeCount(m, 'nn.Linear'))
    local bn = m:findModules('nn.SpatialBatchNormalization')[1]
    assert.equal(1, bn.weight:min()); assert.equal(1, bn.weight:max())
    assert.equal(0, bn.bias:min()); assert.equal(0, bn.bias:max())
    -- framework default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    local c = m:findModules('nn.SpatialConvolution')[2]
    assert.truthy(c.bias)
    assert.is_true(c.weight:abs():max() <= 1 / math.sqrt(64 * 9) + 1e-7)
  end)

  it('classifier options: blockFc = 0 -> Linear; delinear = false -> ChannelDeconv + Linear', function()
    local m = models('vgg11', {norm = 'deconv', blockFc = 0})
    assert.equal(1, typeCount(m, 'nn.Linear'))
    assert.equal(0, typeCount(m, 'nn.DeconvLinear'))
    assert.equal(0, typeCount(m, 'nn.ChannelDeconv'))
    m = models('vgg11', {norm = 'deconv', delinear = false})
    assert.equal(1, typeCount(m, 'nn.Linear'))
    local cd = m:findModules('nn.ChannelDeconv')
    assert.equal(1, #cd)
    assert.equal(512, cd[1].block)
    m = models('resnet18', {norm = 'deconv', delinear = false, blockFc = 64})
    -- ResNet: the ChannelDeconv sits on the 512 x 4 x 4 map, before the average pool.
    local top = m.modules
    assert.equal('nn.ChannelDeconv', nd.typename(top[#top - 3]))
    assert.equal('nn.SpatialAveragePooling', nd.typename(top[#top - 2]))
    assert.equal('nn.Linear', nd.typename(top[#top]))
  end)

  it('CIFAR ResNet-18: stem not frozen, identity or strided 1x1 Deconv shortcuts without BN', function()
    local m = cached('resnet18', 'deconv')
    assert.equal(0, typeCount(m, 'nn.SpatialBatchNormalization'))
    local stem = m.modules[1]
    assert.equal('nn.Deconv', nd.typename(stem))
    assert.is_false(stem.freeze)
    assert.equal(5, stem.iters)
    assert.equal(3, stem.kW)
    local identities, projections = 0, 0
    for _, ct in ipairs(m:findModules('nn.ConcatTable')) do
      local sc = ct.modules[2]
      if nd.typename(sc) == 'nn.Identity' then
        identities = identities + 1
      else
        projections = projections + 1
        assert.equal(1, #sc.modules)
        local d = sc.modules[1]
        assert.equal('nn.Deconv', nd.typename(d))
        assert.equal(1, d.kW)
        assert.equal(2, d.dW)
      end
    end
    assert.equal(5, identities)
    assert.equal(3, projections)
    assert.equal(8, typeCount(m, 'nn.CAddTable'))
  end)

  it('CIFAR ResNet-50 (BN): bottleneck widths and projection shortcuts with BN', function()
    local m = cached('resnet50', 'bn')
    assert.equal(16, typeCount(m, 'nn.CAddTable'))
    local proj = 0
    for _, ct in ipairs(m:findModules('nn.ConcatTable')) do
      local sc = ct.modules[2]
      if nd.typename(sc) ~= 'nn.Identity' then
        proj = proj + 1
        assert.equal('nn.SpatialBatchNormalization', nd.typename(sc.modules[2]))
        assert.is_nil(sc.modules[1].bias)
      end
    end
    assert.equal(4, proj)
    assert.equal(2048, m.modules[#m.modules].weight:size(2))
    -- the stride sits on the 3x3 conv: first block of stage 2 = 1x1 (s1), 3x3 (s2), 1x1 (s1)
    local branch = m.modules[5].modules[1].modules[1].modules[1] -- stem conv, BN, ReLU, stage 1, stage 2
    local convs = branch:findModules('nn.SpatialConvolution')
    assert.same({1, 3, 1}, {convs[1].kW, convs[2].kW, convs[3].kW})
    assert.same({1, 2, 1}, {convs[1].dW, convs[2].dW, convs[3].dW})
    assert.same({256, 128, 128}, {convs[1].nInputPlane, convs[2].nInputPlane, convs[3].nInputPlane})
    assert.equal(512, convs[3].nOutputPlane)
  end)

  it('ImageNet ResNet-18: frozen 7x7 stem, max-pool, BN kept in downsample shortcuts, kaiming init', function()
    local m = cached('resnet18-imagenet', 'deconv')
    local stem = m.modules[1]
    assert.equal('nn.Deconv', nd.typename(stem))
    assert.equal(7, stem.kW); assert.equal(2, stem.dW); assert.equal(3, stem.padW)
    assert.is_true(stem.freeze); assert.equal(15, stem.iters); assert.equal(3, stem.block)
    assert.equal('nn.SpatialMaxPooling', nd.typename(m.modules[3]))
    -- the only BNs are the three downsample shortcuts: 1x1 stride-2 Deconv + BN
    assert.equal(3, typeCount(m, 'nn.SpatialBatchNormalization'))
    local proj = 0
    for _, ct in ipairs(m:findModules('nn.ConcatTable')) do
      local sc = ct.modules[2]
      if nd.typename(sc) ~= 'nn.Identity' then
        proj = proj + 1
        assert.equal('nn.Deconv', nd.typename(sc.modules[1]))
        assert.equal(1, sc.modules[1].kW); assert.equal(2, sc.modules[1].dW)
        assert.equal('nn.SpatialBatchNormalization', nd.typename(sc.modules[2]))
      end
    end
    assert.equal(3, proj)
    local head = m:findModules('nn.DeconvLinear')
    assert.equal(1, #head); assert.equal(64, head[1].block); assert.equal(1000, head[1].nOut)
    -- kaiming-normal fan_out: std sqrt(2 / (Cout * k * k)) (the default U(+-1/sqrt(fan_in)) has a
    -- much smaller std for the 512 x 512 x 3 x 3 layers).
    local d = m:findModules('nn.Deconv')
    local w = d[#d].weight
    assert.equal(512, w:size(1))
    local std = math.sqrt(w:clone():pow(2):mean())
    local want = math.sqrt(2 / (512 * 9))
    assert.is_true(math.abs(std - want) < 0.05 * want, string.format('std %g, want %g', std, want))
  end)

  it('ImageNet ResNet-18 forward on 1 x 3 x 224 x 224', function()
    local m = cached('resnet18-imagenet', 'deconv')
    assert.equal('1x1000', shapeOf(m:forward(nd.randn(1, 3, 224, 224))))
  end)

  it('DenseNet-121: new features first, widths, transitions and block sizes', function()
    local m = cached('densenet121', 'deconv')
    local cats = m:findModules('nn.Concat')
    assert.equal(58, #cats)
    for _, c in ipairs(cats) do
      assert.equal('nn.Sequential', nd.typename(c.modules[1]))
      assert.equal('nn.Identity', nd.typename(c.modules[2]))
      assert.equal(2, c.dimension)
    end
    assert.equal(0, typeCount(m, 'nn.SpatialBatchNormalization'))
    assert.equal(1 + 58 * 2 + 3, typeCount(m, 'nn.Deconv'))
    -- transitions 256 -> 128, 512 -> 256, 1024 -> 512; head 1024
    -- top level: stem, dense 1, transition 1, dense 2, transition 2, dense 3, transition 3, dense 4,
    -- ReLU, average pool, View, classifier
    local widths = {}
    for _, i in ipairs {3, 5, 7} do
      local t = m.modules[i]
      assert.equal('nn.ReLU', nd.typename(t.modules[1]))
      assert.equal('nn.SpatialAveragePooling', nd.typename(t.modules[3]))
      local d = t.modules[2]
      widths[#widths + 1] = d.nInputPlane .. '->' .. d.nOutputPlane
    end
    assert.same({'256->128', '512->256', '1024->512'}, widths)
    assert.equal(12, #m.modules)
    assert.equal(1024, m:findModules('nn.DeconvLinear')[1].nIn)
    -- block rule (spec 2.1): 96 and 160 input planes -> gcd(64, C) = 32
    local d = m:findModules('nn.Deconv')
    assert.equal(64, d[2].block) -- first 1x1 sees 64 planes
    assert.equal(32, d[4].block) -- second dense layer's 1x1 sees 96 planes
    assert.equal(64, d[6].block) -- third sees 128
    assert.equal(32, d[8].block) -- fourth sees 160
    assert.is_false(d[1].freeze)

    -- numerically: the input comes out behind the 32 new channels
    local cat = cats[1]
    cat:evaluate()
    local x = nd.randn(2, 64, 8, 8)
    local y = cat:forward(x)
    assert.equal('2x96x8x8', shapeOf(y))
    assert.equal(0, (y:narrow(2, 33, 64) - x):abs():max())
  end)

  it('ImageNet VGG-11: frozen first layer, 7x7 adaptive pool, three DeconvLinear (block 64), default init', function()
    local m = models('vgg11-imagenet', {norm = 'deconv'})
    -- torchvision vgg11 (no BN) has 132,863,336 parameters; the deconv model has the same shapes.
    assert.equal(132863336, m:nParameters())
    local d = m:findModules('nn.Deconv')
    assert.equal(8, #d)
    assert.is_true(d[1].freeze); assert.equal(15, d[1].iters)
    assert.is_false(d[2].freeze)
    local pool = m:findModules('nn.SpatialAdaptiveAveragePooling')[1]
    assert.equal(7, pool.oW); assert.equal(7, pool.oH)
    local fc = m:findModules('nn.DeconvLinear')
    assert.equal(3, #fc)
    assert.same({25088, 4096, 4096}, {fc[1].nIn, fc[2].nIn, fc[3].nIn})
    assert.same({4096, 4096, 1000}, {fc[1].nOut, fc[2].nOut, fc[3].nOut})
    for i = 1, 3 do assert.equal(64, fc[i].block) end
    assert.equal(2, typeCount(m, 'nn.Dropout'))
    -- default init: |w| <= 1/sqrt(fan_in)
    assert.is_true(d[8].weight:abs():max() <= 1 / math.sqrt(512 * 9) + 1e-7)
    m = nil
    collectgarbage()
  end)

  it('ImageNet DenseNet-121: frozen 7x7 stem, no BN, Delinear head', function()
    local m = cached('densenet121-imagenet', 'deconv')
    local stem = m.modules[1]
    assert.equal(7, stem.kW); assert.is_true(stem.freeze); assert.equal(15, stem.iters)
    assert.equal(0, typeCount(m, 'nn.SpatialBatchNormalization'))
    assert.equal(1, typeCount(m, 'nn.DeconvLinear'))
  end)

  it('linear model in deconv mode is one 784 x 784 whitening (DeconvLinear, block 784, eps 1e-2)', function()
    local d = models('linear', {norm = 'deconv'}):findModules('nn.DeconvLinear')[1]
    assert.equal(784, d.block); assert.equal(1e-2, d.eps); assert.equal(10, d.nOut)
  end)

  it('MLP cd: ChannelDeconv(32) before every bias-free Linear', function()
    local m = models('mlp', {norm = 'cd'})
    assert.equal(3, typeCount(m, 'nn.ChannelDeconv'))
    for _, l in ipairs(m:findModules('nn.Linear')) do assert.is_nil(l.bias) end
    assert.equal(32, m:findModules('nn.ChannelDeconv')[1].block)
    assert.equal(2, typeCount(m, 'nn.Sigmoid'))
  end)
end)

describe('backward in deconv mode', function()
  it('VGG-11 (deconv) forward + backward on 2 x 3 x 32 x 32', function()
    nd.manualSeed(2)
    local m = cached('vgg11', 'deconv') -- the real configuration (blocks 3/64, frozen first layer)
    local x = nd.randn(2, 3, 32, 32)
    m:zeroGradParameters()
    local y = m:forward(x)
    local gi = m:backward(x, nd.randn(2, 10))
    assert.equal('2x3x32x32', shapeOf(gi))
    assert.is_true(gi:eq(gi):all(), 'NaN in gradInput')
    local d = m:findModules('nn.Deconv')
    assert.is_true(d[1].gradWeight:abs():max() > 0)
    assert.is_true(m:findModules('nn.DeconvLinear')[1].gradWeight:abs():max() > 0)
  end)

  it('small ResNet/DenseNet (deconv) backward through ConcatTable/CAddTable and Concat', function()
    nd.manualSeed(4)
    local x = nd.randn(2, 3, 32, 32)
    for _, m in ipairs {
      require('models.resnet'){depth = 18, norm = 'deconv', block = 16},
      require('models.densenet'){norm = 'deconv', blocks = {1, 1, 1, 1}, growth = 8, block = 16},
    } do
      m:forward(x)
      local gi = m:backward(x, nd.randn(2, 10))
      assert.equal('2x3x32x32', shapeOf(gi))
      assert.is_true(gi:eq(gi):all(), 'NaN in gradInput')
    end
  end)
end)
