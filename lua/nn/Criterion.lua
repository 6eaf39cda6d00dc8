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

function Criterion:type(typename)
  for k, v in pairs(self) do
    if nd.isTensor(v) then self[k] = v:type(typename) end
  end
  return self
end
function Criterion:float() return self:type('nd.FloatTensor') end
function Criterion:double() return self:type('nd.DoubleTensor') end
function Criterion:cuda() return self:type('nd.CudaTensor') end
function Criterion:clearState() self.gradInput = self.gradInput:new(); return self end
function Criterion:__call(input, target) return self:forward(input, target) end
function Criterion:__tostring__() return nd.typename(self) end

return Criterion
