-- nn.Identity: output = input, gradInput = gradOutput (no copies).
local nd = require('nd')

local Identity = nd.class('nn.Identity', 'nn.Module')

function Identity:updateOutput(input)
  self.output = input
  return input
end

function Identity:updateGradInput(input, gradOutput)
  self.gradInput = gradOutput
  return gradOutput
end

return Identity
