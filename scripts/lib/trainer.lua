-- One training run, as scripts/train.lua and scripts/reproduce.lua drive it.
--
--   local trainer = require('scripts.lib.trainer')
--   local p = trainer.parser()                 -- the command-line options (scripts/lib/args.lua)
--   local opt, given = p:parse(arg)
--   local summary = trainer.run(opt, given)    -- returns the summary table (also summary.json)
--
-- The run directory (--out, default runs/<model>-<norm>-<dataset>-<name or timestamp>) holds
--   options.json   the resolved options
--   log.tsv        one row per epoch: losses, accuracies, learning rate, time, images/s
--   steps.tsv      one row per step: iteration, epoch, lr, batch loss and accuracy
--   checkpoint.nd  model (clearState), optimizer state, epoch, iteration, RNG state, options,
--                  history; written atomically after every epoch
--   summary.json   final and best test accuracy and the per-epoch history
--   curves.png     loss and accuracy curves
-- The recipe is the reference's (docs/reference-spec.md 8.1): SGD with momentum and weight decay
-- coupled on all parameters, the learning rate set per iteration by the schedule, evaluation on
-- the test set after every epoch. The batches of epoch e depend only on (seed, e) and the global
-- generator is saved at the epoch boundary, so a resumed run continues exactly as an
-- uninterrupted one.
local nd = require('nd')
local nn = require('nn')
local optim = require('optim')
local args = require('scripts.lib.args')
local json = require('scripts.lib.json')
local progress = require('scripts.lib.progress')
local checkpoint = require('scripts.lib.checkpoint')
local plot = require('scripts.lib.plot')

local trainer = {}

local fail = args.usage_error

trainer.datasets = {'cifar10', 'cifar100', 'mnist', 'fashion-mnist', 'synthetic'}
trainer.norms = {'deconv', 'bn', 'none', 'cd', 'bn+cd'}

-- Options that may change when a run is resumed (the others must match the checkpoint).
trainer.free_on_resume = {
  resume = true, out = true, threads = true, device = true, progress = true, logEvery = true,
  quiet = true, killAtStep = true, evalBatchSize = true, name = true,
}

trainer.options = {
  {'model', 'string', 'vgg11', 'network: vgg11 vgg13 vgg16 vgg19 resnet18 resnet34 resnet50 densenet121 (CIFAR), ' ..
    'mlp (MNIST), linear (Fashion-MNIST), *-imagenet'},
  {'norm', trainer.norms, 'deconv', 'normalisation: deconv (network deconvolution), bn (batch norm), none, ' ..
    'cd (channel-only deconvolution), bn+cd (mlp only)'},
  {'dataset', trainer.datasets, 'cifar10', 'data set (fetch with data/get.sh NAME; synthetic is generated)'},
  {'epochs', 'integer', 20, 'training epochs'},
  {'batch-size', 'integer', 128, 'images per step'},
  {'lr', 'number', 0.1, 'initial learning rate'},
  {'wd', 'number', 1e-3, 'weight decay (L2, coupled, on all parameters)'},
  {'momentum', 'number', 0.9, 'SGD momentum'},
  {'schedule', {'cosine', 'multistep', 'constant'}, 'cosine', 'learning-rate schedule, stepped every iteration ' ..
    '(cosine: 0.5 lr (1 + cos(pi t/T)); multistep: x0.1 at 40%, 60%, 80% of the epochs)'},
  {'loss', {'ce', 'l2'}, 'ce', 'ce: softmax cross-entropy; l2: 0.5 * squared error to the one-hot target'},
  {'block', 'integer', 64, 'deconvolution block size (channels per covariance) of the conv layers'},
  {'block-fc', 'integer', nil, 'block size of the classifier\'s deconvolution, 0 = a plain Linear ' ..
    '(default: 512 with --norm deconv or cd, 0 otherwise)'},
  {'stride', 'integer', 3, 'sampling stride of the deconvolution statistics'},
  {'iters', 'integer', 5, 'Newton-Schulz iterations'},
  {'eps', 'number', nil, 'added to the covariance diagonal (default: 1e-5; 1e-2 for --model linear)'},
  {'augment', 'boolean', nil, 'random crop (4 px) and flip (default: on for CIFAR, off otherwise)'},
  {'normalize', 'boolean', nil, 'subtract the mean, divide by the std (default: on, off for fashion-mnist ' ..
    'as the reference)'},
  {'train-size', 'integer', nil, 'use only the first N training images (default: all)'},
  {'test-size', 'integer', nil, 'use only the first N test images (default: all)'},
  {'eval-batch-size', 'integer', 500, 'images per evaluation batch'},
  {'seed', 'integer', 0, 'random seed (weights, data order, augmentation)'},
  {'threads', 'integer', nil, 'CPU threads (default: all cores)'},
  {'device', {'cpu', 'cuda'}, 'cpu', 'where to train'},
  {'resume', 'string', nil, 'continue the run in this directory (or from this checkpoint file)', 'DIR'},
  {'out', 'string', nil, 'run directory (default: runs/<model>-<norm>-<dataset>-<name or time>)', 'DIR'},
  {'name', 'string', nil, 'run name used in the default --out'},
  {'progress', {'auto', 'bar', 'lines', 'none'}, 'auto', 'progress display: a bar on a terminal, ' ..
    'plain lines otherwise'},
  {'log-every', 'integer', nil, 'steps between progress lines when not on a terminal (default: a tenth of an epoch)'},
  {'quiet', 'boolean', false, 'print only one line per epoch'},
  {'kill-at-step', 'integer', nil, 'testing aid: SIGKILL this process after global step N'},
}

