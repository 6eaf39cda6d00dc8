-- nn.View(sizes...): a view of the input with the given per-sample sizes; a leading batch dim is
-- kept when the input has more elements than one sample (Torch7 behaviour). -1 infers one size.
local nd = require('nd')
local util = require('nn.util')

local View, parent = nd.class('nn.View', 'nn.Module')

function View:__init(...)
  parent.__init(self)
  self.size = nd._sizes(...)
  local n, infer = 1, false
  for _, s in ipairs(self.size) do if s == -1 then infer = true else n = n * s end end
  self.numElements = n
  self.infer = infer
end

function View:shape_for(input)
  local total = input:nElement()
  local per = self.numElements
  local batch = nil
  if not self.infer then
    if total ~= per then
      if total % per ~= 0 then util.fail(self, 'cannot view input %s as %s', nd.shape(input), table.concat(self.size, 'x')) end
      batch = total // per
    end
  elseif input:dim() > #self.size or (total // per) ~= total / per then
    batch = input:size(1)
  end
  local s = {}
  if batch then s[1] = batch end
  for _, v in ipairs(self.size) do s[#s + 1] = v end
  return s
end

function View:updateOutput(input)
  local ok, out = pcall(function() return input:view(self:shape_for(input)) end)
  if not ok then
    local ok2, out2 = pcall(function() return input:reshape(self:shape_for(input)) end)
    if not ok2 then util.fail(self, 'cannot view input %s as %s: %s', nd.shape(input), table.concat(self.size, 'x'), out2) end
    out = out2
  end
  self.output = out
  return out
end

function View:updateGradInput(input, gradOutput)
  self.gradInput = gradOutput:reshape(input:size())
  return self.gradInput
end

function View:__tostring__() return 'nn.View(' .. table.concat(self.size, 'x') .. ')' end

return View
