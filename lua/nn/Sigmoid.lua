-- nn.Sigmoid: elementwise sigmoid (see nn/activation.lua).
return require('nn.activation')('nn.Sigmoid', 'sigmoid')
