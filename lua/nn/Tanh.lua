-- nn.Tanh: elementwise tanh (see nn/activation.lua).
return require('nn.activation')('nn.Tanh', 'tanh')
