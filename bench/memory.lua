-- Makes 100,000 tensors of 1 MB each (zero-filled, so the pages are touched) in a loop and
-- prints the peak resident size: the collector must free them as it goes.
-- Usage: build/bin/nd bench/memory.lua [--count 100000]
local nd = require('nd')
local bench = require('bench.common')
local o = bench.options({count = 100000})
local t0 = nd.now()
for _ = 1, o.count do local _ = nd.zeros(262144) end
local f = io.open('/proc/self/status')
local status = f:read('a')
f:close()
local hwm = tonumber(status:match('VmHWM:%s*(%d+)')) / 1024
print(string.format('%d tensors of 1 MB in %.1f s: peak resident %.0f MB (limit 300 MB) %s', o.count, nd.now() - t0, hwm,
  hwm < 300 and 'OK' or 'OVER'))
