-- nn.SpatialMaxPooling(kW, kH [, dW=kW, dH=kH, padW=0, padH=0]); :ceil() / :floor() mode.
local nd = require('nd')
local util = require('nn.util')

local SpatialMaxPooling, parent = nd.class('nn.SpatialMaxPooling', 'nn.Module')

function SpatialMaxPooling:__init(kW, kH, dW, dH, padW, padH)
  parent.__init(self)
  self.kW, self.kH = kW, kH or kW
  self.dW, self.dH = dW or kW, dH or dW or kH or kW
  self.padW, self.padH = padW or 0, padH or padW or 0
  self.ceil_mode = false
  self._stateFields = {'indices'}
end

function SpatialMaxPooling:ceil() self.ceil_mode = true; return self end
function SpatialMaxPooling:floor() self.ceil_mode = false; return self end

function SpatialMaxPooling:updateOutput(input)
  util.check_dims(self, input, {3, 4})
  self.output, self.indices = nd.core.maxpool2d_forward(self.output, self.indices, input, self.kW, self.kH, self.dW, self.dH,
                                                        self.padW, self.padH, self.ceil_mode)
  return self.output
end

function SpatialMaxPooling:updateGradInput(input, gradOutput)
  self.gradInput = nd.core.maxpool2d_backward(self.gradInput, input, gradOutput, self.indices, self.kW, self.kH, self.dW,
                                              self.dH, self.padW, self.padH, self.ceil_mode)
  return self.gradInput
end

function SpatialMaxPooling:__tostring__()
  return string.format('nn.SpatialMaxPooling(%dx%d, %d,%d)', self.kW, self.kH, self.dW, self.dH)
end

return SpatialMaxPooling
