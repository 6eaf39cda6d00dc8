-- Helpers shared by the nn modules.
local nd = require('nd')

local util = {}

-- Sums gradients that may be tensors or (nested) tables of tensors. `first` starts a new sum
-- (a copy, so the child's buffer is not modified later).
function util.accumulate(acc, g, first)
  if nd.isTensor(g) then
    if first or acc == nil then return g:clone() end
    return acc:add(g)
  end
  acc = (first or acc == nil) and {} or acc
  for k, v in pairs(g) do acc[k] = util.accumulate(acc[k], v, first or acc[k] == nil) end
  return acc
end

-- The device of tensor t as core.empty/zeros take it: 'cpu' or 'cuda:N'. Buffers a module creates
-- beside its input or weights go there, so the module runs on either device.
function util.device_of(t)
  local d, i = nd.core.device(t)
  if d == 'cuda' then return 'cuda:' .. (i or 0) end
  return 'cpu'
end

-- A new uninitialised (or zeroed) tensor of t's dtype and device with the given size table
-- (default: t's size).
function util.new_like(t, size, zero)
  local make = zero and nd.core.zeros or nd.core.empty
  return make(nd.core.dtype(t), size or nd.core.size(t), util.device_of(t))
end

-- "nn.Linear: expected ... (input 2x3)" style message with the module name.
function util.fail(module, fmt, ...)
  error(string.format('%s: ' .. fmt, nd.typename(module), ...), 0)
end

-- Checks a tensor argument's dim count.
function util.check_dims(module, input, allowed, what)
  if not nd.isTensor(input) then
    util.fail(module, 'expected a tensor %s, got %s', what or 'input', nd.typename(input) or type(input))
  end
  local d = input:dim()
  for _, a in ipairs(allowed) do if a == d then return d end end
  util.fail(module, 'expected a %s-d %s, got %s', table.concat(allowed, ' or '), what or 'input', nd.shape(input))
end

-- Checks a convolution input (C x H x W or N x C x H x W) against the module's planes and
-- (dilated, padded) kernel; p = module:params(). Returns the input's dim count.
function util.check_conv_input(module, input, p)
  local d = util.check_dims(module, input, {3, 4})
  local c = input:size(d - 2)
  if c ~= module.nInputPlane then
    util.fail(module, 'expected input of %d planes, got %d (input %s)', module.nInputPlane, c, nd.shape(input))
  end
  local h, w = input:size(d - 1), input:size(d)
  if h + 2 * p.padH < p.dilH * (p.kH - 1) + 1 or w + 2 * p.padW < p.dilW * (p.kW - 1) + 1 then
    util.fail(module, 'input %s is smaller than the %dx%d kernel', nd.shape(input), p.kH, p.kW)
  end
  return d
end

-- accGradParameters of the deconvolution layers: their weight and bias gradients come out of
-- the same chain as gradInput (updateGradInput keeps them unscaled in _GW, _Gb0).
function util.acc_folded_grads(module, input, gradOutput, scale)
  if not module._GW then module:updateGradInput(input, gradOutput) end
  module.gradWeight:add(scale or 1, module._GW)
  if module.bias then module.gradBias:add(scale or 1, module._Gb0) end
  module._GW, module._Gb0 = nil, nil
end

return util
