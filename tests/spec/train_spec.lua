-- scripts/train.lua, scripts/reproduce.lua and their scripts/lib helpers: option parsing,
-- --help, clear errors for bad input (unknown model or dataset, missing or truncated data, a
-- checkpoint of another model), JSON, the PNG plots, the progress display, and a run killed
-- with SIGKILL mid-epoch then resumed giving exactly the losses of an uninterrupted run.
-- Trainings use the generated `--dataset synthetic` (no download). Run from the repository root.
package.path = 'lua/?.lua;lua/?/init.lua;./?.lua;./?/init.lua;' .. package.path
package.cpath = (os.getenv('ND_BUILD') or 'build') .. '/lib/?.so;' .. package.cpath
local nd = require('nd')

local ND = os.getenv('ND_BIN') or ((os.getenv('ND_BUILD') or 'build') .. '/bin/nd')

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function slurp(path)
  local f = io.open(path, 'rb')
  if not f then return nil end
  local s = f:read('a')
  f:close()
  return s
end

local function tmpdir()
  local base = os.tmpname()
  os.remove(base)
  assert(os.execute('mkdir -p ' .. quote(base)))
  return base
end

local function rmrf(dir) os.execute('rm -rf ' .. quote(dir)) end

-- Runs `nd <script> <args>`; returns stdout, stderr, exit code (a signal gives 128 + n).
local function run(script, argstr, env)
  local err = os.tmpname()
  local p = assert(io.popen((env or '') .. ' ' .. ND .. ' ' .. script .. ' ' .. (argstr or '') .. ' 2>' .. err, 'r'))
  local out = p:read('a')
  local _, how, code = p:close()
  local errout = slurp(err) or ''
  os.remove(err)
  if how == 'signal' then code = 128 + code end
  return out, errout, code
end
local function train(argstr, env) return run('scripts/train.lua', argstr, env) end

