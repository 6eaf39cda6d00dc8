-- nn.SpatialAveragePooling(kW, kH [, dW=1, dH=1, padW=0, padH=0]); :ceil(), count_include_pad
-- (default true, Torch7/PyTorch) switchable with :setCountExcludePad().
local nd = require('nd')
local util = require('nn.util')

local SpatialAveragePooling, parent = nd.class('nn.SpatialAveragePooling', 'nn.Module')

function SpatialAveragePooling:__init(kW, kH, dW, dH, padW, padH)
  parent.__init(self)
  self.kW, self.kH = kW, kH or kW
  self.dW, self.dH = dW or 1, dH or dW or 1
  self.padW, self.padH = padW or 0, padH or padW or 0
  self.ceil_mode = false
  self.count_include_pad = true
end

function SpatialAveragePooling:ceil() self.ceil_mode = true; return self end
function SpatialAveragePooling:floor() self.ceil_mode = false; return self end
function SpatialAveragePooling:setCountIncludePad() self.count_include_pad = true; return self end
function SpatialAveragePooling:setCountExcludePad() self.count_include_pad = false; return self end

function SpatialAveragePooling:updateOutput(input)
  util.check_dims(self, input, {3, 4})
  self.output = nd.core.avgpool2d_forward(self.output, input, self.kW, self.kH, self.dW, self.dH, self.padW, self.padH,
                                          self.ceil_mode, self.count_include_pad)
  return self.output
end

function SpatialAveragePooling:updateGradInput(input, gradOutput)
  self.gradInput = nd.core.avgpool2d_backward(self.gradInput, input, gradOutput, self.kW, self.kH, self.dW, self.dH,
                                              self.padW, self.padH, self.ceil_mode, self.count_include_pad)
  return self.gradInput
end

function SpatialAveragePooling:__tostring__()
  return string.format('nn.SpatialAveragePooling(%dx%d, %d,%d)', self.kW, self.kH, self.dW, self.dH)
end

return SpatialAveragePooling
