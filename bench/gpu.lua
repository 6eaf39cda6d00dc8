-- GPU training throughput: images/s of full training steps (forward, backward, SGD update with
-- momentum and weight decay) for VGG-11, ResNet-18, ResNet-50 and DenseNet-121 with batch norm
-- ('bn') and network deconvolution ('deconv'), batch 128, 3x32x32, 10 classes; the median of
-- --steps steps after --warm warm-up steps, the GPU synchronised around each step. Printed beside
-- the authors' PyTorch code on an H200 (../shared/docs/targets.md) with the DC/BN time ratio
-- (target <= 1.3) and our DC speed over theirs (target >= 5x).
-- Usage: build/bin/nd bench/gpu.lua [--models vgg11,resnet18,resnet50,densenet121] [--batch 128]
--          [--steps 20] [--warm 5] [--budget 60] [--infer 0] [--tsv results.tsv] [--tf32 vgg11]
-- --tf32 lists models also run as 'dc+tf32': deconvolution with TF32 tensor-core products in its
-- statistics, Newton-Schulz and folding (nd.cuda.tf32; the default rows use strict float32 there).
-- --budget caps the seconds spent per model and norm (fewer timed steps when slow; at least 3).
-- A model that fails (a missing CUDA kernel, out of memory) prints its error and the run goes on.
local nd = require('nd')
local nn = require('nn')
local optim = require('optim')
local bench = require('bench.common')

local o = bench.options({models = 'vgg11,resnet18,resnet50,densenet121', batch = 128, steps = 20, warm = 5,
                         budget = 60, infer = 0, tsv = '', tf32 = 'vgg11'})

local ok, why = nd.cuda.available()
if not ok then
  print('bench/gpu.lua: no GPU: ' .. tostring(why))
  return
end
local info = nd.cuda.deviceInfo()
print(string.format('GPU: %s (compute %.1f, %.0f GiB), batch %d, median of %d steps after %d warm-up',
  info.name, info.capability, info.memory / 2 ^ 30, o.batch, o.steps, o.warm))

-- The authors' code on an H200 (targets.md): train and inference images/s.
local anchors = {
  vgg11 = {bn = 27200, deconv = 4107, bn_infer = 97415, deconv_infer = 82218},
  resnet18 = {bn = 14498, deconv = 1497, bn_infer = 62783, deconv_infer = 37369},
  resnet50 = {bn = 5374, deconv = 679, bn_infer = 17504, deconv_infer = 10138},
  densenet121 = {bn = 2879, deconv = 289, bn_infer = 12185, deconv_infer = 5704},
}

local function median(t)
  table.sort(t)
  local n = #t
  if n % 2 == 1 then return t[(n + 1) // 2] end
  return (t[n // 2] + t[n // 2 + 1]) / 2
end

-- Runs fn warm times, then up to steps times within budget seconds; returns the median seconds.
local function timed(fn, steps, warm, budget)
  local start = nd.now()
  for _ = 1, warm do fn() end
  nd.cuda.synchronize()
  local t = {}
  for i = 1, steps do
    local t0 = nd.now()
    fn()
    nd.cuda.synchronize()
    t[i] = nd.now() - t0
    if i >= 3 and nd.now() - start > budget then break end
  end
  return median(t), #t
end

local x = nd.randn(o.batch, 3, 32, 32):cuda()
local y = nd.LongTensor(o.batch):random(1, 10):cuda()

local function run(name, norm, tf32)
  local tf32_was = nd.cuda.tf32(tf32 or false)
  nd.manualSeed(0)
  local model = require('models')(name, {norm = norm, classes = 10, inputGrad = false}):cuda()
  local crit = nn.CrossEntropyCriterion():cuda()
  local params, grads = model:getParameters()   -- after :cuda()
  local config, state = {learningRate = 0.01, momentum = 0.9, weightDecay = 1e-3}, {}
  local last
  local function step()
    optim.sgd(function()
      grads:zero()
      local out = model:forward(x)
      last = crit:forward(out, y)
      model:backward(x, crit:backward(out, y))
      return last, grads
    end, params, config, state)
  end
  model:training()
  local t, n = timed(step, o.steps, o.warm, o.budget)
  local r = {train = o.batch / t, steps = n, loss = last}
  if o.infer ~= 0 then
    model:evaluate()
    local ti = timed(function() model:forward(x) end, o.steps, o.warm, o.budget / 2)
    r.infer = o.batch / ti
  end
  r.mem = nd.cuda.memory().peak
  model, crit, params, grads, state = nil, nil, nil, nil, nil
  collectgarbage()
  nd.cuda.emptyCache()
  nd.cuda.resetPeak()
  nd.cuda.tf32(tf32_was)
  return r
end

local tsv = o.tsv ~= '' and assert(io.open(o.tsv, 'w')) or nil
if tsv then tsv:write('model\tnorm\ttrain_img_s\tanchor_img_s\tinfer_img_s\tsteps\tpeak_mib\terror\n') end
print(string.format('%-12s %-7s %10s %10s %8s %10s %9s %s', 'model', 'norm', 'img/s', 'authors', 'x them',
  'infer/s', 'peak MiB', 'note'))
local summary = {}
local with_tf32 = {}
for name in tostring(o.tf32):gmatch('[^,]+') do with_tf32[name] = true end
for name in tostring(o.models):gmatch('[^,]+') do
  local res = {}
  local rows = {{'bn', 'bn'}, {'deconv', 'deconv'}}
  if with_tf32[name] then rows[3] = {'dc+tf32', 'deconv', true} end
  for _, row in ipairs(rows) do
    local norm = row[1]
    local okr, r = pcall(run, name, row[2], row[3])
    if not okr then nd.cuda.tf32(false) end
    local a = anchors[name] or {}
    a[norm] = a[norm] or a[row[2]]
    if okr then
      res[norm] = r
      print(string.format('%-12s %-7s %10.0f %10s %7.2fx %10s %9.0f %s', name, norm, r.train,
        a[norm] and string.format('%d', a[norm]) or '-', a[norm] and r.train / a[norm] or 0,
        r.infer and string.format('%.0f', r.infer) or '-', r.mem / 2 ^ 20,
        string.format('%d steps, loss %.3f', r.steps, r.loss or 0)))
      if tsv then
        tsv:write(string.format('%s\t%s\t%.1f\t%s\t%s\t%d\t%.0f\t\n', name, norm, r.train, a[norm] or '',
          r.infer and string.format('%.1f', r.infer) or '', r.steps, r.mem / 2 ^ 20))
      end
    else
      local msg = tostring(r):gsub('\n.*', '')
      print(string.format('%-12s %-7s %10s  error: %s', name, norm, '-', msg))
      if tsv then tsv:write(string.format('%s\t%s\t\t%s\t\t\t\t%s\n', name, norm, a[norm] or '', msg:gsub('\t', ' '))) end
      collectgarbage()
      nd.cuda.emptyCache()
    end
  end
  if res.bn and res.deconv then
    local ratio = res.bn.train / res.deconv.train
    summary[#summary + 1] = string.format('%-12s DC/BN time ratio %.2f (target <= 1.3; authors %.1f)', name, ratio,
      anchors[name] and anchors[name].bn / anchors[name].deconv or 0)
    print(summary[#summary])
    if res['dc+tf32'] then
      summary[#summary + 1] = string.format('%-12s DC/BN time ratio %.2f with TF32 Deconv products', name,
        res.bn.train / res['dc+tf32'].train)
      print(summary[#summary])
    end
  end
end
if tsv then tsv:close() end
print('-- summary')
for _, s in ipairs(summary) do print(s) end
