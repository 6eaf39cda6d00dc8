-- Builds an elementwise activation module class whose kernels are core.<name>_forward /
-- core.<name>_backward (the backward takes the forward output). inplace = true reuses the input.
local nd = require('nd')

return function(classname, kernel)
  local Act, parent = nd.class(classname, 'nn.Module')

  function Act:__init(inplace)
    parent.__init(self)
    self.inplace = inplace or false
  end

  function Act:updateOutput(input)
    if not nd.isTensor(input) then error(classname .. ': expected a tensor input, got ' .. type(input), 0) end
    self.output = nd.core[kernel .. '_forward'](self.inplace and input or self.output, input)
    return self.output
  end

  function Act:updateGradInput(input, gradOutput)
    self.gradInput = nd.core[kernel .. '_backward'](self.inplace and gradOutput or self.gradInput, gradOutput, self.output)
    return self.gradInput
  end

  function Act:__tostring__() return classname .. (self.inplace and '(inplace)' or '') end

  return Act
end
