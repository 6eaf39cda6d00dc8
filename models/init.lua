-- Model registry: `require('models')(name, opt)` builds a network by the reference's name.
--
--   local models = require('models')
--   local net = models('resnet18', {norm = 'deconv', classes = 100})
--   print(table.concat(models.list(), ' '))
--
-- CIFAR: vgg11 vgg13 vgg16 vgg19 resnet18 resnet34 resnet50 densenet121; MNIST: mlp;
-- Fashion-MNIST: linear; ImageNet: vgg11-imagenet resnet18-imagenet densenet121-imagenet (and
-- the other depths, e.g. resnet50-imagenet), also under the reference's names vgg11d, resnet18d,
-- densenet121d. opt is passed to the builder (see models/vgg.lua, resnet.lua, densenet.lua,
-- mlp.lua, linear.lua); the name fixes depth and imagenet.
local registry = {}
local order = {}

local function register(name, file, fixed)
  registry[name] = {file = file, fixed = fixed or {}}
  order[#order + 1] = name
end

for _, d in ipairs {11, 13, 16, 19} do register('vgg' .. d, 'models.vgg', {depth = d}) end
for _, d in ipairs {18, 34, 50} do register('resnet' .. d, 'models.resnet', {depth = d}) end
register('densenet121', 'models.densenet', {})
register('mlp', 'models.mlp', {})
register('linear', 'models.linear', {})
for _, d in ipairs {11, 13, 16, 19} do register('vgg' .. d .. '-imagenet', 'models.vgg', {depth = d, imagenet = true}) end
for _, d in ipairs {18, 34, 50} do register('resnet' .. d .. '-imagenet', 'models.resnet', {depth = d, imagenet = true}) end
register('densenet121-imagenet', 'models.densenet', {imagenet = true})
-- The reference's main_imagenet.py names.
register('vgg11d', 'models.vgg', {depth = 11, imagenet = true})
register('resnet18d', 'models.resnet', {depth = 18, imagenet = true})
register('densenet121d', 'models.densenet', {imagenet = true})

local models = {}

-- The known model names, in registration order.
function models.list()
  local copy = {}
  for i, n in ipairs(order) do copy[i] = n end
  return copy
end

-- The module that first sees the network's input (descending into Sequential containers only:
-- a branching container must get every branch's gradInput).
local function first_layer(m)
  local nd = require('nd')
  while nd.typename(m) == 'nn.Sequential' and m.modules[1] do m = m.modules[1] end
  return m
end

-- Builds the model `name` with options opt (a table; the name's depth/imagenet win).
-- opt.inputGrad = false: the first layer skips its input gradient (training on data: backward
-- then returns an empty gradInput, and a Deconv first layer skips its statistics backward).
function models.build(name, opt)
  local entry = registry[name]
  if not entry then
    error(string.format("models: unknown model '%s' (known: %s)", tostring(name), table.concat(order, ', ')), 2)
  end
  local o = {}
  for k, v in pairs(opt or {}) do o[k] = v end
  for k, v in pairs(entry.fixed) do o[k] = v end
  local inputGrad = o.inputGrad
  o.inputGrad = nil
  local model = require(entry.file)(o)
  if inputGrad == false then first_layer(model):noGradInput() end
  return model
end

return setmetatable(models, {__call = function(_, name, opt) return models.build(name, opt) end})
