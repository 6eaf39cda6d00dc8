-- Full training steps (forward, backward, SGD update) of CIFAR models, batch 128, 3x32x32:
-- images/s for batch norm and deconvolution, their ratio, and the share of the GEMM-only bound
-- (the model's training FLOPs at the sgemm GFLOP/s measured in the same run).
-- Usage: build/bin/nd bench/train_step.lua [--models vgg11,resnet18] [--batch 128] [--reps 3]
local nd = require('nd')
local nn = require('nn')
local optim = require('optim')
local bench = require('bench.common')

local o = bench.options({models = 'vgg11', batch = 128, reps = 3, threads = 2})
nd.setnumthreads(o.threads)
-- forward FLOPs per image (targets.md); training ~3x
local fwd_flops = {vgg11 = 305.5e6, resnet18 = 1110.9e6}
local anchor = bench.sgemm_gflops(1024)
print(string.format('sgemm 1024^3: %.1f GFLOP/s (%d threads) = the anchor', anchor, o.threads))
print(string.format('%-10s %-7s %10s %10s %12s', 'model', 'norm', 'img/s', 'ms/step', 'of GEMM bound'))
local x = nd.randn(o.batch, 3, 32, 32)
local y = nd.LongTensor(o.batch):random(1, 10)
local crit = nn.CrossEntropyCriterion()
for name in tostring(o.models):gmatch('[^,]+') do
  local rates = {}
  for _, norm in ipairs {'bn', 'deconv'} do
    nd.manualSeed(0)
    local model = require('models')(name, {norm = norm, classes = 10, inputGrad = false})
    local params, grads = model:getParameters()
    local config, state = {learningRate = 0.01, momentum = 0.9, weightDecay = 1e-3}, {}
    local function step()
      optim.sgd(function()
        grads:zero()
        local out = model:forward(x)
        local loss = crit:forward(out, y)
        model:backward(x, crit:backward(out, y))
        return loss, grads
      end, params, config, state)
    end
    local t = bench.time(step, o.reps, 1)
    rates[norm] = o.batch / t
    local bound = fwd_flops[name] and anchor * 1e9 / (3 * fwd_flops[name]) or nil
    print(string.format('%-10s %-7s %10.1f %10.0f %12s', name, norm, o.batch / t, t * 1e3,
      bound and string.format('%.0f%%', 100 * (o.batch / t) / bound) or '-'))
  end
  print(string.format('%-10s deconv / bn time ratio: %.2fx', name, rates.bn / rates.deconv))
end
