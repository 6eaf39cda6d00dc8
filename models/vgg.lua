-- VGG builders (docs/reference-spec.md 7.1 CIFAR, 7.5 ImageNet).
--
--   local model = require('models.vgg'){depth = 11, norm = 'deconv', classes = 10}
--
-- opt: depth 11|13|16|19 (default 11), norm 'deconv'|'bn'|'none'|'cd' (default 'deconv'),
--      classes (10; 1000 with imagenet), imagenet (false), block (64), samplingStride (3),
--      iters (5), eps (1e-5), blockFc (512 for deconv/cd, 0 = plain Linear for bn/none; 64 on
--      ImageNet), delinear (true), firstIters (15), freezeFirst (true), inputChannels (3),
--      imageSize (32; 224 on ImageNet, any size there thanks to the adaptive pool).
--
-- CIFAR (input N x 3 x 32 x 32): per cfg entry a 3x3 pad-1 conv followed by ReLU ('deconv':
-- nn.Deconv with bias; 'bn': conv with bias + BN + ReLU), 'M' = 2x2 max-pool; then flatten to 512
-- and the classifier 512 -> classes. The reference's no-op AvgPool(1) after the features is
-- left out. In deconv mode the first conv (3 -> 64) is frozen (freeze = true, freezeIter 100)
-- and runs 15 Newton-Schulz iterations; all other layers use the defaults.
--
-- ImageNet (imagenet = true, only depth 11 is described by the reference, but any depth
-- builds): the same features (first conv frozen with 15 iterations in deconv mode), a 7x7
-- adaptive average pool, flatten (25088), then classifier lin(25088, 4096), ReLU, Dropout(0.5),
-- lin(4096, 4096), ReLU, Dropout(0.5), lin(4096, classes), where lin follows blockFc/delinear
-- (DeconvLinear with block 64 by default in deconv mode). Initialisation (spec 7.6): the deconv
-- model keeps the framework defaults (the reference switched its init off by accident); the
-- 'bn'/'none' baselines get torchvision's VGG init: conv weights kaiming-normal fan_out (ReLU),
-- conv biases 0, BN 1/0, Linear weights N(0, 0.01), Linear biases 0.
local nd = require('nd')
local nn = require('nn')
local common = require('models.common')

local cfgs = {
  [11] = {64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'},
  [13] = {64, 64, 'M', 128, 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'},
  [16] = {64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M'},
  [19] = {64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M', 512, 512, 512, 512, 'M',
          512, 512, 512, 512, 'M'},
}

local function features(o, cfg)
  local seq = nn.Sequential()
  local nIn = o.inputChannels
  local first = true
  for _, v in ipairs(cfg) do
    if v == 'M' then
      seq:add(nn.SpatialMaxPooling(2, 2, 2, 2))
    else
      -- VGG convs keep their bias in every mode (the reference's baseline is conv(bias)+BN).
      seq:add(common.firstConv(o, nIn, v, 3, 1, 1, true, first))
      common.bn(o, seq, v)
      seq:add(nn.ReLU())
      nIn = v
      first = false
    end
  end
  return seq, nIn
end

-- torchvision's VGG initialisation (baselines only).
local function torchvisionInit(model)
  local init = nn.init
  common.each(model, function(m)
    local t = nd.typename(m)
    if t == 'nn.SpatialConvolution' then
      init.kaiming_normal(m.weight, {mode = 'fan_out', nonlinearity = 'relu'})
      if m.bias then m.bias:zero() end
    elseif t == 'nn.Linear' then
      m.weight:normal(0, 0.01)
      if m.bias then m.bias:zero() end
    end
  end)
end

return function(opt)
  local o, imagenet = common.imagenetOptions(opt)
  local depth = o.depth or 11
  local cfg = cfgs[depth]
  if not cfg then error('models.vgg: depth must be 11, 13, 16 or 19, got ' .. tostring(depth), 2) end

  local model = nn.Sequential()
  local feat, nC = features(o, cfg)
  model:add(feat)
  if imagenet then
    model:add(nn.SpatialAdaptiveAveragePooling(7, 7))
    model:add(nn.View(-1))
    local head = nn.Sequential()
    common.linear(o, head, nC * 49, 4096)
    head:add(nn.ReLU())
    head:add(nn.Dropout(0.5))
    common.linear(o, head, 4096, 4096)
    head:add(nn.ReLU())
    head:add(nn.Dropout(0.5))
    common.linear(o, head, 4096, o.classes)
    model:add(head)
    if o.norm == 'bn' or o.norm == 'none' then torchvisionInit(model) end
  else
    local positions = common.cifarPositions(o)
    model:add(nn.View(-1))
    common.linear(o, model, nC * positions, o.classes)
  end
  return model
end
