-- nn.ReLU: elementwise relu (see nn/activation.lua).
return require('nn.activation')('nn.ReLU', 'relu')
