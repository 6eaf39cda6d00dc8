-- nn.Criterion: loss functions. forward(input, target) -> loss (a number);
-- backward(input, target) -> gradInput.
local nd = require('nd')

local Criterion = nd.class('nn.Criterion')

function Criterion:__init()
  self.gradInput = nd.Tensor()
  self.output = 0
  self.sizeAverage = true
end

function Criterion:updateOutput(input, target) return self.output end
function Criterion:updateGradInput(input, target) return self.gradInput end
function Criterion:forward(input, target) return self:updateOutput(input, target) end
function Criterion:backward(input, target) return self:updateGradInput(input, target) end

-- Converts every tensor field (class weights, buffers) to typename; gradInput (a per-call result)
-- is emptied instead. Integer tensors keep their dtype and only change device.
function Criterion:type(typename)
  local cuda = typename:find('Cuda') ~= nil
  for k, v in pairs(self) do
    if nd.isTensor(v) then
      local dt = nd.core.dtype(v)
      if k == 'gradInput' then self[k] = nd.core.empty(nd._dtype(typename), {})
      elseif dt == 'int64' or dt == 'uint8' then self[k] = v:to(cuda and 'cuda' or 'cpu')
      else self[k] = v:type(typename) end
    end
  end
  return self
end
function Criterion:float() return self:type('nd.FloatTensor') end
function Criterion:double() return self:type('nd.DoubleTensor') end
function Criterion:cuda()
  local ok, why = false, 'nd.cuda is missing'
  if nd.cuda and nd.cuda.available then ok, why = nd.cuda.available() end
  if not ok then error(nd.typename(self) .. ':cuda(): CUDA is not available, cannot move to a GPU: ' .. tostring(why), 2) end
  return self:type('nd.CudaTensor')
end
function Criterion:clearState() self.gradInput = self.gradInput:new(); return self end
function Criterion:__call(input, target) return self:forward(input, target) end
function Criterion:__tostring__() return nd.typename(self) end

return Criterion
