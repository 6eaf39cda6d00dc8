-- The driver of scripts/reproduce.lua (and of make demo): runs a named set of experiments,
-- skipping finished runs and resuming interrupted ones, then writes the report.
--
--   local reproduce = require('scripts.lib.reproduce')
--   local ok = reproduce.main({'fig4', '--dry-run'}, {print = print})   -- false when a run failed
--
-- Usage errors (unknown set, bad option) are raised as args.UsageError objects.
local nd = require('nd')
local args = require('scripts.lib.args')
local json = require('scripts.lib.json')
local trainer = require('scripts.lib.trainer')
local sets = require('scripts.lib.sets')
local report = require('scripts.lib.report')
local checkpoint = require('scripts.lib.checkpoint')
local progress = require('scripts.lib.progress')

local reproduce = {}

reproduce.parser = args.parser{
  prog = 'nd scripts/reproduce.lua',
  positional = 'SET',
  summary = 'Runs a named set of the paper\'s experiments, skipping finished runs, and writes\n' ..
    'results/<set>.md with our numbers beside the paper\'s and results/<set>.png. Sets: ' ..
    table.concat(sets.order, ', ') .. '.',
  options = {
    {'dry-run', 'boolean', false, 'print the runs (status and command line) and exit'},
    {'list', 'boolean', false, 'list the sets and exit'},
    {'only', 'string', nil, 'run only the runs whose name contains this text', 'TEXT'},
    {'force', 'boolean', false, 'rerun finished runs from scratch'},
    {'report-only', 'boolean', false, 'write the report from the runs already there, run nothing'},
    {'results', 'string', 'results', 'where the reports go (runs under <results>/runs/<set>/)', 'DIR'},
    {'threads', 'integer', nil, 'CPU threads (default: all cores)'},
    {'device', {'cpu', 'cuda'}, 'cpu', 'where to train'},
    {'progress', {'auto', 'bar', 'lines', 'none'}, nil, 'progress display of each run (default: a bar on a ' ..
      'terminal, nothing otherwise)'},
  },
  epilog = 'examples:\n  nd scripts/reproduce.lua fig4\n  nd scripts/reproduce.lua table1-cifar10 --dry-run\n' ..
    '  nd scripts/reproduce.lua table1-cifar10 --only vgg11',
}

local function exists(path)
  local f = io.open(path, 'rb')
  if f then f:close() return true end
  return false
end

-- The full option table of a run (train.lua's defaults, then the set's options).
function reproduce.run_options(set, run, ropt)
  local opt = trainer.defaults()
  for k, v in pairs(run.opt) do opt[k] = v end
  opt.out = string.format('%s/runs/%s/%s', ropt.results, set.name, run.name)
  opt.quiet = false
  opt.threads = ropt.threads
  opt.device = ropt.device or 'cpu'
  opt.progress = ropt.progress or (progress.isatty() and 'bar' or 'none')
  return opt
end

-- Compares the options that matter (not the free-on-resume ones) of two option JSON tables.
local function same_options(a, b)
  for _, t in ipairs {{a, b}, {b, a}} do
    for k, v in pairs(t[1]) do
      local key = args.key(k)
      if not trainer.free_on_resume[key] and t[2][k] ~= v then return false, k end
    end
  end
  return true
end

-- 'done' | 'partial' | 'todo' | 'stale' and the summary when there is one.
function reproduce.status(opt)
  local spath = opt.out .. '/summary.json'
  local summary
  if exists(spath) then
    local ok, s = pcall(json.read, spath)
    if ok then summary = s end
  end
  local want = trainer.options_json(trainer.resolve(setmetatable({}, {__index = opt})))
  if summary then
    local same, key = same_options(summary.options or {}, want)
    if not same then return 'stale', summary, key end
    if summary.finished then return 'done', summary end
  end
  if exists(opt.out .. '/' .. checkpoint.NAME) then return 'partial', summary end
  return 'todo', summary
end

