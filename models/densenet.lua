-- DenseNet builders (docs/reference-spec.md 7.3 CIFAR, 7.5 ImageNet, 7.6 init).
--
--   local model = require('models.densenet'){norm = 'deconv', classes = 10}
--
-- opt: norm 'deconv'|'bn'|'none'|'cd', classes (10; 1000 with imagenet), imagenet (false),
--      growth (32), blocks ({6, 12, 24, 16} = DenseNet-121), reduction (0.5), bnSize (4: the
--      bottleneck width is bnSize * growth = 128), newFirst (true on CIFAR, false on ImageNet),
--      block, samplingStride, iters, eps, blockFc (512 deconv/cd, 0 bn/none; 64 on ImageNet),
--      delinear (true), firstIters (15), freezeFirst (true), inputChannels (3), imageSize.
--
-- Dense layer: nn.Concat(2){ bottleneck branch, nn.Identity } -- the NEW features come first on
-- CIFAR (spec 7.3: the order decides which channels share a strided deconvolution block).
--   deconv: ReLU -> 1x1 Deconv (C -> 128) -> ReLU -> 3x3 Deconv (128 -> 32)
--   bn:     BN -> ReLU -> 1x1 conv (no bias) -> BN -> ReLU -> 3x3 conv (no bias)
-- Transition: [BN] -> ReLU -> 1x1 conv (C -> floor(C * reduction)) -> 2x2 average pool.
-- CIFAR: stem 3x3 conv 3 -> 2 * growth (not frozen, no BN/ReLU after it: the first dense layer
-- starts with them); widths 64 -> 256 -> 128 -> 512 -> 256 -> 1024 -> 512 -> 1024; head [BN] ->
-- ReLU -> [ChannelDeconv(blockFc) when blockFc > 0 and not delinear] -> 4x4 average pool ->
-- flatten -> DeconvLinear/Linear(1024, classes). Init: framework defaults.
-- ImageNet (torchvision densenet121, the reference's densenet121d): stem 7x7 stride-2 pad-3
-- conv (deconv: frozen, 15 iterations), [BN], ReLU, 3x3 stride-2 pad-1 max-pool; the same dense
-- blocks and transitions; head [BN], ReLU, adaptive 1x1 average pool, DeconvLinear(block
-- 64)/Linear. The ImageNet dense layer concatenates torchvision's way (input first) unless
-- newFirst = true: the reference describes no change there (see the report). Init: the
-- reference's loop touches only true convolutions (kaiming-normal, fan_in) and nn.Linear biases
-- (0); so the deconv model keeps the framework defaults.
local nd = require('nd')
local nn = require('nn')
local common = require('models.common')

-- [BN] -> ReLU -> conv appended to seq (pre-activation unit; convs have no bias in bn mode).
local function unit(o, seq, nIn, nOut, k, pad)
  common.bn(o, seq, nIn)
  seq:add(nn.ReLU())
  seq:add(common.conv(o, nIn, nOut, k, 1, pad, false))
  return seq
end

local function denseLayer(o, nIn)
  local branch = nn.Sequential()
  unit(o, branch, nIn, o.bnSize * o.growth, 1, 0)
  unit(o, branch, o.bnSize * o.growth, o.growth, 3, 1)
  local cat = nn.Concat(2)
  if o.newFirst then cat:add(branch):add(nn.Identity()) else cat:add(nn.Identity()):add(branch) end
  return cat
end

local function transition(o, nIn, nOut)
  local t = nn.Sequential()
  unit(o, t, nIn, nOut, 1, 0)
  t:add(nn.SpatialAveragePooling(2, 2, 2, 2))
  return t
end

local function torchvisionInit(model)
  local init = nn.init
  common.each(model, function(m)
    local t = nd.typename(m)
    if t == 'nn.SpatialConvolution' then
      init.kaiming_normal(m.weight, {mode = 'fan_in', nonlinearity = 'relu'})
    elseif t == 'nn.Linear' and m.bias then
      m.bias:zero()
    end
  end)
end

return function(opt)
  local o, imagenet = common.imagenetOptions(opt)
  o.growth = o.growth or 32
  o.blocks = o.blocks or {6, 12, 24, 16}
  o.reduction = o.reduction or 0.5
  o.bnSize = o.bnSize or 4
  if o.newFirst == nil then o.newFirst = not imagenet end

  local model = nn.Sequential()
  local nC = 2 * o.growth
  if imagenet then
    common.imagenetStem(o, model, nC)
  else
    model:add(common.conv(o, o.inputChannels, nC, 3, 1, 1, false))
  end

  for i, n in ipairs(o.blocks) do
    local dense = nn.Sequential()
    for _ = 1, n do
      dense:add(denseLayer(o, nC))
      nC = nC + o.growth
    end
    model:add(dense)
    if i < #o.blocks then
      local nOut = math.floor(nC * o.reduction)
      model:add(transition(o, nC, nOut))
      nC = nOut
    end
  end

  common.bn(o, model, nC)
  model:add(nn.ReLU())
  local cdDone = common.headChannelDeconv(o, model, nC)
  local nFeat = nC
  if imagenet then
    model:add(nn.SpatialAdaptiveAveragePooling(1, 1))
  else
    model:add(nn.SpatialAveragePooling(4, 4, 4, 4))
    nFeat = nC * common.cifarPositions(o)
  end
  model:add(nn.View(-1))
  common.linear(o, model, nFeat, o.classes, not cdDone)
  if imagenet then torchvisionInit(model) end
  return model
end
