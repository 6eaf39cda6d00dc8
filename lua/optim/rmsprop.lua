-- optim.rmsprop(feval, x, config, state) -> x, {f}: RMSprop with PyTorch's arithmetic:
--
--   g = df/dx + weightDecay * x              (coupled L2, added into df/dx in place)
--   m = alpha * m + (1 - alpha) * g^2        (m starts at 0)
--   a = sqrt(m) + epsilon   (centered: a = sqrt(m - gavg^2) + epsilon, gavg the mean of g)
--   x = x - lr_t * g / a    (momentum > 0: buf = momentum * buf + g / a; x = x - lr_t * buf)
--
-- config: learningRate (1e-2), learningRateDecay (0: off), alpha (0.99), epsilon (1e-8),
--   weightDecay (0), momentum (0), centered (false).
-- state: t (steps taken), m (the mean square), g (the mean gradient, centered), buf (momentum).
local nd = require('nd')

local scratch = setmetatable({}, {__mode = 'k'})   -- state -> work buffer

local function rmsprop(feval, x, config, state)
  config = config or {}
  state = state or config
  local lr = config.learningRate or 1e-2
  local lrd = config.learningRateDecay or 0
  local alpha = config.alpha or 0.99
  local eps = config.epsilon or 1e-8
  local wd = config.weightDecay or 0
  local mom = config.momentum or 0

  local fx, dfdx = feval(x)
  if not nd.isTensor(dfdx) or dfdx:nElement() ~= x:nElement() then
    error('optim.rmsprop: feval must return f(x) and df/dx (a tensor with as many elements as x)', 2)
  end
  if wd ~= 0 then dfdx:add(wd, x) end

  state.t = state.t or 0
  state.m = state.m or dfdx:clone():zero()
  if state.m:nElement() ~= dfdx:nElement() then
    error(string.format('optim.rmsprop: the state has %d elements but df/dx has %d (state of other parameters?)',
      state.m:nElement(), dfdx:nElement()), 2)
  end
  local avg = scratch[state]
  if not avg or avg:nElement() ~= dfdx:nElement() or avg:type() ~= dfdx:type() then
    avg = dfdx:clone()
    scratch[state] = avg
  end

  state.m:mul(alpha):addcmul(1 - alpha, dfdx, dfdx)
  if config.centered then
    state.g = state.g or dfdx:clone():zero()
    state.g:mul(alpha):add(1 - alpha, dfdx)
    avg:copy(state.m):addcmul(-1, state.g, state.g):sqrt():add(eps)
  else
    avg:copy(state.m):sqrt():add(eps)
  end

  local clr = lr / (1 + state.t * lrd)
  if mom > 0 then
    state.buf = state.buf or dfdx:clone():zero()
    state.buf:mul(mom):addcdiv(1, dfdx, avg)
    x:add(-clr, state.buf)
  else
    x:addcdiv(-clr, dfdx, avg)
  end
  state.t = state.t + 1
  return x, {fx}
end

return rmsprop
