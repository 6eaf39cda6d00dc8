-- The convolution calls shared by nn.SpatialConvolution and nn.Deconv (folded weights).
-- p = {kW, kH, dW, dH, padW, padH, dilW, dilH, groups}.
local nd = require('nd')
local util = require('nn.util')

local conv = {}

-- out (N,Cout,OH,OW) = W * x + b; b may be nil.
function conv.forward(x, W, b, p, out)
  return nd.core.conv2d_forward(out, x, W, b or false, p.kW, p.kH, p.dW, p.dH, p.padW, p.padH,
                                p.dilW or 1, p.dilH or 1, p.groups or 1)
end

-- Fresh, unscaled gradients: gx (or nil), GW and Gb (or nil) for the loss gradient go.
function conv.backward(x, go, W, p, wantInput, wantParams)
  local gi_out = nil -- nil: a new gradInput; false: skip it
  if not wantInput then gi_out = false end
  local GW, Gb
  if wantParams then
    GW = util.new_like(W, nil, true) -- on W's device
    Gb = util.new_like(W, {nd.core.size(W, 1)}, true)
  end
  local gx = nd.core.conv2d_backward(gi_out, GW or false, Gb or false, x, go, W, 1,
                                     p.kW, p.kH, p.dW, p.dH, p.padW, p.padH, p.dilW or 1, p.dilH or 1, p.groups or 1)
  return gx, GW, Gb
end

return conv
