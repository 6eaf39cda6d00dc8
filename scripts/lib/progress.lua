-- A progress display for loops of known length: on a terminal one line redrawn with \r
--   epoch 3/20 [=========>          ] 120/391 0:12<0:27 loss 0.5234 acc 81.2% 1234 img/s
-- otherwise (a pipe, a log file) one plain line every `every` steps and at the end:
--   epoch 3/20 step 120/391 (31%) eta 0:27 loss 0.5234 acc 81.2% 1234 img/s
--
--   local progress = require('scripts.lib.progress')
--   local bar = progress.new{total = 391, label = 'epoch 3/20', mode = 'auto', every = 40}
--   bar:update(i, {loss = 0.52, acc = 81.2, ips = 1234})     -- any of the fields
--   bar:finish()                                              -- ends the line (terminal)
--
-- mode: 'auto' (bar on a terminal, lines otherwise), 'bar', 'lines', 'none'. every defaults to
-- a tenth of total. out defaults to io.stdout; clock to nd.now (seconds).
local progress = {}

local tty_cache
-- Whether stdout is a terminal (asks the shell once). ND_PROGRESS=bar|lines|none overrides the
-- 'auto' mode.
function progress.isatty()
  if tty_cache == nil then
    local ok = os.execute('test -t 1')
    tty_cache = ok == true
  end
  return tty_cache
end

-- 75 -> '1:15', 3700 -> '1:01:40'
function progress.duration(s)
  if s == nil or s ~= s or s == math.huge or s < 0 then return '?' end
  s = math.floor(s + 0.5)
  local h, m, sec = s // 3600, (s % 3600) // 60, s % 60
  if h > 0 then return string.format('%d:%02d:%02d', h, m, sec) end
  return string.format('%d:%02d', m, sec)
end

local Bar = {}
Bar.__index = Bar

function progress.new(o)
  o = o or {}
  local mode = o.mode or os.getenv('ND_PROGRESS') or 'auto'
  if mode == 'auto' then mode = progress.isatty() and 'bar' or 'lines' end
  local total = o.total or 0
  local clock = o.clock or (nd and nd.now) or os.clock
  local self = setmetatable({
    total = total, label = o.label or '', mode = mode, out = o.out or io.stdout, clock = clock,
    every = o.every or math.max(1, total // 10), width = tonumber(os.getenv('COLUMNS')) or 100,
    t0 = clock(), i = 0, last_draw = -1, drawn = false,
  }, Bar)
  return self
end

local function suffix(stats)
  if not stats then return '' end
  local parts = {}
  if stats.loss then parts[#parts + 1] = string.format('loss %.4f', stats.loss) end
  if stats.acc then parts[#parts + 1] = string.format('acc %.1f%%', stats.acc) end
  if stats.ips then parts[#parts + 1] = string.format('%.0f img/s', stats.ips) end
  if stats.lr then parts[#parts + 1] = string.format('lr %.3g', stats.lr) end
  if stats.extra then parts[#parts + 1] = stats.extra end
  return table.concat(parts, ' ')
end
progress.suffix = suffix

function Bar:eta(i)
  local el = self.clock() - self.t0
  if i <= 0 then return el, nil end
  return el, el / i * (self.total - i)
end

function Bar:update(i, stats)
  self.i = i
  self.stats = stats
  if self.mode == 'none' then return end
  local el, eta = self:eta(i)
  if self.mode == 'bar' then
    local now = self.clock()
    -- redraw at most 10 times a second, and always on the last step
    if i < self.total and self.last_draw >= 0 and now - self.last_draw < 0.1 then return end
    self.last_draw = now
    local right = string.format(' %d/%d %s<%s %s', i, self.total, progress.duration(el), progress.duration(eta), suffix(stats))
    local left = self.label ~= '' and (self.label .. ' ') or ''
    local room = self.width - #left - #right - 3
    local bar = ''
    if room >= 10 then
      room = math.min(room, 40)
      local fill = self.total > 0 and math.floor(room * i / self.total) or 0
      bar = '[' .. string.rep('=', math.max(0, fill - 1)) .. (fill > 0 and (i >= self.total and '=' or '>') or '') ..
            string.rep(' ', room - fill) .. ']'
    end
    local line = left .. bar .. right
    if #line > self.width - 1 then line = line:sub(1, self.width - 1) end
    self.out:write('\r', line, string.rep(' ', math.max(0, (self.drawn_len or 0) - #line)))
    self.drawn_len = #line
    self.drawn = true
    self.out:flush()
  else
    if i % self.every ~= 0 and i ~= self.total then return end
    if i == self.last_draw then return end
    self.last_draw = i
    local pct = self.total > 0 and (100 * i / self.total) or 0
    self.out:write(string.format('%s%sstep %d/%d (%.0f%%) eta %s %s\n', self.label, self.label ~= '' and ' ' or '',
      i, self.total, pct, progress.duration(eta), suffix(stats)))
    self.out:flush()
  end
end

-- Ends the bar's line (terminal mode); prints `line` after it when given.
function Bar:finish(line)
  if self.mode == 'bar' and self.drawn then self.out:write('\n') end
  if line then self.out:write(line, '\n') end
  self.out:flush()
end

return progress