local function read_steps(dir)
  local path = dir .. '/steps.tsv'
  if not exists(path) then return nil end
  local ok, _, rows = pcall(require('optim').Logger.read, path)
  if not ok then return nil end
  local steps = {}
  for _, r in ipairs(rows) do steps[#steps + 1] = {iteration = r.iteration, loss = r.loss} end
  return steps
end

-- Collects what is on disk for every run of the set.
function reproduce.collect(set, ropt)
  local results = {}
  for _, g in ipairs(set.groups) do
    for _, run in ipairs(g.runs) do
      local opt = reproduce.run_options(set, run, ropt)
      run.command = 'nd scripts/train.lua ' .. trainer.command_line(opt) .. ' --out ' .. opt.out
      local r = {}
      local spath = opt.out .. '/summary.json'
      if exists(spath) then
        local ok, s = pcall(json.read, spath)
        if ok then r.summary = s end
      end
      r.steps = read_steps(opt.out)
      results[run.name] = r
    end
  end
  return results
end

local function machine()
  local cpu
  local f = io.open('/proc/cpuinfo', 'r')
  if f then
    for line in f:lines() do
      cpu = line:match('^model name%s*:%s*(.-)%s*$')
      if cpu then break end
    end
    f:close()
  end
  return string.format('%s, %d threads', cpu or 'unknown CPU', nd.getnumthreads())
end

function reproduce.main(argv, hooks)
  hooks = hooks or {}
  local say = hooks.print or print
  local ropt = reproduce.parser:parse(argv)
  if ropt == nil then
    say(reproduce.parser:help())
    return true
  end
  if ropt.list then
    for _, name in ipairs(sets.order) do say(string.format('%-16s %s', name, sets.get(name).title)) end
    return true
  end
  local name = ropt._positional[1]
  if not name then args.usage_error('which set? (one of %s; see --help)', table.concat(sets.order, ', ')) end
  if #ropt._positional > 1 then args.usage_error('one set at a time, got %d', #ropt._positional) end
  local set = sets.get(name)
  if not set then args.usage_error("unknown set '%s' (known: %s)", name, table.concat(sets.order, ', ')) end
  if ropt.threads then nd.setnumthreads(ropt.threads) end
  local t_start = nd.now()

  -- the runs
  local todo = {}
  local all = {}
  for _, g in ipairs(set.groups) do
    for _, run in ipairs(g.runs) do
      local opt = reproduce.run_options(set, run, ropt)
      run.command = 'nd scripts/train.lua ' .. trainer.command_line(opt) .. ' --out ' .. opt.out
      local selected = not ropt.only or run.name:find(ropt.only, 1, true) ~= nil
      local status, _, key = 'todo', nil, nil
      if set.runnable ~= false then status, _, key = reproduce.status(opt) end
      if ropt.force and status ~= 'todo' then status = 'stale' end
      all[#all + 1] = {run = run, opt = opt, status = status, key = key, selected = selected}
      if selected and status ~= 'done' then todo[#todo + 1] = all[#all] end
    end
  end

  if ropt.dryRun or set.runnable == false then
    say(string.format('%s: %s', set.name, set.title))
    if set.runnable == false then say('not runnable here: ' .. set.why) end
    for i, e in ipairs(all) do
      local st = e.selected and e.status or 'skipped (--only)'
      if e.status == 'stale' and e.key then st = st .. ' (--' .. e.key .. ' changed)' end
      say(string.format('[%d/%d] %-8s %s', i, #all, st, e.run.name))
      say('        ' .. e.run.command)
    end
    if set.runnable == false and not ropt.dryRun then
      trainer.mkdir(ropt.results)
      local _, _, path = report.write(set, reproduce.collect(set, ropt), ropt.results,
        {generated = 'Listed by `nd scripts/reproduce.lua ' .. set.name .. '` on ' .. os.date('%Y-%m-%d') .. '.'})
      say('wrote ' .. path)
    end
    return true
  end

  -- train
  local failures = {}
  local hard_failure = false -- a run failed for another reason than a diverging loss
  if not ropt.reportOnly then
    local n = 0
    for _, e in ipairs(todo) do
      n = n + 1
      local opt = e.opt
      local given = {}
      if e.status == 'stale' then
        os.remove(opt.out .. '/' .. checkpoint.NAME)
        os.remove(opt.out .. '/summary.json')
        say(string.format('[%d/%d] %s: rerunning from scratch (%s)', n, #todo, e.run.name,
          e.key and ('--' .. e.key .. ' changed') or '--force'))
      elseif e.status == 'partial' then
        opt.resume = opt.out
        say(string.format('[%d/%d] %s: resuming from its checkpoint', n, #todo, e.run.name))
      else
        say(string.format('[%d/%d] %s: %s', n, #todo, e.run.name, e.run.command))
      end
      local t0 = nd.now()
      local ok, err = pcall(trainer.run, opt, given, {header = false, prefix = '  ', print = say})
      collectgarbage()
      if ok then
        say(string.format('  done in %.1f s: test accuracy %.2f%%', nd.now() - t0, err.final_acc or 0 / 0))
      else
        local msg = args.is_usage_error(err) and err.message or tostring(err)
        failures[e.run.name] = msg:gsub('\n.*', '')
        -- a diverging loss is a result of the experiment (e.g. batch norm at lr 1), not a failure
        if not msg:match('diverged') then hard_failure = true end
        say('  failed: ' .. msg)
      end
    end
    if #todo == 0 then say(string.format('%s: all %d runs finished already', set.name, #all)) end
  end

  -- report
  trainer.mkdir(ropt.results)
  local results = reproduce.collect(set, ropt)
  for nm, msg in pairs(failures) do
    results[nm] = results[nm] or {}
    if not (results[nm].summary and results[nm].summary.finished) then results[nm].error = msg end
  end
  local train_time, finished = 0, 0
  for _, r in pairs(results) do
    if r.summary and r.summary.finished then
      finished = finished + 1
      train_time = train_time + (r.summary.train_time_s or 0)
    end
  end
  local gen = string.format('Generated by `nd scripts/reproduce.lua %s` on %s (%s, nd %s): %d of %d runs finished, ' ..
    '%.0f s of training in all.', set.name, os.date('%Y-%m-%d'), machine(), tostring(nd.version), finished, #all, train_time)
  local _, text, path, png = report.write(set, results, ropt.results, {generated = gen})
  say('')
  say(text)
  say('')
  say(string.format('wrote %s%s (%.1f s)', path, png and (' and ' .. png) or '', nd.now() - t_start))
  return not hard_failure
end

return reproduce
