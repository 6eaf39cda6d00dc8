-- ResNet builders (docs/reference-spec.md 7.2 CIFAR, 7.5 ImageNet, 7.6 init).
--
--   local model = require('models.resnet'){depth = 18, norm = 'deconv', classes = 10}
--
-- opt: depth 18|34 (BasicBlock [2,2,2,2] / [3,4,6,3]) or 50 (Bottleneck [3,4,6,3], expansion 4),
--      norm 'deconv'|'bn'|'none'|'cd', classes (10; 1000 with imagenet), imagenet (false),
--      block, samplingStride, iters, eps, blockFc (512 deconv/cd, 0 bn/none; 64 on ImageNet),
--      delinear (true), firstIters (15), freezeFirst (true), inputChannels (3), imageSize.
--
-- A residual block is nn.Sequential{ nn.ConcatTable{ residual branch, shortcut }, nn.CAddTable,
-- nn.ReLU }; the shortcut is nn.Identity or a 1x1 conv with the stride.
--
-- CIFAR: stem 3x3 conv 3 -> 64 stride 1 (deconv: default nn.Deconv, NOT frozen; bn: conv without
-- bias + BN), ReLU, no max-pool; stages of 64/128/256/512 planes with strides 1/2/2/2 (the
-- bottleneck's stride sits on its 3x3 conv); head: [ChannelDeconv(blockFc) when blockFc > 0 and
-- not delinear], 4x4 average pool, flatten, DeconvLinear/Linear(512 * expansion, classes).
--   deconv block: relu(c1(x)) -> c2 [-> relu -> c3] ; + shortcut (identity or 1x1 Deconv with the
--                 stride, no BN) ; relu.
--   bn block:     conv(no bias)+BN+ReLU ... conv+BN ; + shortcut (identity or 1x1 conv(no bias) +
--                 BN) ; relu.
-- Init: framework defaults (U(+-1/sqrt(fan_in)) for weights and biases; BN 1/0).
--
-- ImageNet (imagenet = true; torchvision ResNet, the reference's resnet18d): stem 7x7 stride-2
-- pad-3 conv 3 -> 64 (deconv: frozen, 15 iterations; the effective sampling stride is 6), ReLU,
-- 3x3 stride-2 pad-1 max-pool, the same stages, adaptive 1x1 average pool, flatten,
-- DeconvLinear(block 64)/Linear(512 * expansion, classes). In deconv mode the downsample
-- shortcut KEEPS a BN (1x1 Deconv + BN) while all other BNs are removed. Init: conv and Deconv
-- weights kaiming-normal fan_out (ReLU gain); Deconv biases and the classifier keep the
-- defaults; BN 1/0.
local nd = require('nd')
local nn = require('nn')
local common = require('models.common')

local layouts = {
  [18] = {kind = 'basic', counts = {2, 2, 2, 2}},
  [34] = {kind = 'basic', counts = {3, 4, 6, 3}},
  [50] = {kind = 'bottleneck', counts = {3, 4, 6, 3}},
}
local expansion = {basic = 1, bottleneck = 4}

-- conv [+ BN] [+ ReLU] appended to seq. Convs feeding a BN have no bias in 'bn' mode.
local function convUnit(o, seq, nIn, nOut, k, stride, pad, relu)
  seq:add(common.conv(o, nIn, nOut, k, stride, pad, false))
  common.bn(o, seq, nOut)
  if relu then seq:add(nn.ReLU()) end
  return seq
end

local function shortcut(o, nIn, nOut, stride)
  if stride == 1 and nIn == nOut then return nn.Identity() end
  local s = nn.Sequential()
  s:add(common.conv(o, nIn, nOut, 1, stride, 0, false))
  -- bn mode: conv + BN. The ImageNet resnet18d keeps this BN even in deconv mode (spec 7.5).
  if o.norm == 'bn' or (o.imagenet and o.norm == 'deconv') then s:add(nn.SpatialBatchNormalization(nOut)) end
  return s
end

local function residual(o, branch, nIn, nOut, stride)
  local block = nn.Sequential()
  block:add(nn.ConcatTable():add(branch):add(shortcut(o, nIn, nOut, stride)))
  block:add(nn.CAddTable())
  block:add(nn.ReLU())
  return block
end

local function basicBlock(o, nIn, planes, stride)
  local b = nn.Sequential()
  convUnit(o, b, nIn, planes, 3, stride, 1, true)
  convUnit(o, b, planes, planes, 3, 1, 1, false)
  return residual(o, b, nIn, planes, stride)
end

local function bottleneck(o, nIn, planes, stride)
  local b = nn.Sequential()
  convUnit(o, b, nIn, planes, 1, 1, 0, true)
  convUnit(o, b, planes, planes, 3, stride, 1, true)
  convUnit(o, b, planes, planes * 4, 1, 1, 0, false)
  return residual(o, b, nIn, planes * 4, stride)
end

local function kaimingInit(model)
  local init = nn.init
  common.each(model, function(m)
    local t = nd.typename(m)
    if t == 'nn.SpatialConvolution' or t == 'nn.Deconv' then
      init.kaiming_normal(m.weight, {mode = 'fan_out', nonlinearity = 'relu'})
    end
  end)
end

return function(opt)
  local o, imagenet = common.imagenetOptions(opt)
  o.imagenet = imagenet
  local depth = o.depth or 18
  local layout = layouts[depth]
  if not layout then error('models.resnet: depth must be 18, 34 or 50, got ' .. tostring(depth), 2) end
  local makeBlock = layout.kind == 'basic' and basicBlock or bottleneck
  local exp = expansion[layout.kind]

  local model = nn.Sequential()
  if imagenet then
    common.imagenetStem(o, model, 64)
  else
    -- The CIFAR stem is not frozen (spec 7.2, 11.6).
    convUnit(o, model, o.inputChannels, 64, 3, 1, 1, true)
  end

  local nIn = 64
  for stage, count in ipairs(layout.counts) do
    local planes = 64 << (stage - 1)
    local layer = nn.Sequential()
    for i = 1, count do
      local stride = (i == 1 and stage > 1) and 2 or 1
      layer:add(makeBlock(o, nIn, planes, stride))
      nIn = planes * exp
    end
    model:add(layer)
  end

  local cdDone = common.headChannelDeconv(o, model, nIn)
  if imagenet then
    model:add(nn.SpatialAdaptiveAveragePooling(1, 1))
  else
    local positions = common.cifarPositions(o)
    model:add(nn.SpatialAveragePooling(4, 4, 4, 4))
    nIn = nIn * positions
  end
  model:add(nn.View(-1))
  common.linear(o, model, nIn, o.classes, not cdDone)
  if imagenet then kaimingInit(model) end
  return model
end
