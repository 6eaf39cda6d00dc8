-- Shared pieces of the model builders (docs/reference-spec.md section 7): option defaults and
-- the layer factories that turn one "conv" or "classifier" of the reference into the modules of
-- the requested normalisation.
--
-- norm = 'deconv' : every conv is an nn.Deconv (bias on) and every BN is removed (spec 7, the
--                   reference's --deconv True); no extra normalisation layer is inserted.
--        'bn'     : the BN baselines (conv [+bias where the reference has one] + BN + ReLU).
--        'none'   : plain convs with bias, no normalisation.
--        'cd'     : the 2019 channel-only column (spec 6, mode 3): nn.ChannelDeconv(min(cdBlock,
--                   Cin)) in front of every plain conv (bias on), no BN.
-- Classifier (spec 7, 5): blockFc > 0 and delinear -> nn.DeconvLinear(nIn, classes, {block =
-- blockFc}); blockFc > 0 and not delinear -> nn.ChannelDeconv(blockFc) then nn.Linear;
-- blockFc == 0 -> plain nn.Linear (the reference's --block-fc 0: NO ChannelDeconv).
local nn = require('nn')

local common = {}

common.norms = {deconv = true, bn = true, none = true, cd = true}

-- Copies opt over the defaults and checks the norm. defaults may override the generic ones.
-- level: the error level (default 3, the builder's caller).
function common.options(opt, defaults, allowed, level)
  opt = opt or {}
  level = level or 3
  if type(opt) ~= 'table' then error('models: expected an options table, got ' .. type(opt), level) end
  local o = {
    norm = 'deconv', classes = 10, block = 64, samplingStride = 3, iters = 5, eps = 1e-5,
    delinear = true, inputChannels = 3, imageSize = 32, cdBlock = 16, firstIters = 15,
    freezeFirst = true, freezeIter = 100,
  }
  for k, v in pairs(defaults or {}) do o[k] = v end
  for k, v in pairs(opt) do o[k] = v end
  allowed = allowed or common.norms
  if not allowed[o.norm] then
    local names = {}
    for k in pairs(allowed) do names[#names + 1] = "'" .. k .. "'" end
    table.sort(names)
    error(string.format("models: unknown norm '%s' (expected one of %s)", tostring(o.norm),
      table.concat(names, ', ')), level)
  end
  -- The head: the reference's paper commands use --block-fc 512 for deconvolution runs and
  -- --block-fc 0 (a plain Linear) for the BN baselines.
  if o.blockFc == nil then
    if o.norm == 'deconv' or o.norm == 'cd' then o.blockFc = o.defaultBlockFc or 512 else o.blockFc = 0 end
  end
  if math.type(o.classes) ~= 'integer' or o.classes < 1 then
    error('models: classes must be a positive integer, got ' .. tostring(o.classes), level)
  end
  return o
end

-- The options of a builder with an ImageNet variant (opt.imagenet: 1000 classes at 224x224,
-- blockFc 64 by default), and whether it is that variant.
function common.imagenetOptions(opt)
  opt = opt or {}
  local imagenet = opt.imagenet and true or false
  local defaults = imagenet and {classes = 1000, imageSize = 224, defaultBlockFc = 64} or nil
  return common.options(opt, defaults, nil, 4), imagenet
end

-- eps of the ChannelDeconv layers: cdEps when given; else 1e-2 in 'cd' mode (the 2019 code's
-- default) and opt.eps otherwise (HEAD main.py passes its --eps, 1e-5, to ChannelDeconv).
function common.cdEps(o)
  if o.cdEps then return o.cdEps end
  if o.norm == 'cd' then return 1e-2 end
  return o.eps
end

-- The Deconv option table for one layer (extra overrides: freeze, iters, ...).
function common.deconvOpt(o, extra)
  local d = {block = o.block, samplingStride = o.samplingStride, iters = o.iters, eps = o.eps,
             freeze = false, freezeIter = o.freezeIter, bias = true}
  for k, v in pairs(extra or {}) do d[k] = v end
  return d
end

-- One convolution of the reference, without its BN/ReLU. bias applies to the non-deconv
-- norms ('deconv' always has a bias: the reference's FastDeconv needs one, spec 11.9; 'none'
-- and 'cd' have no BN shift, so they keep a bias too). first = the network's first layer
-- (freeze + firstIters in deconv mode when the reference freezes it).
function common.conv(o, nIn, nOut, k, stride, pad, bias, extra)
  stride, pad = stride or 1, pad or 0
  if o.norm == 'deconv' then
    return nn.Deconv(nIn, nOut, k, k, stride, stride, pad, pad, common.deconvOpt(o, extra))
  elseif o.norm == 'cd' then
    local s = nn.Sequential()
    s:add(nn.ChannelDeconv(math.min(o.cdBlock, nIn), {eps = common.cdEps(o), iters = o.iters,
                                                     samplingStride = o.samplingStride}))
    s:add(nn.SpatialConvolution(nIn, nOut, k, k, stride, stride, pad, pad))
    return s
  elseif o.norm == 'bn' then
    return nn.SpatialConvolution(nIn, nOut, k, k, stride, stride, pad, pad, {bias = bias ~= false})
  else
    return nn.SpatialConvolution(nIn, nOut, k, k, stride, stride, pad, pad)
  end
end

-- The first conv of a network: frozen with firstIters Newton-Schulz steps in deconv mode where
-- the reference does so (freeze = true), default otherwise.
function common.firstConv(o, nIn, nOut, k, stride, pad, bias, freeze)
  if freeze and o.freezeFirst then
    return common.conv(o, nIn, nOut, k, stride, pad, bias, {freeze = true, iters = o.firstIters})
  end
  return common.conv(o, nIn, nOut, k, stride, pad, bias)
end

-- Adds a spatial BN to seq in 'bn' mode only.
function common.bn(o, seq, n)
  if o.norm == 'bn' then seq:add(nn.SpatialBatchNormalization(n)) end
  return seq
end

-- Adds the ImageNet stem to seq: the first conv (7x7/2 to nOut channels, see firstConv), BN,
-- ReLU, 3x3/2 max pooling.
function common.imagenetStem(o, seq, nOut)
  seq:add(common.firstConv(o, o.inputChannels, nOut, 7, 2, 3, false, true))
  common.bn(o, seq, nOut)
  seq:add(nn.ReLU())
  seq:add(nn.SpatialMaxPooling(3, 3, 2, 2, 1, 1))
  return seq
end

-- Adds the classifier (nIn features -> nOut) to seq following blockFc / delinear.
-- cdBefore = false skips the ChannelDeconv of the not-delinear path (when the builder already
-- placed it on the feature map, as the CIFAR ResNet/DenseNet heads do).
function common.linear(o, seq, nIn, nOut, cdBefore)
  local bfc = o.blockFc
  if bfc and bfc > 0 then
    if o.delinear and o.norm ~= 'cd' then
      seq:add(nn.DeconvLinear(nIn, nOut, {block = bfc, iters = o.iters, eps = o.eps}))
      return seq
    end
    if cdBefore ~= false then
      seq:add(nn.ChannelDeconv(math.min(bfc, nIn), {eps = common.cdEps(o), iters = o.iters,
                                                    samplingStride = o.samplingStride}))
    end
  end
  seq:add(nn.Linear(nIn, nOut))
  return seq
end

-- The ChannelDeconv(blockFc) placed on the final feature map (nC channels) of ResNet/DenseNet when
-- the head is not a DeconvLinear but blockFc > 0 (spec 7.2, 7.3); nothing otherwise.
function common.headChannelDeconv(o, seq, nC)
  local bfc = o.blockFc
  if bfc and bfc > 0 and (not o.delinear or o.norm == 'cd') then
    seq:add(nn.ChannelDeconv(math.min(bfc, nC), {eps = common.cdEps(o), iters = o.iters,
                                                 samplingStride = o.samplingStride}))
    return true
  end
  return false
end

-- Final spatial size factor of the CIFAR models (32 -> 1 after the /32 reduction).
function common.cifarPositions(o)
  local s = o.imageSize
  if math.type(s) ~= 'integer' or s < 32 or s % 32 ~= 0 then
    error('models: imageSize must be a positive multiple of 32 for the CIFAR models, got ' .. tostring(s), 3)
  end
  return (s // 32) * (s // 32)
end

-- Walks every module (depth first) and calls fn on each.
function common.each(model, fn)
  for _, m in ipairs(model:listModules()) do fn(m) end
end

return common
