-- nn.utils: model-level helpers.
local nd = require('nd')

local utils = {}

-- The plain layer equivalent (in evaluation) of a Deconv / DeconvLinear: the running statistics
-- folded into the weights once, so inference costs a plain convolution / matrix product.
local function folded_layer(m)
  local nn = require('nn')
  local name = nd.typename(m)
  local Wf, b = m:folded()
  local plain
  if name == 'nn.Deconv' then
    plain = nn.SpatialConvolution(m.nInputPlane, m.nOutputPlane, m.kW, m.kH, m.dW, m.dH, m.padW, m.padH,
                                  {groups = m.groups, dilation = m.dilation})
  else
    plain = nn.Linear(m.nIn, m.nOut)
  end
  plain:type(m.weight:type())
  plain.weight:copy(Wf)
  plain.bias:copy(b)
  plain:evaluate()
  return plain
end

-- Returns an inference copy of `model` in which every nn.Deconv is an nn.SpatialConvolution and
-- every nn.DeconvLinear an nn.Linear with the running statistics folded in. Its outputs in
-- evaluation mode equal the original's; the original is not modified.
function utils.foldDeconv(model)
  local copy = model:clone()
  copy:evaluate()
  local function fold(m)
    local name = nd.typename(m)
    if name == 'nn.Deconv' or name == 'nn.DeconvLinear' then return folded_layer(m) end
    if m.modules then
      for i, child in ipairs(m.modules) do m.modules[i] = fold(child) end
      m._flat = nil
    end
    return m
  end
  return fold(copy)
end

-- Number of parameters of a module (after sharing: each tensor counted once).
function utils.countParameters(model)
  local params = model:parameters() or {}
  local seen, n = {}, 0
  for _, p in ipairs(params) do
    local key = tostring((nd.core.storageid(p))) .. ':' .. nd.core.offset(p)
    if not seen[key] then seen[key] = true; n = n + p:nElement() end
  end
  return n
end

return utils
