-- nn.SoftMax: softmax over the class dim (2 of N x C x ...) (see nn/activation.lua).
return require('nn.activation')('nn.SoftMax', 'softmax')