function trainer.parser(prog)
  return args.parser{
    prog = prog or 'nd scripts/train.lua',
    summary = 'Trains a network on an image classification data set with the recipe of the network\n' ..
      'deconvolution paper (SGD, momentum, weight decay, per-iteration cosine schedule).',
    epilog = 'examples:\n' ..
      '  nd scripts/train.lua --model vgg11 --norm deconv --dataset cifar10 --epochs 20\n' ..
      '  nd scripts/train.lua --model mlp --norm bn --dataset mnist --lr 0.1 --epochs 2\n' ..
      '  nd scripts/train.lua --resume runs/vgg11-deconv-cifar10-20261127-101500',
    options = trainer.options,
  }
end

-- Defaults of all options, keyed like the parsed table.
function trainer.defaults()
  local d = {}
  for _, o in ipairs(trainer.options) do d[args.key(o[1])] = o[3] end
  return d
end

-- ---- options ----

local function contains(list, v)
  for _, x in ipairs(list) do if x == v then return true end end
  return false
end

-- Fills the defaults that depend on other options and checks the values.
function trainer.resolve(opt)
  local models = require('models')
  if not contains(models.list(), opt.model) then
    fail("unknown model '%s' (known: %s)", tostring(opt.model), table.concat(models.list(), ', '))
  end
  if not contains(trainer.datasets, opt.dataset) then
    fail("unknown dataset '%s' (known: %s)", tostring(opt.dataset), table.concat(trainer.datasets, ', '))
  end
  local function positive(key)
    if opt[key] ~= nil and opt[key] <= 0 then fail('--%s must be positive, got %s', args.flag(key), tostring(opt[key])) end
  end
  for _, k in ipairs {'epochs', 'batchSize', 'block', 'stride', 'iters', 'trainSize', 'testSize', 'evalBatchSize', 'threads'} do
    positive(k)
  end
  if opt.lr < 0 then fail('--lr must not be negative') end
  if opt.wd < 0 then fail('--wd must not be negative') end
  if opt.momentum < 0 or opt.momentum >= 1 then fail('--momentum must be in [0, 1), got %g', opt.momentum) end
  if opt.eps ~= nil and opt.eps <= 0 then fail('--eps must be positive') end
  if opt.blockFc ~= nil and opt.blockFc < 0 then fail('--block-fc must be 0 or positive') end
  if opt.blockFc == nil then
    opt.blockFc = (opt.norm == 'deconv' or opt.norm == 'cd') and 512 or 0
  end
  if opt.eps == nil then opt.eps = opt.model == 'linear' and 1e-2 or 1e-5 end
  if opt.augment == nil then opt.augment = opt.dataset == 'cifar10' or opt.dataset == 'cifar100' end
  if opt.normalize == nil then opt.normalize = opt.dataset ~= 'fashion-mnist' end
  if opt.device == 'cuda' and not (nd.cuda and nd.cuda.available and nd.cuda.available()) then
    fail('--device cuda: this build of nd has no usable GPU (build with make CUDA=1 on a machine with one)')
  end
  return opt
