-- optim.sgd(feval, x, config, state) -> x, {f}: stochastic gradient descent with momentum,
-- dampening, Nesterov momentum and coupled (L2) weight decay, with PyTorch's semantics:
--
--   g = df/dx + weightDecay * x              (added into df/dx in place, as Torch7 did)
--   buf = g on the first step, then buf = momentum * buf + (1 - dampening) * g
--   g = g + momentum * buf  (nesterov)  or  g = buf  (otherwise)
--   x = x - lr_t * g,  lr_t = learningRate / (1 + t * learningRateDecay)
--
-- config: learningRate (1e-3), learningRateDecay (0: off; t is state.t, the steps taken before
--   this one), weightDecay (0), momentum (0), dampening (0, as PyTorch; Torch7 defaulted it to
--   the momentum), nesterov (false; needs momentum > 0 and dampening 0), learningRates and
--   weightDecays (optional tensors like x: per-element factors on the rate and extra decay).
-- state: t (steps taken), dfdx (the momentum buffer, created on the first step).
-- Plain SGD with momentum 0.9, dampening 0, weight decay 1e-3 and lr set each step by
-- optim.schedule.cosine is the recipe of the reference experiments.
local nd = require('nd')

local function check_grad(name, x, fx, dfdx)
  if not nd.isTensor(dfdx) then
    error(string.format('%s: feval must return f(x) and df/dx (a tensor), got %s as df/dx', name, type(dfdx)), 3)
  end
  if dfdx:nElement() ~= x:nElement() then
    error(string.format('%s: df/dx has %d elements but x has %d', name, dfdx:nElement(), x:nElement()), 3)
  end
end

local function sgd(feval, x, config, state)
  config = config or {}
  state = state or config
  local lr = config.learningRate or 1e-3
  local lrd = config.learningRateDecay or 0
  local wd = config.weightDecay or 0
  local mom = config.momentum or 0
  local damp = config.dampening or 0
  local nesterov = config.nesterov or false
  local lrs, wds = config.learningRates, config.weightDecays
  if nesterov and (mom <= 0 or damp ~= 0) then
    error('optim.sgd: Nesterov momentum needs momentum > 0 and dampening 0', 2)
  end
  state.t = state.t or 0

  local fx, dfdx = feval(x)
  check_grad('optim.sgd', x, fx, dfdx)

  if wd ~= 0 then dfdx:add(wd, x) end
  if wds then dfdx:addcmul(1, wds, x) end

  if mom ~= 0 then
    local buf = state.dfdx
    if not buf then
      buf = dfdx:clone()
      state.dfdx = buf
    else
      if buf:nElement() ~= dfdx:nElement() then
        error(string.format('optim.sgd: the momentum buffer has %d elements but df/dx has %d (state of other parameters?)',
          buf:nElement(), dfdx:nElement()), 2)
      end
      buf:mul(mom):add(1 - damp, dfdx)
    end
    if nesterov then dfdx:add(mom, buf) else dfdx = buf end
  end

  local clr = lr / (1 + state.t * lrd)
  if lrs then x:addcmul(-clr, lrs, dfdx) else x:add(-clr, dfdx) end
  state.t = state.t + 1
  return x, {fx}
end

return sgd
