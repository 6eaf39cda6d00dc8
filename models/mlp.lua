-- The MNIST multi-layer perceptron of the paper's Figure 4 (docs/reference-spec.md 7.4, the
-- reference's `--arch mlp`).
--
--   local model = require('models.mlp'){norm = 'cd'}
--
-- opt: layers (3: the number of Linear layers, the reference's hidden_layers), hidden (128: the
--      width of the hidden layers), norm, classes (10), inputChannels (1), imageSize (28),
--      cdBlock (32), eps (1e-5: HEAD main.py passes its --eps to ChannelDeconv), iters (5),
--      samplingStride (3; irrelevant here, the input is 2-D so every row is used).
-- norm (the reference's --method; method = 1..4 is accepted too):
--   'none'  (1) Linear layers with bias, Sigmoid between them;
--   'bn'    (2) Linear (no bias) -> BatchNormalization -> Sigmoid for every hidden layer;
--   'cd'    (3) ChannelDeconv(32) before every Linear, the input included (784 = 24 * 32 whitened
--               features + 16 leftover features standardised), Linears without bias;
--               'deconv' is accepted as a synonym (an MLP has no pixel deconvolution);
--   'bn+cd' (4) both: ChannelDeconv(32) -> Linear (no bias) -> BN -> Sigmoid.
-- With 3 layers: 784 -> 128 -> 128 -> 10; no Sigmoid after the last Linear (its output feeds the
-- loss: MSE against 0.5 * one-hot for --loss L2, or cross-entropy). As the reference says for
-- methods 2-4, every Linear is bias-free, the last one included.
local nn = require('nn')
local common = require('models.common')

local allowed = {none = true, bn = true, cd = true, deconv = true, ['bn+cd'] = true}

local methods = {'none', 'bn', 'cd', 'bn+cd'}

return function(opt)
  opt = opt or {}
  if opt.method ~= nil then
    if not methods[opt.method] then error('models.mlp: method must be 1, 2, 3 or 4, got ' .. tostring(opt.method), 2) end
    local copy = {}
    for k, v in pairs(opt) do copy[k] = v end
    copy.norm, copy.method = methods[opt.method], nil
    opt = copy
  end
  local o = common.options(opt, {norm = 'none', inputChannels = 1, imageSize = 28, cdBlock = 32}, allowed)
  if o.norm == 'deconv' then o.norm = 'cd' end
  local layers, hidden = o.layers or 3, o.hidden or 128
  if math.type(layers) ~= 'integer' or layers < 1 then
    error('models.mlp: layers must be a positive integer, got ' .. tostring(layers), 2)
  end
  local useBN = o.norm == 'bn' or o.norm == 'bn+cd'
  local useCD = o.norm == 'cd' or o.norm == 'bn+cd'
  local nIn = o.inputChannels * o.imageSize * o.imageSize

  local model = nn.Sequential()
  model:add(nn.View(-1))
  for i = 1, layers do
    local nOut = (i == layers) and o.classes or hidden
    if useCD then
      model:add(nn.ChannelDeconv(math.min(o.cdBlock, nIn), {eps = o.cdEps or o.eps, iters = o.iters,
                                                           samplingStride = o.samplingStride}))
    end
    model:add(nn.Linear(nIn, nOut, o.norm == 'none'))
    if i < layers then
      if useBN then model:add(nn.BatchNormalization(nOut)) end
      model:add(nn.Sigmoid())
    end
    nIn = nOut
  end
  return model
end