end

-- The printed option table: one '  name  value' line per option.
function trainer.format_options(opt)
  local lines, width = {}, 0
  for _, o in ipairs(trainer.options) do width = math.max(width, #o[1]) end
  for _, o in ipairs(trainer.options) do
    local v = opt[args.key(o[1])]
    if v ~= nil and o[1] ~= 'kill-at-step' then
      lines[#lines + 1] = string.format('  %-' .. width .. 's  %s', o[1], type(v) == 'number' and string.format('%.6g', v) or tostring(v))
    end
  end
  return table.concat(lines, '\n')
end

-- Options as JSON keys (the command-line names).
function trainer.options_json(opt)
  local t = {}
  for _, o in ipairs(trainer.options) do
    local v = opt[args.key(o[1])]
    if v ~= nil and o[1] ~= 'kill-at-step' and o[1] ~= 'resume' then t[o[1]] = v end
  end
  return t
end

-- The inverse of options_json (for reproduce.lua and tests).
function trainer.options_from_json(t)
  local opt = {}
  for k, v in pairs(t) do if v ~= json.null then opt[args.key(k)] = v end end
  return opt
end

-- The command line that reproduces opt (differences from the defaults only).
function trainer.command_line(opt)
  local d = trainer.defaults()
  local parts = {}
  for _, o in ipairs(trainer.options) do
    local k = args.key(o[1])
    local v = opt[k]
    local always = k == 'model' or k == 'norm' or k == 'dataset' or k == 'epochs'
    if v ~= nil and (v ~= d[k] or always) and not trainer.free_on_resume[k] then
      if type(v) == 'boolean' then parts[#parts + 1] = v and ('--' .. o[1]) or ('--no-' .. o[1])
      else parts[#parts + 1] = '--' .. o[1] .. ' ' .. (type(v) == 'number' and string.format('%.6g', v) or tostring(v)) end
    end
  end
  return table.concat(parts, ' ')
end

-- ---- files ----

local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

function trainer.mkdir(dir)
  local ok = os.execute('mkdir -p ' .. sh_quote(dir))
  if not ok then fail('cannot create the directory %s', dir) end
end

local function exists(path)
  local f = io.open(path, 'rb')
  if f then f:close() return true end
  return false
end

-- Keeps the header and the rows whose `column` is <= limit (a resumed run drops what the killed
-- process logged after its last checkpoint). Atomic (temp file + rename).
local function truncate_tsv(path, column, limit)
  local f = io.open(path, 'r')
  if not f then return end
  local header = f:read('l')
  local lines = {}
  local idx
  if header then
    local i = 0
    for c in (header .. '\t'):gmatch('([^\t]*)\t') do
      i = i + 1
      if c == column then idx = i end
    end
    for line in f:lines() do
      local cells = {}
      for c in (line .. '\t'):gmatch('([^\t]*)\t') do cells[#cells + 1] = c end
      local v = idx and tonumber(cells[idx])
      if v and v <= limit then lines[#lines + 1] = line end
    end
  end
  f:close()
  local tmp = path .. '.tmp'
  local out = assert(io.open(tmp, 'w'))
  if header then out:write(header, '\n') end
  for _, l in ipairs(lines) do out:write(l, '\n') end
  out:close()
  assert(os.rename(tmp, path))
end

-- ---- data ----

local function load_split(opt, split)
  local ds
  if opt.dataset == 'synthetic' then
    -- MNIST-shaped for the MNIST models, CIFAR-shaped for the others
    local small = opt.model == 'mlp' or opt.model == 'linear'
    local n = split == 'train' and opt.trainSize or opt.testSize
    ds = require('scripts.lib.synthetic').load(split, {n = n, size = small and 28 or 32, channels = small and 1 or 3})
  else
    local data = require('data')
    local ok, res = pcall(data.load, opt.dataset, split)
    if not ok then fail('%s', tostring(res):gsub('^[^:]*%.lua:%d+: ', '')) end
    ds = res
  end
  local limit = split == 'train' and opt.trainSize or opt.testSize
  if limit and limit < ds.images:size(1) then
    ds.images = ds.images:narrow(1, 1, limit):contiguous()
    ds.labels = ds.labels:narrow(1, 1, limit):contiguous()
    ds.n = limit
  end
  return ds
end

-- ---- losses ----

-- A criterion with forward(out, y) -> loss and backward(out, y) -> dloss/dout.
local function make_loss(kind, classes)
  if kind == 'ce' then
    local c = nn.CrossEntropyCriterion()
    return {
      module = c,
      forward = function(out, y) return c:forward(out, y) end,
      backward = function(out, y) return c:backward(out, y) end,
    }
  end
  -- l2: 0.5 * sum over classes of (out - onehot)^2, averaged over the batch (the reference's
  -- MSE against the one-hot target times classes / 2)
  local c = nn.MSECriterion()
  local scale = classes * 0.5
  local target
  local function onehot(out, y)
    local n = out:size(1)
    if not target or target:size(1) ~= n then
      target = nd.zeros(n, classes)
      if out:device() == 'cuda' then target = target:to('cuda') end
    end
    target:zero():scatter(2, y:view(n, 1), 1)
    return target
  end
  return {
    module = c,
    forward = function(out, y) return c:forward(out, onehot(out, y)) * scale end,
    backward = function(out, y) return c:backward(out, target):mul(scale) end,
  }
end
trainer.make_loss = make_loss

-- Number of correct top-1 predictions of out (N x C) against y (N).
local function correct(out, y)
  local _, idx = out:max(2)
  return idx:view(-1):eq(y):sum()
end

-- ---- the run ----

local function timestamp() return os.date('%Y%m%d-%H%M%S') end

local function model_options(opt, ds)
  local dim = ds.images:dim()
  local channels = dim == 4 and ds.images:size(2) or 1
  return {
    norm = opt.norm, classes = #ds.classes, block = opt.block, blockFc = opt.blockFc,
    samplingStride = opt.stride, iters = opt.iters, eps = opt.eps, inputGrad = false,
    inputChannels = channels, imageSize = ds.images:size(dim),
  }
end

function trainer.build_model(opt, ds)
  local models = require('models')
  local ok, m = pcall(models, opt.model, model_options(opt, ds))
  if not ok then fail('cannot build %s with --norm %s: %s', opt.model, opt.norm, tostring(m):gsub('^[^:]*%.lua:%d+: ', '')) end
  return m
end

local function schedule_fn(opt, steps_per_epoch)
  local total = steps_per_epoch * opt.epochs
  if opt.schedule == 'cosine' then return optim.schedule.cosine{base = opt.lr, total = total} end
  if opt.schedule == 'multistep' then
    local ms = {}
    for _, f in ipairs {0.4, 0.6, 0.8} do ms[#ms + 1] = math.floor(f * opt.epochs) * steps_per_epoch end
    return optim.schedule.multistep{base = opt.lr, milestones = ms, gamma = 0.1}
  end
  return optim.schedule.constant{base = opt.lr}
end

local function own_pid()
  local f = io.open('/proc/self/stat', 'r')
  if not f then return nil end
  local pid = f:read('n')
  f:close()
  return pid
end

-- Draws curves.png from the history and the step losses.
function trainer.draw_curves(path, opt, history, steps, steps_per_epoch)
  local sx, sy = {}, {}
  for i, s in ipairs(steps) do
    sx[i] = s.iteration / steps_per_epoch
    sy[i] = s.loss
  end
  local ex, trl, tel, tra, tea = {}, {}, {}, {}, {}
  for i, h in ipairs(history) do
    ex[i], trl[i], tel[i], tra[i], tea[i] = h.epoch, h.train_loss, h.test_loss, h.train_acc, h.test_acc
  end
  local logy = true
  for _, v in ipairs(sy) do if v <= 0 then logy = false end end
  plot.save(path, {
    {title = 'LOSS', xlabel = 'EPOCH', logy = logy, series = {
      {name = 'train (step)', x = sx, y = sy, color = {170, 200, 230}, thick = 1},
      {name = 'train (epoch mean)', x = ex, y = trl, color = plot.palette[1], markers = true},
      {name = 'test', x = ex, y = tel, color = plot.palette[2], markers = true},
    }},
    {title = 'ACCURACY (%)', xlabel = 'EPOCH', legend = 'br', series = {
      {name = 'train', x = ex, y = tra, color = plot.palette[1], markers = true},
      {name = 'test', x = ex, y = tea, color = plot.palette[2], markers = true},
    }},
  }, {cols = 2, title = string.format('%s %s %s', opt.model, opt.norm, opt.dataset)})
end

local function evaluate(model, loss, loader, device)
  model:evaluate()
  local total, sum_loss, hits = 0, 0, 0
  for _, x, y in loader:batches(1) do
    if device == 'cuda' then x, y = x:to('cuda'), y:to('cuda') end
    local out = model:forward(x)
    local n = x:size(1)
    sum_loss = sum_loss + loss.forward(out, y) * n
    hits = hits + correct(out, y)
    total = total + n
  end
  return sum_loss / math.max(total, 1), 100 * hits / math.max(total, 1)
end

-- Runs (or resumes) one training; `given` marks the options set on the command line.
-- ctx.print (default print) receives the text output; ctx.header = false leaves out the option
-- table and the data/model lines; ctx.prefix starts the progress and epoch lines.
function trainer.run(opt, given, ctx)
  given = given or {}
  ctx = ctx or {}
  local say = ctx.print or print
  local t_start = nd.now()
  local ck
  if opt.resume then
    local okc, res = pcall(checkpoint.load, opt.resume)
    if not okc then fail('%s', tostring(res)) end
    ck = res
    local saved = trainer.options_from_json(ck.options)
    for k, v in pairs(opt) do
      if given[k] and not trainer.free_on_resume[k] and saved[k] ~= v then
        if k == 'model' or k == 'norm' or k == 'dataset' then
          fail('%s is a checkpoint of %s %s on %s, not --%s %s', ck.path, tostring(saved.model), tostring(saved.norm),
            tostring(saved.dataset), args.flag(k), tostring(v))
        end
        fail('--%s %s differs from the checkpoint\'s %s (%s); a resumed run keeps its options', args.flag(k),
          tostring(v), tostring(saved[k]), ck.path)
      end
    end
    -- the options free to change take the command line's value when given, else the saved one
    -- (so that, e.g., the thread count, which decides the summation order, stays the same)
    local keep = {}
    for k in pairs(trainer.free_on_resume) do keep[k] = opt[k] end
    opt = saved
    for k in pairs(trainer.free_on_resume) do
      if given[k] or k == 'resume' or k == 'killAtStep' then opt[k] = keep[k] end
    end
    if not given.out then opt.out = ck.path:match('^(.*)/[^/]*$') or '.' end
  end
  opt = trainer.resolve(opt)
  if opt.threads then nd.setnumthreads(opt.threads) end
  if not opt.out then
    opt.out = string.format('runs/%s-%s-%s-%s', opt.model, opt.norm, opt.dataset, opt.name or timestamp())
  end
  trainer.mkdir(opt.out)
  local quiet = opt.quiet
  local header = not quiet and ctx.header ~= false
  local prefix = ctx.prefix or ''
  if header then
    say(string.format('nd %s: %s', tostring(nd.version), ck and ('resuming ' .. ck.path .. ' after epoch ' .. ck.epoch) or 'training'))
    say(trainer.format_options(opt))
  end
  json.write(opt.out .. '/options.json', trainer.options_json(opt))

  -- data
  local t_data = nd.now()
  local train_ds = load_split(opt, 'train')
  local test_ds = load_split(opt, 'test')
  local data = require('data')
  local train_loader = data.loader(train_ds, {batchSize = opt.batchSize, shuffle = true, crop = opt.augment and 4 or 0,
                                              flip = opt.augment, normalize = opt.normalize, seed = opt.seed})
  local test_loader = data.loader(test_ds, {batchSize = opt.evalBatchSize, shuffle = false, normalize = opt.normalize,
                                            seed = opt.seed})
  local steps_per_epoch = train_loader:size()
  if header then
    say(string.format('data: %s, %d train / %d test images of %s, %d classes, %d steps per epoch (%.1f s)',
      opt.dataset, train_ds.images:size(1), test_ds.images:size(1), tostring(train_ds.images[1]:size()),
      #train_ds.classes, steps_per_epoch, nd.now() - t_data))
  end

  -- model
  nd.manualSeed(opt.seed)
  local model = trainer.build_model(opt, train_ds)
  local optim_state = {}
  local start_epoch, iteration = 1, 0
  local history, best = {}, nil
  if ck then
    local why = checkpoint.mismatch(ck.model, model)
    if why then fail('%s does not fit this model: %s', ck.path, why) end
    model = ck.model
    optim_state = ck.optimState
    start_epoch, iteration = ck.epoch + 1, ck.iteration
    history, best = ck.history or {}, ck.best
    checkpoint.restore(ck, model)
  end
  if opt.device == 'cuda' then
    model = model:cuda()
    if optim_state.dfdx then optim_state.dfdx = optim_state.dfdx:to('cuda') end
  end
  local loss = make_loss(opt.loss, #train_ds.classes)
  if opt.device == 'cuda' and loss.module.cuda then loss.module:cuda() end
  local params, grads = model:getParameters()
  if header then
    say(string.format('model: %s %s, %d parameters', opt.model, opt.norm, params:nElement()))
    say(string.format('run directory: %s', opt.out))
  end
  local sched = schedule_fn(opt, steps_per_epoch)
  local config = {learningRate = opt.lr, momentum = opt.momentum, weightDecay = opt.wd, dampening = 0}

  -- logs
  local log_cols = {'epoch', 'iteration', 'lr', 'train_loss', 'train_acc', 'test_loss', 'test_acc', 'time', 'images_per_s'}
  local step_cols = {'iteration', 'epoch', 'lr', 'loss', 'acc'}
  local log_path, steps_path = opt.out .. '/log.tsv', opt.out .. '/steps.tsv'
  local steps = {}
  if ck then
    truncate_tsv(log_path, 'epoch', ck.epoch)
    truncate_tsv(steps_path, 'iteration', ck.iteration)
    if exists(steps_path) then
      local _, rows = optim.Logger.read(steps_path)
      for _, r in ipairs(rows) do steps[#steps + 1] = {iteration = r.iteration, loss = r.loss} end
    end
  end
  local log = optim.Logger(log_path, log_cols, {append = ck ~= nil})
  local step_log = optim.Logger(steps_path, step_cols, {append = ck ~= nil})

  local kill_pid = opt.killAtStep and own_pid()
  local summary
  local function write_summary(finished)
    local last = history[#history] or {}
    summary = {
      model = opt.model, norm = opt.norm, dataset = opt.dataset, epochs = opt.epochs, epochs_done = #history,
      finished = finished, final_acc = last.test_acc, final_test_loss = last.test_loss,
      final_train_loss = last.train_loss, final_train_acc = last.train_acc,
      best_acc = best and best.acc, best_epoch = best and best.epoch, iterations = iteration,
      parameters = params:nElement(), train_time_s = 0, out = opt.out,
      options = trainer.options_json(opt), history = history,
      command = 'nd scripts/train.lua ' .. trainer.command_line(opt),
    }
    local t, imgs = 0, 0
    for _, h in ipairs(history) do t = t + (h.time or 0); imgs = imgs + (h.images or 0) end
    summary.train_time_s = t
    summary.images_per_s = t > 0 and imgs / t or nil
    json.write(opt.out .. '/summary.json', summary)
  end

  -- the whole run's ETA: time per step so far (training and evaluation) times the steps left
  local run_t0, run_it0 = nd.now(), iteration
  local total_steps = steps_per_epoch * opt.epochs
  for epoch = start_epoch, opt.epochs do
    -- train
    model:training()
    local bar = progress.new{total = steps_per_epoch, label = prefix .. string.format('epoch %d/%d', epoch, opt.epochs),
                             mode = quiet and 'none' or opt.progress, every = opt.logEvery}
    local t0 = nd.now()
    local seen, sum_loss, hits = 0, 0, 0
    local lr
    for i, x, y in train_loader:batches(epoch) do
      if opt.device == 'cuda' then x, y = x:to('cuda'), y:to('cuda') end
      lr = sched(iteration)
      config.learningRate = lr
      local n = x:size(1)
      local batch_loss, batch_hits
      local function feval()
        grads:zero()
        local out = model:forward(x)
        batch_loss = loss.forward(out, y)
        batch_hits = correct(out, y)
        model:backward(x, loss.backward(out, y))
        return batch_loss, grads
      end
      optim.sgd(feval, params, config, optim_state)
      iteration = iteration + 1
      if batch_loss ~= batch_loss or batch_loss == math.huge then
        bar:finish()
        error(string.format('the loss diverged (%s) at epoch %d step %d (lr %.4g): lower --lr', tostring(batch_loss), epoch, i, lr), 0)
      end
      seen, sum_loss, hits = seen + n, sum_loss + batch_loss * n, hits + batch_hits
      steps[#steps + 1] = {iteration = iteration, loss = batch_loss}
      step_log:add{iteration = iteration, epoch = epoch, lr = lr, loss = batch_loss, acc = 100 * batch_hits / n}
      local now = nd.now()
      local run_eta
      if opt.epochs > 1 and iteration > run_it0 then
        run_eta = 'run eta ' .. progress.duration((now - run_t0) / (iteration - run_it0) * (total_steps - iteration))
      end
      bar:update(i, {loss = sum_loss / seen, acc = 100 * hits / seen, ips = seen / math.max(now - t0, 1e-9), extra = run_eta})
      if kill_pid and iteration >= opt.killAtStep then
        io.stdout:flush()
        os.execute('kill -KILL ' .. kill_pid)
      end
    end
    local t_train = nd.now() - t0
    bar:finish()
    -- evaluate
    local t1 = nd.now()
    local test_loss, test_acc = evaluate(model, loss, test_loader, opt.device)
    local t_eval = nd.now() - t1
    local row = {
      epoch = epoch, iteration = iteration, lr = lr, train_loss = sum_loss / math.max(seen, 1),
      train_acc = 100 * hits / math.max(seen, 1), test_loss = test_loss, test_acc = test_acc,
      time = t_train, images_per_s = seen / math.max(t_train, 1e-9),
    }
    log:add(row)
    row.images = seen
    row.eval_time = t_eval
    history[#history + 1] = row
    if not best or test_acc > best.acc then best = {acc = test_acc, epoch = epoch} end
    say(prefix .. string.format('epoch %d/%d  train loss %.4f acc %.2f%%  test loss %.4f acc %.2f%%  (best %.2f%%)  %.1f s, %.0f img/s',
      epoch, opt.epochs, row.train_loss, row.train_acc, test_loss, test_acc, best.acc, t_train + t_eval, row.images_per_s))
    -- checkpoint (the global RNG state is that of the epoch boundary)
    checkpoint.save(opt.out .. '/' .. checkpoint.NAME, {model = model, optimState = optim_state, epoch = epoch,
      iteration = iteration, options = trainer.options_json(opt), history = history, best = best})
    params, grads = model:getParameters()
    write_summary(epoch == opt.epochs)
    local ok, err = pcall(trainer.draw_curves, opt.out .. '/curves.png', opt, history, steps, steps_per_epoch)
    if not ok then say('warning: curves.png not drawn: ' .. tostring(err)) end
  end
  if #history < opt.epochs or start_epoch > opt.epochs then write_summary(#history >= opt.epochs) end
  log:close()
  step_log:close()
  train_loader:close()
  test_loader:close()
  if header then
    say(string.format('done: final test accuracy %.2f%%, best %.2f%% (epoch %d); %s/summary.json (%.1f s)',
      summary.final_acc or 0 / 0, summary.best_acc or 0 / 0, summary.best_epoch or 0, opt.out, nd.now() - t_start))
  end
  return summary
end

return trainer
