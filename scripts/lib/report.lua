-- The results page of a reproduction set: results/<set>.md with our numbers beside the paper's,
-- and the curves as PNG next to it (results/<set>.png).
--
--   local report = require('scripts.lib.report')
--   local md, tables = report.build(set, results)   -- results[run.name] = {summary =, steps =,
--                                                   --   error =} (missing: not run yet)
--   report.write(set, results, dir)                 -- writes dir/<set>.md and the PNG (when there
--                                                   -- are curves); returns the markdown, the
--                                                   -- plain-text tables, the .md and .png paths
local plot = require('scripts.lib.plot')

local report = {}

local function fmt(v, f)
  if v == nil then return '-' end
  if type(v) ~= 'number' then return tostring(v) end
  if v ~= v then return 'nan' end
  return string.format(f or '%.4f', v)
end

-- Mean of the batch losses of steps (k - w + 1 .. k), w = max(1, k // 10).
function report.loss_at(steps, k)
  if not steps or #steps == 0 then return nil end
  if k > #steps then return nil end
  local w = math.max(1, k // 10)
  local s, n = 0, 0
  for i = k - w + 1, k do
    local v = steps[i] and steps[i].loss
    if v then s, n = s + v, n + 1 end
  end
  return n > 0 and s / n or nil
end

-- A centred moving average with window w (odd), for readable curves.
function report.smooth(ys, w)
  if w <= 1 then return ys end
  local h = w // 2
  local out = {}
  for i = 1, #ys do
    local s, n = 0, 0
    for j = math.max(1, i - h), math.min(#ys, i + h) do
      local v = ys[j]
      if v == v and v ~= math.huge then s, n = s + v, n + 1 end
    end
    out[i] = n > 0 and s / n or 0 / 0
  end
  return out
end

local function status_of(r)
  if not r then return 'not run' end
  if r.error then return 'failed: ' .. r.error end
  if not r.summary then return 'not run' end
  if not r.summary.finished then
    return string.format('partial (%d/%d epochs)', r.summary.epochs_done or 0, r.summary.epochs or 0)
  end
  return nil
end

-- Marks the best value of each numeric column (lowest when lower is better) in bold.
local function bold_best(rows, cols)
  for _, c in ipairs(cols) do
    local best, bi
    for i, row in ipairs(rows) do
      local v = row._num[c.key]
      if v and v == v then
        if not best or (c.lower and v < best) or (not c.lower and v > best) then best, bi = v, i end
      end
    end
    if bi then rows[bi][c.key] = '**' .. rows[bi][c.key] .. '**' end
  end
end

local function md_table(header, rows)
  local out = {'| ' .. table.concat(header, ' | ') .. ' |', '|' .. string.rep('---|', #header)}
  for _, r in ipairs(rows) do out[#out + 1] = '| ' .. table.concat(r, ' | ') .. ' |' end
  return table.concat(out, '\n')
end

-- A plain-text table (for the terminal).
local function text_table(header, rows)
  local w = {}
  for i, h in ipairs(header) do w[i] = #h end
  for _, r in ipairs(rows) do
    for i, c in ipairs(r) do w[i] = math.max(w[i] or 0, #(tostring(c):gsub('%*%*', ''))) end
  end
  local function line(r)
    local cells = {}
    for i, c in ipairs(r) do
      local s = tostring(c):gsub('%*%*', '')
      if tostring(c):find('%*%*') then s = s .. ' *' end
      cells[i] = s .. string.rep(' ', w[i] + 2 - #s)
    end
    return '  ' .. table.concat(cells, ' ')
  end
  local out = {line(header)}
  local sep = {}
  for i = 1, #header do sep[i] = string.rep('-', w[i]) end
  out[#out + 1] = line(sep)
  for _, r in ipairs(rows) do out[#out + 1] = line(r) end
  return table.concat(out, '\n')
end

local function curves_rows(group, results)
  -- checkpoints: step 5, 50, 200 and the last step of the longest run
  local longest = 0
  for _, run in ipairs(group.runs) do
    local r = results[run.name]
    if r and r.steps then longest = math.max(longest, #r.steps) end
  end
  local ks = {}
  for _, k in ipairs {5, 50, 200} do if k < longest then ks[#ks + 1] = k end end
  local header = {'run', 'lr'}
  local cols = {}
  for _, k in ipairs(ks) do
    header[#header + 1] = 'loss @' .. k
    cols[#cols + 1] = {key = 'k' .. k, lower = true}
  end
  for _, h in ipairs {'final train loss', 'test loss', 'test acc %', 'time s'} do header[#header + 1] = h end
  cols[#cols + 1] = {key = 'final', lower = true}
  cols[#cols + 1] = {key = 'tloss', lower = true}
  cols[#cols + 1] = {key = 'tacc', lower = false}
  local rows = {}
  for _, run in ipairs(group.runs) do
    local r = results[run.name]
    local s = r and r.summary
    local row = {label = run.label, lr = string.format('%g', run.opt.lr), _num = {}}
    local st = status_of(r)
    for _, k in ipairs(ks) do
      local v = r and report.loss_at(r.steps, k)
      row._num['k' .. k] = v
      row['k' .. k] = fmt(v)
    end
    row._num.final, row.final = s and s.final_train_loss, fmt(s and s.final_train_loss)
    row._num.tloss, row.tloss = s and s.final_test_loss, fmt(s and s.final_test_loss)
    row._num.tacc, row.tacc = s and s.final_acc, fmt(s and s.final_acc, '%.2f')
    row.time = fmt(s and s.train_time_s, '%.1f')
    if st then row.label = run.label .. ' (' .. st .. ')' end
    rows[#rows + 1] = row
  end
  bold_best(rows, cols)
  local out = {}
  for _, row in ipairs(rows) do
    local cells = {row.label, row.lr}
    for _, k in ipairs(ks) do cells[#cells + 1] = row['k' .. k] end
    for _, c in ipairs {'final', 'tloss', 'tacc', 'time'} do cells[#cells + 1] = row[c] end
    out[#out + 1] = cells
  end
  return header, out
end

local function accuracy_rows(group, results)
  local header = {'model', 'norm', 'ours final %', 'ours best %', 'paper %', 'paper CD %', 'camera-ready %', 'epochs', 'time s'}
  local out = {}
  for _, run in ipairs(group.runs) do
    local r = results[run.name]
    local s = r and r.summary
    local st = status_of(r)
    out[#out + 1] = {
      run.model or run.label, (run.norm == 'deconv' and 'DC' or run.norm == 'bn' and 'BN' or tostring(run.norm)) ..
        (st and (' (' .. st .. ')') or ''),
      fmt(s and s.final_acc, '%.2f'), fmt(s and s.best_acc, '%.2f'), fmt(run.paper, '%.2f'), fmt(run.paper_cd, '%.2f'),
      fmt(run.camera, '%.2f'), s and string.format('%d/%d', s.epochs_done or 0, s.epochs or 0) or '-',
      fmt(s and s.train_time_s, '%.0f'),
    }
  end
  return header, out
end

-- One panel per group: training loss per step (curves) or test accuracy per epoch (accuracy).
function report.panels(set, results)
  local panels = {}
  for _, g in ipairs(set.groups) do
    local series = {}
    if g.kind == 'curves' then
      for _, run in ipairs(g.runs) do
        local r = results[run.name]
        -- a diverged run is reported in the table, not drawn: its losses would flatten the axis
        if r and r.steps and #r.steps > 0 and not r.error and r.summary and r.summary.finished then
          local xs, ys = {}, {}
          for i, st in ipairs(r.steps) do xs[i], ys[i] = st.iteration, st.loss end
          local w = math.max(1, #ys // 100)
          if w % 2 == 0 then w = w + 1 end
          series[#series + 1] = {name = run.label, x = xs, y = report.smooth(ys, w)}
        end
      end
      panels[#panels + 1] = {title = g.title, xlabel = 'iteration', logy = true, series = series}
    else
      for _, run in ipairs(g.runs) do
        local r = results[run.name]
        local h = r and r.summary and r.summary.history
        if h and #h > 0 then
          local xs, ys = {}, {}
          for i, e in ipairs(h) do xs[i], ys[i] = e.epoch, e.test_acc end
          series[#series + 1] = {name = run.label, x = xs, y = ys, markers = #h < 30,
                                 dash = run.norm == 'bn' and {6, 4} or nil}
        end
      end
      panels[#panels + 1] = {title = g.title .. ' (%)', xlabel = 'epoch', legend = 'br', series = series}
    end
  end
  return panels
end

-- For each group: whether the deconvolution run (norm deconv or cd) has the best final training
-- loss and test accuracy among the finished runs. -> {{title =, ok =, text =}, ...}
function report.verdict(set, results)
  local out = {}
  for _, g in ipairs(set.groups) do
    local dc, best_loss, best_acc, n = nil, math.huge, -math.huge, 0
    for _, run in ipairs(g.runs) do
      local r = results[run.name]
      local s = r and r.summary
      if s and s.finished then
        n = n + 1
        local is_dc = run.opt.norm == 'deconv' or run.opt.norm == 'cd'
        if is_dc then dc = s end
        if not is_dc then
          best_loss = math.min(best_loss, s.final_train_loss or math.huge)
          best_acc = math.max(best_acc, s.final_acc or -math.huge)
        end
      end
    end
    local v = {title = g.title}
    if not dc or n < 2 then
      v.ok, v.text = nil, 'not enough finished runs to compare'
    else
      local loss_ok = (dc.final_train_loss or math.huge) < best_loss
      local acc_ok = (dc.final_acc or -1) > best_acc
      v.ok = loss_ok and acc_ok
      v.text = string.format('deconvolution: train loss %.4f vs best other %.4f, test acc %.2f%% vs %.2f%%',
        dc.final_train_loss or 0 / 0, best_loss, dc.final_acc or 0 / 0, best_acc)
    end
    out[#out + 1] = v
  end
  return out
end

function report.build(set, results, meta)
  meta = meta or {}
  local md = {'# ' .. set.title, ''}
  for _, a in ipairs(set.about or {}) do
    md[#md + 1] = a
    md[#md + 1] = ''
  end
  if set.runnable == false then
    md[#md + 1] = '**Not run here:** ' .. (set.why or '')
    md[#md + 1] = ''
  end
  if meta.generated then md[#md + 1] = meta.generated; md[#md + 1] = '' end
  local has_curves = false
  for _, g in ipairs(set.groups) do if g.kind == 'curves' then has_curves = true end end
  if has_curves then
    md[#md + 1] = 'Columns: loss @k = mean batch training loss over the k/10 steps up to step k; final train loss = ' ..
      'mean over the last epoch; test loss and accuracy on the whole test set after the last epoch (evaluation ' ..
      'mode); time = training time of the run. Bold: the best of each column.'
    md[#md + 1] = ''
  end
  local texts = {}
  for _, g in ipairs(set.groups) do
    local header, rows
    if g.kind == 'curves' then header, rows = curves_rows(g, results) else header, rows = accuracy_rows(g, results) end
    md[#md + 1] = '## ' .. g.title
    md[#md + 1] = ''
    if g.paper then md[#md + 1] = 'Paper: ' .. g.paper .. '.'; md[#md + 1] = '' end
    md[#md + 1] = md_table(header, rows)
    md[#md + 1] = ''
    texts[#texts + 1] = g.title .. '\n' .. text_table(header, rows)
  end
  if meta.png then
    md[#md + 1] = string.format('![%s](%s)', set.name, meta.png)
    md[#md + 1] = ''
    md[#md + 1] = meta.png_caption or ''
    md[#md + 1] = ''
  end
  md[#md + 1] = 'Commands (each run: `nd scripts/train.lua` with these options; `nd scripts/reproduce.lua ' ..
    set.name .. '` runs them all, skipping finished ones):'
  md[#md + 1] = ''
  md[#md + 1] = '```'
  for _, g in ipairs(set.groups) do
    for _, run in ipairs(g.runs) do
      md[#md + 1] = string.format('%-26s %s', run.name, run.command or '')
    end
  end
  md[#md + 1] = '```'
  md[#md + 1] = ''
  return table.concat(md, '\n'), table.concat(texts, '\n\n')
end

function report.write(set, results, dir, meta)
  meta = meta or {}
  local png = set.name .. '.png'
  local panels = report.panels(set, results)
  local any = false
  for _, p in ipairs(panels) do if #p.series > 0 then any = true end end
  if any then
    plot.save(dir .. '/' .. png, panels, {cols = math.min(3, #panels), width = 520, height = 380, title = set.name})
    meta.png = png
    meta.png_caption = set.groups[1].kind == 'curves' and
      'Training loss per iteration (batch loss, a centred moving average over ~1% of the steps), log scale.' or
      'Test accuracy after each epoch (dashed: batch norm).'
  end
  local md, text = report.build(set, results, meta)
  local path = dir .. '/' .. set.name .. '.md'
  local tmp = path .. '.tmp'
  local f = assert(io.open(tmp, 'w'))
  f:write(md)
  f:close()
  assert(os.rename(tmp, path))
  return md, text, path, meta.png and (dir .. '/' .. meta.png) or nil
end

return report
