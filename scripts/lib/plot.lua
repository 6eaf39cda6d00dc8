-- Line charts drawn into an RGB image and written as PNG (libpng, through nd's core.png_write).
--
--   local plot = require('scripts.lib.plot')
--   plot.save('curves.png', {                       -- one panel per entry, laid out in `cols`
--     {title = 'loss', xlabel = 'epoch', logy = true,
--      series = {{name = 'train', x = {...}, y = {...}}, {name = 'test', x = ..., y = ...}}},
--     {title = 'accuracy (%)', series = {...}},
--   }, {cols = 2, width = 560, height = 380, title = 'vgg11 deconv cifar10'})
--
-- A series may give `color` ({r, g, b}); otherwise colours come from plot.palette in order.
-- Points that are nil, NaN, infinite (or <= 0 on a log axis) break the line. Panel options:
-- xmin, xmax, ymin, ymax (fixed ranges), logy, legend ('tr' top right, 'br', 'tl', 'bl', false).
-- plot.canvas(w, h) gives the drawing surface itself (set, rect, line, text, tensor, save).
local nd = require('nd')
local font = require('scripts.lib.font')

local plot = {}

plot.palette = {
  {31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40}, {148, 103, 189},
  {140, 86, 75}, {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207},
}
local BLACK, GRID, WHITE, FRAME = {0, 0, 0}, {225, 225, 225}, {255, 255, 255}, {90, 90, 90}

-- ---- the canvas ----

local Canvas = {}
Canvas.__index = Canvas

function plot.canvas(w, h, bg)
  bg = bg or WHITE
  local px = {}
  local r, g, b = bg[1], bg[2], bg[3]
  for i = 0, w * h - 1 do
    px[3 * i + 1], px[3 * i + 2], px[3 * i + 3] = r, g, b
  end
  return setmetatable({w = w, h = h, px = px, clip = nil}, Canvas)
end

function Canvas:set(x, y, c)
  x, y = math.floor(x + 0.5), math.floor(y + 0.5)
  local cl = self.clip
  if cl then
    if x < cl[1] or x > cl[3] or y < cl[2] or y > cl[4] then return end
  end
  if x < 0 or y < 0 or x >= self.w or y >= self.h then return end
  local i = 3 * (y * self.w + x)
  local px = self.px
  px[i + 1], px[i + 2], px[i + 3] = c[1], c[2], c[3]
end

function Canvas:rect(x0, y0, x1, y1, c)
  for y = math.floor(y0), math.floor(y1) do
    for x = math.floor(x0), math.floor(x1) do self:set(x, y, c) end
  end
end

function Canvas:hline(x0, x1, y, c) for x = math.floor(x0), math.floor(x1) do self:set(x, y, c) end end
function Canvas:vline(x, y0, y1, c) for y = math.floor(y0), math.floor(y1) do self:set(x, y, c) end end

-- A line of thickness `thick` (pixels); `dash` = {on, off} lengths in pixels for a dashed line.
function Canvas:line(x0, y0, x1, y1, c, thick, dash)
  thick = thick or 1
  local dx, dy = x1 - x0, y1 - y0
  local len = math.sqrt(dx * dx + dy * dy)
  local n = math.max(1, math.ceil(len * 2))
  local lo, hi = -((thick - 1) // 2), thick // 2
  for k = 0, n do
    local t = k / n
    local draw = true
    if dash then
      local d = (self._dashpos or 0) + t * len
      draw = d % (dash[1] + dash[2]) < dash[1]
    end
    if draw then
      local x, y = x0 + t * dx, y0 + t * dy
      for oy = lo, hi do
        for ox = lo, hi do self:set(x + ox, y + oy, c) end
      end
    end
  end
  if dash then self._dashpos = (self._dashpos or 0) + len end
end

-- Text with its top-left corner at (x, y); scale multiplies the 5x7 glyphs.
function Canvas:text(x, y, s, c, scale)
  scale = scale or 1
  c = c or BLACK
  for i = 1, #s do
    local rows = font.glyph(s:sub(i, i))
    local gx = x + (i - 1) * font.ADVANCE * scale
    for r = 1, font.H do
      local row = rows[r]
      for col = 1, font.W do
        if row:byte(col) == 35 then -- '#'
          if scale == 1 then self:set(gx + col - 1, y + r - 1, c)
          else self:rect(gx + (col - 1) * scale, y + (r - 1) * scale, gx + col * scale - 1, y + r * scale - 1, c) end
        end
      end
    end
  end
end

-- Text drawn bottom to top (rotated 90 degrees), its left end at the bottom (x, y).
function Canvas:vtext(x, y, s, c, scale)
  scale = scale or 1
  c = c or BLACK
  for i = 1, #s do
    local rows = font.glyph(s:sub(i, i))
    local gy = y - (i - 1) * font.ADVANCE * scale
    for r = 1, font.H do
      local row = rows[r]
      for col = 1, font.W do
        if row:byte(col) == 35 then
          self:rect(x + (r - 1) * scale, gy - col * scale + 1, x + r * scale - 1, gy - (col - 1) * scale, c)
        end
      end
    end
  end
end

-- The image as a uint8 3 x H x W tensor.
function Canvas:tensor()
  local parts, px, n = {}, self.px, #self.px
  local chunk = 4096
  for i = 1, n, chunk do
    parts[#parts + 1] = string.char(table.unpack(px, i, math.min(n, i + chunk - 1)))
  end
  local hwc = nd.core.frombytes(nd.core.empty('uint8', {self.h, self.w, 3}), table.concat(parts))
  return hwc:permute(3, 1, 2):contiguous()
end

function Canvas:save(path)
  local ok, err = pcall(nd.core.png_write, path, self:tensor())
  if not ok then error('plot: cannot write ' .. path .. ': ' .. tostring(err), 2) end
  return path
end

-- ---- axes ----

local function finite(v) return type(v) == 'number' and v == v and v ~= math.huge and v ~= -math.huge end

-- Tick values covering [lo, hi] at 1, 2 or 5 times a power of ten, about n of them.
function plot.ticks(lo, hi, n)
  n = n or 5
  if hi <= lo then hi = lo + 1 end
  local raw = (hi - lo) / n
  local p = 10 ^ math.floor(math.log(raw, 10))
  local step
  for _, m in ipairs {1, 2, 2.5, 5, 10} do
    step = m * p
    if step >= raw then break end
  end
  local t = {}
  local first = math.ceil(lo / step - 1e-9) * step
  for v = first, hi + step * 1e-9, step do t[#t + 1] = math.abs(v) < step * 1e-9 and 0 or v end
  return t, step
end

-- A short label for a tick value.
function plot.label(v, step)
  if v == 0 then return '0' end
  local a = math.abs(v)
  if a >= 1e5 or a < 1e-3 then
    local s = string.format('%.0e', v)
    return (s:gsub('e%+?(%-?)0*(%d)', 'e%1%2'))
  end
  local decimals = 0
  if step and step < 1 then decimals = math.min(6, math.ceil(-math.log(step, 10) - 1e-9)) end
  if step and step < 1 and step * 10 ^ decimals % 1 > 1e-6 then decimals = decimals + 1 end
  local s = string.format('%.' .. decimals .. 'f', v)
  return s
end

-- A short label for a value on a log axis (%g without a '+' or leading zeros in the exponent).
function plot.glabel(v)
  local s = string.format('%.3g', v)
  return (s:gsub('e%+?(%-?)0*(%d)', 'e%1%2'))
end

local function range_of(spec, axis, logy)
  local lo, hi = math.huge, -math.huge
  for _, s in ipairs(spec.series or {}) do
    for _, v in pairs(s[axis] or {}) do
      if finite(v) and (axis ~= 'y' or not logy or v > 0) then
        if v < lo then lo = v end
        if v > hi then hi = v end
      end
    end
  end
  if lo > hi then return nil end
  return lo, hi
end

-- Draws one chart (axes, grid, ticks, series, legend) into the box (x, y, w, h) of canvas cv.
function plot.chart(cv, x, y, w, h, spec)
  local logy = spec.logy
  local title_h = spec.title and 22 or 6
  local left, right, bottom = 62, 20, spec.xlabel and 34 or 22
  local px0, py0 = x + left, y + title_h
  local pw, ph = w - left - right, h - title_h - bottom
  if spec.title then
    cv:text(x + left + (pw - font.width(spec.title, 2)) / 2, y + 4, spec.title, BLACK, 2)
  end
  -- data ranges
  local xlo, xhi = range_of(spec, 'x')
  local ylo, yhi = range_of(spec, 'y', logy)
  xlo, xhi = spec.xmin or xlo or 0, spec.xmax or xhi or 1
  ylo, yhi = spec.ymin or ylo or (logy and 0.1 or 0), spec.ymax or yhi or 1
  if xhi <= xlo then xhi = xlo + 1 end
  local ty = function(v) return v end
  if logy then
    ylo, yhi = math.log(math.max(ylo, 1e-30), 10), math.log(math.max(yhi, 1e-30), 10)
    if yhi - ylo < 0.3 then
      local mid = (yhi + ylo) / 2
      ylo, yhi = mid - 0.15, mid + 0.15
    end
    ty = function(v) return math.log(v, 10) end
  elseif yhi <= ylo then
    ylo, yhi = ylo - 0.5, yhi + 0.5
  else
    local pad = (yhi - ylo) * 0.04
    if not spec.ymin then ylo = ylo - pad end
    if not spec.ymax then yhi = yhi + pad end
  end
  local function X(v) return px0 + (v - xlo) / (xhi - xlo) * (pw - 1) end
  local function Y(v) return py0 + ph - 1 - (ty(v) - ylo) / (yhi - ylo) * (ph - 1) end
  -- grid and ticks
  local xt, xstep = plot.ticks(xlo, xhi, math.max(2, pw // 90))
  for _, v in ipairs(xt) do
    local gx = X(v)
    cv:vline(gx, py0, py0 + ph - 1, GRID)
    cv:vline(gx, py0 + ph, py0 + ph + 3, FRAME)
    local s = plot.label(v, xstep)
    cv:text(gx - font.width(s) / 2, py0 + ph + 6, s, BLACK)
  end
  local yticks = {}
  if logy then
    local e0, e1 = math.floor(ylo), math.ceil(yhi)
    local decades = e1 - e0
    for e = e0, e1 do
      for _, m in ipairs(yhi - ylo <= 2.2 and {1, 2, 5} or {1}) do
        local lv = e + math.log(m, 10)
        if lv >= ylo - 1e-9 and lv <= yhi + 1e-9 then yticks[#yticks + 1] = {10 ^ lv, m == 1} end
      end
    end
    if decades > 6 then
      local thin = {}
      for i, t in ipairs(yticks) do if i % 2 == 1 then thin[#thin + 1] = t end end
      yticks = thin
    end
  else
    local t, step = plot.ticks(ylo, yhi, math.max(2, ph // 60))
    for _, v in ipairs(t) do yticks[#yticks + 1] = {v, true, step} end
  end
  for _, t in ipairs(yticks) do
    local gy = Y(t[1])
    cv:hline(px0, px0 + pw - 1, gy, GRID)
    cv:hline(px0 - 4, px0 - 1, gy, FRAME)
    local s = logy and plot.glabel(t[1]) or plot.label(t[1], t[3])
    cv:text(px0 - 7 - font.width(s), gy - 3, s, BLACK)
  end
  -- frame
  cv:hline(px0 - 1, px0 + pw, py0 - 1, FRAME)
  cv:hline(px0 - 1, px0 + pw, py0 + ph, FRAME)
  cv:vline(px0 - 1, py0 - 1, py0 + ph, FRAME)
  cv:vline(px0 + pw, py0 - 1, py0 + ph, FRAME)
  if spec.xlabel then
    cv:text(px0 + (pw - font.width(spec.xlabel)) / 2, py0 + ph + 20, spec.xlabel, BLACK)
  end
  if spec.ylabel then
    cv:vtext(x + 4, py0 + (ph + font.width(spec.ylabel)) / 2, spec.ylabel, BLACK)
  end
  -- series
  cv.clip = {px0, py0, px0 + pw - 1, py0 + ph - 1}
  for i, s in ipairs(spec.series or {}) do
    local c = s.color or plot.palette[(i - 1) % #plot.palette + 1]
    s._color = c
    local xs, ys = s.x or {}, s.y or {}
    local n = math.max(#xs, #ys)
    local prev
    cv._dashpos = 0
    local single = 0
    for k = 1, n do
      local xv, yv = xs[k], ys[k]
      if finite(xv) and finite(yv) and (not logy or yv > 0) then
        local p = {X(xv), Y(yv)}
        if prev then cv:line(prev[1], prev[2], p[1], p[2], c, s.thick or 2, s.dash) end
        prev = p
        single = single + 1
      else
        prev = nil
      end
    end
    if single == 1 or s.markers then
      for k = 1, n do
        local xv, yv = xs[k], ys[k]
        if finite(xv) and finite(yv) and (not logy or yv > 0) then cv:rect(X(xv) - 2, Y(yv) - 2, X(xv) + 2, Y(yv) + 2, c) end
      end
    end
  end
  cv.clip = nil
  -- legend
  local where = spec.legend
  if where == nil then where = 'tr' end
  local series = spec.series or {}
  if where and #series > 0 then
    local tw = 0
    for _, s in ipairs(series) do tw = math.max(tw, font.width(s.name or '')) end
    local lw, lh = tw + 34, #series * 13 + 8
    local lx = where:find('l') and px0 + 8 or px0 + pw - lw - 8
    local ly = where:find('b') and py0 + ph - lh - 8 or py0 + 8
    cv:rect(lx, ly, lx + lw, ly + lh, WHITE)
    cv:hline(lx, lx + lw, ly, FRAME)
    cv:hline(lx, lx + lw, ly + lh, FRAME)
    cv:vline(lx, ly, ly + lh, FRAME)
    cv:vline(lx + lw, ly, ly + lh, FRAME)
    for i, s in ipairs(series) do
      local sy = ly + 6 + (i - 1) * 13
      cv._dashpos = 0
      cv:line(lx + 6, sy + 3, lx + 24, sy + 3, s._color, 3, s.dash)
      cv:text(lx + 29, sy, s.name or '', BLACK)
    end
  end
end

-- Draws panels (chart specs) in a grid and returns the canvas.
function plot.figure(panels, opts)
  opts = opts or {}
  local cols = math.min(opts.cols or 2, #panels)
  local rows = math.ceil(#panels / math.max(cols, 1))
  local w, h = opts.width or 560, opts.height or 380
  local top = opts.title and 34 or 0
  local cv = plot.canvas(math.max(1, cols) * w, math.max(1, rows) * h + top)
  if opts.title then cv:text((cv.w - font.width(opts.title, 2)) / 2, 8, opts.title, BLACK, 2) end
  for i, spec in ipairs(panels) do
    local r, c = (i - 1) // cols, (i - 1) % cols
    plot.chart(cv, c * w, top + r * h, w, h, spec)
  end
  return cv
end

function plot.save(path, panels, opts)
  return plot.figure(panels, opts):save(path)
end

return plot