local function read_tsv(path)
  local f = assert(io.open(path, 'r'))
  local header = f:read('l')
  local rows = {}
  for line in f:lines() do rows[#rows + 1] = line end
  f:close()
  return header, rows
end

describe('scripts/lib/args', function()
  local args = require('scripts.lib.args')
  local p = args.parser{prog = 't', options = {
    {'batch-size', 'integer', 128, 'images per step'},
    {'lr', 'number', 0.1, 'rate'},
    {'norm', {'bn', 'deconv'}, 'deconv', 'norm'},
    {'augment', 'boolean', nil, 'augment'},
    {'out', 'string', nil, 'dir', 'DIR'},
  }}

  it('fills defaults and converts values, camelCase keys', function()
    local opt, given = p:parse({'--batch-size', '64', '--lr=0.5', '--norm', 'bn', '--augment'})
    assert.are.equal(64, opt.batchSize)
    assert.are.equal('integer', math.type(opt.batchSize))
    assert.are.equal(0.5, opt.lr)
    assert.are.equal('bn', opt.norm)
    assert.is_true(opt.augment)
    assert.is_nil(opt.out)
    assert.is_true(given.batchSize)
    assert.is_nil(given.out)
    local d = p:parse({})
    assert.are.equal(128, d.batchSize)
    assert.are.equal('deconv', d.norm)
    assert.is_false(p:parse({'--no-augment'}).augment)
    assert.is_false(p:parse({'--augment=false'}).augment)
    assert.are.equal(7, p:parse({'--batch_size', '7'}).batchSize)
  end)

  it('returns nil for --help and -h', function()
    assert.is_nil(p:parse({'--lr', '1', '--help'}))
    assert.is_nil(p:parse({'-h'}))
    local h = p:help()
    assert.truthy(h:find('--batch-size N', 1, true))
    assert.truthy(h:find('--out DIR', 1, true))
    assert.truthy(h:find('bn|deconv', 1, true))
    assert.truthy(h:find('default: 128', 1, true))
  end)

  it('raises usage errors with clear messages', function()
    local function err(argv)
      local ok, e = pcall(p.parse, p, argv)
      assert.is_false(ok)
      assert.is_true(args.is_usage_error(e))
      return tostring(e)
    end
    assert.truthy(err({'--batchsize', '3'}):find('unknown option --batchsize (did you mean --batch-size?)', 1, true))
    assert.truthy(err({'--lr', 'fast'}):find("--lr expects a number, got 'fast'", 1, true))
    assert.truthy(err({'--batch-size', '1.5'}):find('expects an integer', 1, true))
    assert.truthy(err({'--norm', 'gn'}):find("--norm must be one of bn, deconv, got 'gn'", 1, true))
    assert.truthy(err({'--lr'}):find('--lr needs a value', 1, true))
    assert.truthy(err({'stray'}):find("unexpected argument 'stray'", 1, true))
    assert.truthy(err({'-x'}):find('unknown option -x', 1, true))
  end)

  it('converts between flag and key names', function()
    assert.are.equal('blockFc', args.key('block-fc'))
    assert.are.equal('block-fc', args.flag('blockFc'))
  end)
end)

describe('scripts/lib/json', function()
  local json = require('scripts.lib.json')
  it('round-trips nested values', function()
    local v = {a = 1, b = {1, 2.5, 'x\n"y"'}, c = {}, d = true, e = -0.125, f = 'caf\u{e9}'}
    local back = json.decode(json.encode(v, {indent = '  '}))
    assert.are.same(v, back)
    assert.are.equal('integer', math.type(back.a))
    assert.are.equal('{"a":[1,2],"b":null}', json.encode({a = {1, 2}, b = json.null}))
    assert.are.equal('null', json.encode(0 / 0))
  end)
  it('reports syntax errors with a position', function()
    local ok, e = pcall(json.decode, '{"a": [1, 2}')
    assert.is_false(ok)
    assert.truthy(e:find('line 1', 1, true))
  end)
end)

describe('scripts/lib/plot', function()
  local plot = require('scripts.lib.plot')
  it('writes a valid PNG of the figure size with coloured curves', function()
    local dir = tmpdir()
    local path = dir .. '/c.png'
    local x, y = {}, {}
    for i = 1, 50 do x[i], y[i] = i, 2 * math.exp(-i / 10) end
    plot.save(path, {
      {title = 'loss', xlabel = 'iteration', logy = true, series = {{name = 'a', x = x, y = y}}},
      {title = 'acc', series = {{name = 'b', x = {1, 2, 3}, y = {50, 60, 0 / 0}}}},
    }, {cols = 2, width = 300, height = 200, title = 'test'})
    local bytes = slurp(path)
    assert.are.equal('\137PNG\r\n\26\n', bytes:sub(1, 8))
    local img = nd.core.png_read(path)
    assert.are.same({3, 234, 600}, img:size():totable())
    -- the first series colour (palette 1) is somewhere in the image
    local c = plot.palette[1]
    local r, g, b = img[1]:eq(c[1]), img[2]:eq(c[2]), img[3]:eq(c[3])
    assert.is_true(r:cmul(g):cmul(b):sum() > 20)
    rmrf(dir)
  end)
  it('picks round tick values', function()
    local t = plot.ticks(0, 1, 5)
    assert.are.same({0, 0.2, 0.4, 0.6, 0.8, 1.0}, (function()
      local r = {}
      for i, v in ipairs(t) do r[i] = math.floor(v * 10 + 0.5) / 10 end
      return r
    end)())
    assert.are.equal('0.25', plot.label(0.25, 0.05))
    assert.are.equal('1e-5', plot.glabel(1e-5))
    assert.are.equal('0.02', plot.glabel(0.02))
  end)
end)

describe('scripts/lib/progress', function()
  local progress = require('scripts.lib.progress')
  it('prints plain lines every N steps when not on a terminal', function()
    local lines = {}
    local out = {write = function(_, ...) for _, s in ipairs {...} do lines[#lines + 1] = s end end, flush = function() end}
    local t = 0
    local bar = progress.new{total = 10, label = 'epoch 1/2', mode = 'lines', every = 5, out = out,
                             clock = function() return t end}
    for i = 1, 10 do
      t = i
      bar:update(i, {loss = 1 / i, acc = 10 * i, ips = 100})
    end
    bar:finish()
    local text = table.concat(lines)
    assert.are.equal(2, select(2, text:gsub('\n', '')))
    assert.truthy(text:find('epoch 1/2 step 5/10 (50%) eta 0:05 loss 0.2000 acc 50.0% 100 img/s', 1, true))
    assert.truthy(text:find('step 10/10 (100%) eta 0:00', 1, true))
  end)
  it('redraws one line with \\r on a terminal', function()
    local buf = {}
    local out = {write = function(_, ...) for _, s in ipairs {...} do buf[#buf + 1] = s end end, flush = function() end}
    local t = 0
    local bar = progress.new{total = 4, mode = 'bar', out = out, clock = function() return t end}
    for i = 1, 4 do t = t + 1; bar:update(i, {loss = 0.5}) end
    bar:finish()
    local text = table.concat(buf)
    assert.truthy(text:find('\r', 1, true))
    assert.truthy(text:find('4/4', 1, true))
    assert.are.equal('\n', text:sub(-1))
    assert.are.equal('1:15', progress.duration(75))
    assert.are.equal('1:01:40', progress.duration(3700))
  end)
end)

describe('scripts/train.lua', function()
  it('--help prints the options and exits 0', function()
    local out, _, code = train('--help')
    assert.are.equal(0, code)
    for _, o in ipairs {'--model', '--norm', '--dataset', '--epochs', '--batch-size', '--lr', '--wd', '--momentum',
                        '--schedule', '--block', '--block-fc', '--stride', '--iters', '--eps', '--seed', '--threads',
                        '--device', '--resume', '--out'} do
      assert.truthy(out:find(o .. ' ', 1, true), o)
    end
  end)

  it('answers bad options and inputs with clear errors (exit 2)', function()
    local cases = {
      {'--model nosuchnet --dataset synthetic', "unknown model 'nosuchnet' (known: vgg11"},
      {'--dataset imagenette', "--dataset must be one of cifar10, cifar100, mnist, fashion-mnist, synthetic, got 'imagenette'"},
      {'--lr fast', "--lr expects a number, got 'fast'"},
      {'--batchsize 3', 'did you mean --batch-size?'},
      {'--model mlp --dataset synthetic --epochs 0', '--epochs must be positive'},
      {'--resume /nonexistent/run', 'no checkpoint at /nonexistent/run'},
    }
    if not (nd.cuda and nd.cuda.available and nd.cuda.available()) then
      cases[#cases + 1] = {'--model mlp --dataset synthetic --device cuda', 'no usable GPU'}
    end
    for _, c in ipairs(cases) do
      local out, err, code = train(c[1])
      assert.are.equal(2, code, c[1] .. ': ' .. err)
      assert.are.equal('train.lua: error: ', err:sub(1, 18), c[1] .. ' -> ' .. err)
      assert.truthy(err:find(c[2], 1, true), c[1] .. ' -> ' .. err)
      assert.falsy(err:find('traceback', 1, true))
      assert.falsy(out:find('epoch', 1, true))
    end
  end)

  it('says how to get a missing dataset and rejects a truncated data file', function()
    local dir = tmpdir()
    local _, err, code = train('--model mlp --dataset mnist', 'ND_DATA_DIR=' .. quote(dir))
    assert.are.equal(2, code)
    assert.truthy(err:find('dataset mnist not found in ' .. dir .. '/mnist', 1, true), err)
    assert.truthy(err:find('data/get.sh mnist', 1, true), err)
    -- a truncated IDX image file (the header promises 100 images, 10 are there)
    local data = require('data')
    os.execute('mkdir -p ' .. quote(dir .. '/mnist'))
    local imgs = nd.core.empty('uint8', {100, 28, 28})
    nd.core.fill(imgs, 7)
    local labels = nd.core.empty('uint8', {100})
    nd.core.fill(labels, 1)
    for _, split in ipairs {'train', 't10k'} do
      data.write_idx(dir .. '/mnist/' .. split .. '-images-idx3-ubyte', imgs)
      data.write_idx(dir .. '/mnist/' .. split .. '-labels-idx1-ubyte', labels)
    end
    local full = slurp(dir .. '/mnist/train-images-idx3-ubyte')
    local f = assert(io.open(dir .. '/mnist/train-images-idx3-ubyte', 'wb'))
    f:write(full:sub(1, 16 + 10 * 784))
    f:close()
    _, err, code = train('--model mlp --dataset mnist', 'ND_DATA_DIR=' .. quote(dir))
    assert.are.equal(2, code)
    assert.truthy(err:find('train-images-idx3-ubyte', 1, true), err)
    assert.truthy(err:lower():find('truncated', 1, true), err)
    rmrf(dir)
  end)

  describe('a run on the synthetic data', function()
    local dir, base
    local common = '--model mlp --norm bn --dataset synthetic --train-size 512 --test-size 128 --batch-size 32 ' ..
                   '--quiet --threads 1'
    setup(function()
      dir = tmpdir()
      base = dir .. '/straight'
    end)
    teardown(function() rmrf(dir) end)

    it('writes options, logs, checkpoint, summary and curves; the loss falls', function()
      local out, err, code = train(common .. ' --epochs 2 --out ' .. base)
      assert.are.equal(0, code, err)
      assert.truthy(out:find('epoch 2/2', 1, true))
      local json = require('scripts.lib.json')
      local o = json.read(base .. '/options.json')
      assert.are.equal('mlp', o.model)
      assert.are.equal(32, o['batch-size'])
      assert.are.equal(0, o['block-fc'])
      local s = json.read(base .. '/summary.json')
      assert.is_true(s.finished)
      assert.are.equal(2, s.epochs_done)
      assert.are.equal(32, s.iterations)
      assert.is_true(s.best_acc >= s.final_acc)
      assert.is_true(s.history[2].train_loss < s.history[1].train_loss)
      local header, rows = read_tsv(base .. '/log.tsv')
      assert.are.equal('epoch\titeration\tlr\ttrain_loss\ttrain_acc\ttest_loss\ttest_acc\ttime\timages_per_s', header)
      assert.are.equal(2, #rows)
      local _, steps = read_tsv(base .. '/steps.tsv')
      assert.are.equal(32, #steps)
      -- cosine per iteration: lr_t = 0.05 (1 + cos(pi t / 32))
      local lr2 = tonumber(steps[2]:match('^%d+\t%d+\t([^\t]+)'))
      assert.is_true(math.abs(lr2 - 0.05 * (1 + math.cos(math.pi / 32))) < 1e-6)
      assert.are.equal('\137PNG', slurp(base .. '/curves.png'):sub(1, 4))
      local ck = nd.load(base .. '/checkpoint.nd')
      assert.are.equal('nd.train.checkpoint', ck.format)
      assert.are.equal(2, ck.epoch)
      assert.are.equal(32, ck.iteration)
      assert.is_not_nil(ck.optimState.dfdx)
      assert.is_not_nil(ck.rng)
    end)

    it('continues after SIGKILL mid-epoch with the losses of the uninterrupted run', function()
      local killed = dir .. '/killed'
      -- 16 steps per epoch: killed at global step 22, i.e. in epoch 2, after the epoch-1 checkpoint
      local _, err, code = train(common .. ' --epochs 2 --out ' .. killed .. ' --kill-at-step 22')
      assert.are.equal(137, code, err)
      local _, partial = read_tsv(killed .. '/steps.tsv')
      assert.are.equal(22, #partial)
      local out
      out, err, code = train('--resume ' .. killed .. ' --quiet')
      assert.are.equal(0, code, err)
      assert.falsy(out:find('epoch 1/2', 1, true))
      assert.truthy(out:find('epoch 2/2', 1, true))
      local _, a = read_tsv(base .. '/steps.tsv')
      local _, b = read_tsv(killed .. '/steps.tsv')
      assert.are.equal(#a, #b)
      for i = 17, #a do assert.are.equal(a[i], b[i], 'step ' .. i) end
      local _, la = read_tsv(base .. '/log.tsv')
      local _, lb = read_tsv(killed .. '/log.tsv')
      assert.are.equal(2, #lb)
      for i = 1, 2 do
        -- all but the timing columns
        assert.are.equal(la[i]:match('^(.-\t.-\t.-\t.-\t.-\t.-\t.-)\t'), lb[i]:match('^(.-\t.-\t.-\t.-\t.-\t.-\t.-)\t'))
      end
      -- the final weights are bit for bit those of the straight run
      local pa = nd.load(base .. '/checkpoint.nd').model:getParameters()
      local pb = nd.load(killed .. '/checkpoint.nd').model:getParameters()
      assert.are.equal(0, (pa - pb):abs():max())
    end)

    it('refuses a checkpoint of another model and options that differ from it', function()
      local _, err, code = train('--resume ' .. base .. ' --model linear')
      assert.are.equal(2, code)
      assert.truthy(err:find('is a checkpoint of mlp bn on synthetic, not --model linear', 1, true), err)
      _, err, code = train('--resume ' .. base .. ' --lr 0.5')
      assert.are.equal(2, code)
      assert.truthy(err:find("--lr 0.5 differs from the checkpoint's 0.1", 1, true), err)
      -- a file that is an nd file but not a checkpoint, and a damaged checkpoint
      nd.save(dir .. '/other.nd', {weights = nd.zeros(3)})
      _, err, code = train('--resume ' .. dir .. '/other.nd')
      assert.are.equal(2, code)
      assert.truthy(err:find('is not a training checkpoint', 1, true), err)
      local bytes = slurp(base .. '/checkpoint.nd')
      local f = assert(io.open(dir .. '/cut.nd', 'wb'))
      f:write(bytes:sub(1, #bytes // 2))
      f:close()
      _, err, code = train('--resume ' .. dir .. '/cut.nd')
      assert.are.equal(2, code)
      assert.truthy(err:find('cannot read the checkpoint', 1, true), err)
      -- the checkpoint module compares parameter shapes of two models
      local checkpoint = require('scripts.lib.checkpoint')
      local nn = require('nn')
      local a = nn.Sequential():add(nn.Linear(4, 3))
      local b = nn.Sequential():add(nn.Linear(5, 3))
      assert.is_nil(checkpoint.mismatch(a, a:clone()))
      assert.truthy(checkpoint.mismatch(a, b):find('parameter tensor 1 is 3x4', 1, true))
    end)

    it('tells reproduce.lua which runs are done, partial or stale', function()
      local reproduce = require('scripts.lib.reproduce')
      local trainer = require('scripts.lib.trainer')
      local json = require('scripts.lib.json')
      local opt = trainer.options_from_json(json.read(base .. '/options.json'))
      opt.out = base
      assert.are.equal('done', (reproduce.status(opt)))
      opt.lr = 0.05
      local st, _, key = reproduce.status(opt)
      assert.are.equal('stale', st)
      assert.are.equal('lr', key)
      local part = dir .. '/part'
      local _, err, code = train(common .. ' --epochs 3 --out ' .. part .. ' --kill-at-step 20')
      assert.are.equal(137, code, err)
      opt = trainer.options_from_json(json.read(part .. '/options.json'))
      opt.out = part
      assert.are.equal('partial', (reproduce.status(opt)))
      opt.out = dir .. '/nothing'
      assert.are.equal('todo', (reproduce.status(opt)))
    end)

    it('trains with the L2 loss and a constant rate', function()
      local out, err, code = train('--model linear --norm none --dataset synthetic --train-size 256 --test-size 64 ' ..
        '--batch-size 32 --epochs 2 --loss l2 --lr 0.001 --momentum 0 --wd 0 --schedule constant --quiet --out ' ..
        dir .. '/l2')
      assert.are.equal(0, code, err)
      local s = require('scripts.lib.json').read(dir .. '/l2/summary.json')
      assert.is_true(s.history[2].train_loss < s.history[1].train_loss, out)
      local _, steps = read_tsv(dir .. '/l2/steps.tsv')
      for _, l in ipairs(steps) do assert.are.equal('0.001', l:match('^%d+\t%d+\t([^\t]+)')) end
    end)
  end)
end)

describe('scripts/reproduce.lua', function()
  it('--dry-run lists the runs of fig4 with their command lines', function()
    local dir = tmpdir()
    local out, err, code = run('scripts/reproduce.lua', 'fig4 --dry-run --results ' .. quote(dir))
    assert.are.equal(0, code, err)
    assert.truthy(out:find('todo', 1, true))
    assert.truthy(out:find('--model linear --norm deconv --dataset fashion-mnist', 1, true), out)
    assert.truthy(out:find('--model mlp --norm bn --dataset mnist', 1, true), out)
    assert.truthy(out:find('--out ' .. dir .. '/runs/fig4/', 1, true), out)
    out, err, code = run('scripts/reproduce.lua', 'table1-cifar10 --dry-run --results ' .. quote(dir))
    assert.are.equal(0, code, err)
    assert.truthy(out:find('--model vgg11 --norm deconv --dataset cifar10 --epochs 20', 1, true), out)
    assert.truthy(out:find('--model densenet121 --norm bn --dataset cifar10 --epochs 20', 1, true), out)
    rmrf(dir)
  end)
  it('refuses an unknown set', function()
    local _, err, code = run('scripts/reproduce.lua', 'table9')
    assert.are.equal(2, code)
    assert.truthy(err:find("unknown set 'table9' (known: fig4, table1-cifar10", 1, true), err)
  end)
  it('writes a report with our numbers beside the paper\'s', function()
    local report = require('scripts.lib.report')
    local sets = require('scripts.lib.sets')
    local set = sets.get('table1-cifar10')
    local results = {['vgg11-deconv'] = {summary = {finished = true, final_acc = 90.5, best_acc = 90.9, epochs = 20,
      epochs_done = 20, train_time_s = 100, history = {{epoch = 1, test_acc = 70}, {epoch = 2, test_acc = 80}}}}}
    local dir = tmpdir()
    local md, text = report.write(set, results, dir)
    assert.truthy(md:find('| VGG-11 | DC | 90.50 | 90.90 | 91.33 | 90.23 | - | 20/20 | 100 |', 1, true), md)
    assert.truthy(md:find('| VGG-11 | BN (not run) | - | - | 89.15 |', 1, true), md)
    assert.truthy(text:find('VGG-11', 1, true))
    assert.are.equal('\137PNG', slurp(dir .. '/table1-cifar10.png'):sub(1, 4))
    rmrf(dir)
    -- the fig4 verdict: deconvolution must have the lowest loss and the best accuracy
    local fig4 = sets.get('fig4')
    local res = {}
    for _, g in ipairs(fig4.groups) do
      for _, r in ipairs(g.runs) do
        local dc = r.opt.norm == 'deconv' or r.opt.norm == 'cd'
        res[r.name] = {summary = {finished = true, final_train_loss = dc and 0.1 or 0.3, final_acc = dc and 95 or 90}}
      end
    end
    for _, v in ipairs(report.verdict(fig4, res)) do assert.is_true(v.ok, v.title) end
    assert.are.equal(0.5, report.loss_at({{loss = 1}, {loss = 0.5}}, 2))
  end)
end)
