-- The Fashion-MNIST linear / logistic-regression model of the paper's Figure 4 (docs/reference-
-- spec.md 7.4, the reference's `--arch simple_v1`: one conv whose kernel is the whole image, i.e.
-- one 784 -> 10 linear map).
--
--   local model = require('models.linear'){norm = 'deconv'}
--
-- opt: norm 'none' (method 1: nn.Linear with bias) | 'bn' (method 2: batch norm of the 784 inputs,
--      then nn.Linear without bias) | 'deconv' (method 3), classes (10),
--      inputChannels (1), imageSize (28), eps (1e-2 here), iters (5).
-- 'deconv': the reference ran method 3 with the 2019 explicit DeConv2d: one block holding all
-- 784 = 28 * 28 * 1 patch features (B = min(16, Cin) = 1 channel, F = k*k*B = 784), centred,
-- covariance + 1e-2 I, 5 Newton-Schulz steps, output = W D (x - mu) + b. That is exactly an
-- nn.DeconvLinear with block = 784 (one 784 x 784 covariance, contiguous block = the whole image)
-- and eps = 1e-2, which is what is built. nn.ChannelDeconv(784) would NOT match: it whitens with
-- the uncentred second moment (the HEAD quirk of spec 4.5). The only difference from the 2019
-- layer is the running-buffer start (identity + EMA instead of a first-batch copy), which only
-- affects evaluation during the first steps.
local nn = require('nn')
local common = require('models.common')

return function(opt)
  local o = common.options(opt, {norm = 'none', inputChannels = 1, imageSize = 28, eps = 1e-2},
                           {none = true, bn = true, deconv = true})
  local nIn = o.inputChannels * o.imageSize * o.imageSize
  local model = nn.Sequential()
  model:add(nn.View(-1))
  if o.norm == 'deconv' then
    model:add(nn.DeconvLinear(nIn, o.classes, {block = nIn, eps = o.eps, iters = o.iters}))
  elseif o.norm == 'bn' then
    model:add(nn.BatchNormalization(nIn)):add(nn.Linear(nIn, o.classes, false))
  else
    model:add(nn.Linear(nIn, o.classes))
  end
  return model
end
