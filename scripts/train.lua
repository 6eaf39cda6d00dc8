-- Trains one network: nd scripts/train.lua --model vgg11 --norm deconv --dataset cifar10 [...]
-- `--help` lists the options; scripts/lib/trainer.lua does the work and documents the run
-- directory (options.json, log.tsv, steps.tsv, checkpoint.nd, summary.json, curves.png).
-- Exit status: 0 done, 1 a failure during the run, 2 bad options or input.
local args = require('scripts.lib.args')
local trainer = require('scripts.lib.trainer')

local parser = trainer.parser('nd scripts/train.lua')

local function fail(msg, code)
  io.stdout:flush()
  io.stderr:write('train.lua: error: ', msg, '\n')
  os.exit(code or 2)
end

local ok, opt, given = pcall(parser.parse, parser, arg)
if not ok then fail(tostring(opt)) end
if opt == nil then
  print(parser:help())
  os.exit(0)
end

local ok2, err = xpcall(trainer.run, function(e)
  if args.is_usage_error(e) then return e end
  if type(e) == 'string' and not e:find('\n') and not e:find('%.lua:%d+:') then return {message = e, plain = true} end
  return debug.traceback(tostring(e), 2)
end, opt, given)
if not ok2 then
  if type(err) == 'table' and err.usage then fail(err.message, 2) end
  if type(err) == 'table' and err.plain then fail(err.message, 1) end
  fail(tostring(err), 1)
end
