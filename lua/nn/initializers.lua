-- nn.init: weight initialisers (in place, return the tensor). fan_in = size(2) * receptive field.
local nd = require('nd')

local init = {}

local function fans(t)
  local d = t:dim()
  if d < 2 then error('nn.init: need a tensor of at least 2 dims to compute fans, got ' .. nd.shape(t), 3) end
  local receptive = 1
  for i = 3, d do receptive = receptive * t:size(i) end
  return t:size(2) * receptive, t:size(1) * receptive
end
init.fans = fans

local function gain(nonlinearity, a)
  if nonlinearity == 'relu' then return math.sqrt(2) end
  if nonlinearity == 'leaky_relu' then return math.sqrt(2 / (1 + (a or 0.01) ^ 2)) end
  if nonlinearity == 'tanh' then return 5 / 3 end
  return 1
end

-- kaiming_normal(t, {mode='fan_in'|'fan_out', nonlinearity='relu', a=0})
function init.kaiming_normal(t, opt)
  opt = opt or {}
  local fin, fout = fans(t)
  local fan = (opt.mode == 'fan_out') and fout or fin
  return t:normal(0, gain(opt.nonlinearity or 'relu', opt.a) / math.sqrt(fan))
end

function init.kaiming_uniform(t, opt)
  opt = opt or {}
  local fin, fout = fans(t)
  local fan = (opt.mode == 'fan_out') and fout or fin
  local bound = gain(opt.nonlinearity or 'relu', opt.a) * math.sqrt(3 / fan)
  return t:uniform(-bound, bound)
end

function init.xavier_uniform(t, g)
  local fin, fout = fans(t)
  local bound = (g or 1) * math.sqrt(6 / (fin + fout))
  return t:uniform(-bound, bound)
end

function init.xavier_normal(t, g)
  local fin, fout = fans(t)
  return t:normal(0, (g or 1) * math.sqrt(2 / (fin + fout)))
end

function init.constant(t, v) return t:fill(v) end
function init.normal(t, mean, std) return t:normal(mean or 0, std or 1) end
function init.uniform(t, a, b) return t:uniform(a or 0, b or 1) end

-- The framework default (PyTorch / Torch7): U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
function init.default(weight, bias, fan_in)
  local bound = 1 / math.sqrt(fan_in)
  weight:uniform(-bound, bound)
  if bias then bias:uniform(-bound, bound) end
end

return init
