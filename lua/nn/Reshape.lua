-- nn.Reshape(sizes...): like nn.View but always returns contiguous data (copies when needed).
local nd = require('nd')

local Reshape, parent = nd.class('nn.Reshape', 'nn.View')

function Reshape:updateOutput(input)
  self.output = input:contiguous():view(self:shape_for(input))
  return self.output
end

function Reshape:__tostring__() return 'nn.Reshape(' .. table.concat(self.size, 'x') .. ')' end

return Reshape
