-- Reproduces a named set of the paper's experiments and writes results/<set>.md (our numbers
-- beside the paper's) with the curves as results/<set>.png.
--
--   nd scripts/reproduce.lua fig4                 the Fig. 4 experiments (minutes on a CPU)
--   nd scripts/reproduce.lua table1-cifar10 --dry-run
--   nd scripts/reproduce.lua --list
--
-- Each run trains with scripts/train.lua's code into results/runs/<set>/<run>/; a finished run
-- (summary.json says so, with the same options) is skipped, an interrupted one resumes from its
-- checkpoint. The sets are defined in scripts/lib/sets.lua.
local args = require('scripts.lib.args')
local reproduce = require('scripts.lib.reproduce')

local ok, res = pcall(reproduce.main, arg)
if not ok then
  io.stdout:flush()
  if args.is_usage_error(res) then
    io.stderr:write('reproduce.lua: error: ', res.message, '\n')
    os.exit(2)
  end
  io.stderr:write('reproduce.lua: error: ', tostring(res), '\n')
  os.exit(1)
end
os.exit(res and 0 or 1)
