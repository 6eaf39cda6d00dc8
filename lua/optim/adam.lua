-- optim.adam(feval, x, config, state) -> x, {f}: Adam (Kingma & Ba) with PyTorch's arithmetic:
--
--   g = df/dx + weightDecay * x              (coupled L2, added into df/dx in place)
--   m = beta1 * m + (1 - beta1) * g,   v = beta2 * v + (1 - beta2) * g^2
--   x = x - lr_t / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + epsilon)
--
-- config: learningRate (1e-3), learningRateDecay (0: off; lr_t = lr / (1 + steps before * decay)),
--   beta1 (0.9), beta2 (0.999) (or betas = {beta1, beta2}), epsilon (1e-8), weightDecay (0).
-- state: t (steps taken), m and v (the moment estimates). The denominator is scratch space
-- kept outside the state, so checkpoints hold only m and v.
local nd = require('nd')

local scratch = setmetatable({}, {__mode = 'k'})   -- state -> denominator buffer

local function adam(feval, x, config, state)
  config = config or {}
  state = state or config
  local lr = config.learningRate or 1e-3
  local lrd = config.learningRateDecay or 0
  local betas = config.betas or {}
  local b1 = config.beta1 or betas[1] or 0.9
  local b2 = config.beta2 or betas[2] or 0.999
  local eps = config.epsilon or 1e-8
  local wd = config.weightDecay or 0

  local fx, dfdx = feval(x)
  if not nd.isTensor(dfdx) or dfdx:nElement() ~= x:nElement() then
    error('optim.adam: feval must return f(x) and df/dx (a tensor with as many elements as x)', 2)
  end
  if wd ~= 0 then dfdx:add(wd, x) end

  state.t = state.t or 0
  state.m = state.m or dfdx:clone():zero()
  state.v = state.v or dfdx:clone():zero()
  if state.m:nElement() ~= dfdx:nElement() then
    error(string.format('optim.adam: the state has %d elements but df/dx has %d (state of other parameters?)',
      state.m:nElement(), dfdx:nElement()), 2)
  end
  local denom = scratch[state]
  if not denom or denom:nElement() ~= dfdx:nElement() or denom:type() ~= dfdx:type() then
    denom = dfdx:clone()
    scratch[state] = denom
  end

  local clr = lr / (1 + state.t * lrd)
  state.t = state.t + 1
  state.m:mul(b1):add(1 - b1, dfdx)
  state.v:mul(b2):addcmul(1 - b2, dfdx, dfdx)
  local bc1, bc2 = 1 - b1 ^ state.t, 1 - b2 ^ state.t
  denom:copy(state.v):sqrt():div(math.sqrt(bc2)):add(eps)
  x:addcdiv(-clr / bc1, state.m, denom)
  return x, {fx}
end

return adam
