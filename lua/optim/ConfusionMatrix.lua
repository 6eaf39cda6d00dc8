-- optim.ConfusionMatrix(nclasses | classes [, classes | opts]): counts of (target, prediction)
-- pairs for classification, with Torch7's fields and printing plus top-k accuracy.
--
--   local cm = optim.ConfusionMatrix({'cat', 'dog', 'bird'})   -- or (10), or (10, names)
--   cm:batchAdd(outputs, targets)   -- outputs B x n scores (or B predicted classes), targets B
--                                   -- 1-based labels (int64 or float tensor, a list, or B x n one-hot)
--   cm:add(prediction, target)      -- a class index or a 1-d score tensor; a class index or one-hot
--   cm:updateValids()               -- fills totalValid, averageValid, valids, ... (also done by print)
--   print(cm); cm:topk(5); cm:zero()
--
-- Fields: nclasses, classes, mat (n x n int64, mat[target][prediction]), valids (per-class
-- accuracy, float64, nan for classes never seen as a target), unionvalids (the VOC measure
-- TP / (TP + FP + FN)), totalValid (top-1 accuracy over all samples), averageValid and
-- averageUnionValid (means over the classes seen). Fractions in [0, 1]; 0 when nothing was added.
-- Top-k: every scored sample (batchAdd with B x n scores, add with a score tensor) counts as correct
-- at k when fewer than k classes score strictly higher than the target (ties count for the
-- target); opts.topk lists the k to count (default {5}); cm:topk(1) is totalValid.
-- The matrix is an nd.class, so it can be saved with nd.save.
local nd = require('nd')
local core = nd.core

local CM = nd.class('optim.ConfusionMatrix')

function CM:__init(a, b)
  local classes, opts
  if type(a) == 'table' then
    classes, opts = a, b
  elseif math.type(a) == 'integer' and a >= 1 then
    if type(b) == 'table' and b[1] ~= nil then classes = b else opts = b end
  else
    error('optim.ConfusionMatrix: expected a number of classes or a list of class names, got ' .. tostring(a), 3)
  end
  local n = math.type(a) == 'integer' and a or #classes
  if n < 1 then error('optim.ConfusionMatrix: needs at least one class', 3) end
  opts = opts or {}
  self.nclasses = n
  self.classes = {}
  if classes then for i = 1, n do self.classes[i] = tostring(classes[i] or i) end end
  self.mat = core.zeros('int64', {n, n})
  self.valids = core.zeros('float64', {n})
  self.unionvalids = core.zeros('float64', {n})
  self.totalValid, self.averageValid, self.averageUnionValid = 0, 0, 0
  self.ks = {}
  for _, k in ipairs(opts.topk or {5}) do
    if math.type(k) ~= 'integer' or k < 1 then error('optim.ConfusionMatrix: topk entries must be positive integers', 3) end
    if k > 1 then self.ks[#self.ks + 1] = k end
  end
  self.topkCorrect = {}
  for _, k in ipairs(self.ks) do self.topkCorrect[k] = 0 end
  self.topkTotal = 0
end

function CM:zero()
  self.mat:zero()
  self.valids:zero()
  self.unionvalids:zero()
  self.totalValid, self.averageValid, self.averageUnionValid = 0, 0, 0
  for _, k in ipairs(self.ks) do self.topkCorrect[k] = 0 end
  self.topkTotal = 0
  return self
end

-- ---- helpers ----

local function cpu(t)
  if core.device(t) ~= 'cpu' then return core.clone(t, core.dtype(t), 'cpu') end
  return t
end

-- Index of the largest value in flat[first .. first + n - 1], 1-based within the row (the lowest
-- index among ties; NaN never wins).
local function argmax(flat, first, n)
  local best, bi = nil, 1
  for j = 0, n - 1 do
    local v = flat[first + j]
    if v == v and (best == nil or v > best) then best, bi = v, j + 1 end
  end
  return bi
end

function CM:_class(v, what)
  local i = math.tointeger(v)
  if not i or i < 1 or i > self.nclasses then
    error(string.format('optim.ConfusionMatrix: %s %s is not a class in 1..%d', what, tostring(v), self.nclasses), 3)
  end
  return i
end

function CM:_count(target, pred)
  core.setelem(self.mat, core.get(self.mat, target, pred) + 1, target, pred)
end

-- Top-k counters for one row of scores (flat[first .. first + n - 1]) and its target.
function CM:_rank(flat, first, target)
  local n = self.nclasses
  local st = flat[first + target - 1]
  local above = 0
  if st ~= st then
    above = n
  else
    for j = 0, n - 1 do if flat[first + j] > st then above = above + 1 end end
  end
  for _, k in ipairs(self.ks) do
    if above < k then self.topkCorrect[k] = self.topkCorrect[k] + 1 end
  end
  self.topkTotal = self.topkTotal + 1
end

-- A list of B 1-based target classes from a tensor (1-d labels or B x n one-hot) or a list.
function CM:_targets(targets, B)
  local list
  if nd.isTensor(targets) then
    targets = cpu(targets)
    local flat = core.toflat(targets)
    if targets:dim() == 2 then
      if targets:size(2) ~= self.nclasses then
        error(string.format('optim.ConfusionMatrix: one-hot targets have %d columns for %d classes',
          targets:size(2), self.nclasses), 3)
      end
      list = {}
      for i = 1, targets:size(1) do list[i] = argmax(flat, (i - 1) * self.nclasses + 1, self.nclasses) end
    else
      list = flat
    end
  elseif type(targets) == 'table' then
    list = targets
  else
    error('optim.ConfusionMatrix:batchAdd: targets must be a tensor or a list, got ' .. type(targets), 3)
  end
  if #list ~= B then
    error(string.format('optim.ConfusionMatrix:batchAdd: %d outputs but %d targets', B, #list), 3)
  end
  return list
end

-- ---- adding ----

function CM:add(prediction, target)
  local n = self.nclasses
  if nd.isTensor(target) then
    local flat = core.toflat(cpu(target))
    target = #flat == 1 and flat[1] or argmax(flat, 1, #flat)
  end
  target = self:_class(target, 'target')
  if nd.isTensor(prediction) then
    local flat = core.toflat(cpu(prediction))
    if #flat == 1 then
      prediction = flat[1]
    else
      if #flat ~= n then
        error(string.format('optim.ConfusionMatrix:add: %d scores for %d classes', #flat, n), 2)
      end
      prediction = argmax(flat, 1, n)
      self:_rank(flat, 1, target)
    end
  end
  self:_count(target, self:_class(prediction, 'prediction'))
  return self
end

function CM:batchAdd(outputs, targets)
  local n = self.nclasses
  if not nd.isTensor(outputs) then
    error('optim.ConfusionMatrix:batchAdd: outputs must be a tensor, got ' .. type(outputs), 2)
  end
  outputs = cpu(outputs)
  local flat = core.toflat(outputs)
  if outputs:dim() == 1 then                            -- predicted classes
    local list = self:_targets(targets, #flat)
    for i = 1, #flat do self:_count(self:_class(list[i], 'target'), self:_class(flat[i], 'prediction')) end
  elseif outputs:dim() == 2 then                        -- scores
    if outputs:size(2) ~= n then
      error(string.format('optim.ConfusionMatrix:batchAdd: outputs %s have %d scores per row for %d classes',
        nd.shape(outputs), outputs:size(2), n), 2)
    end
    local B = outputs:size(1)
    local list = self:_targets(targets, B)
    for i = 1, B do
      local first = (i - 1) * n + 1
      local t = self:_class(list[i], 'target')
      self:_count(t, argmax(flat, first, n))
      self:_rank(flat, first, t)
    end
  else
    error('optim.ConfusionMatrix:batchAdd: outputs must be 1-d (classes) or 2-d (scores), got ' .. nd.shape(outputs), 2)
  end
  return self
end

-- ---- results ----

function CM:updateValids()
  local n = self.nclasses
  local m = core.toflat(self.mat)
  local rows, cols, total, correct = {}, {}, 0, 0
  for i = 1, n do rows[i], cols[i] = 0, 0 end
  for t = 1, n do
    for p = 1, n do
      local c = m[(t - 1) * n + p]
      rows[t] = rows[t] + c
      cols[p] = cols[p] + c
    end
  end
  local seen, sumv, sumu = 0, 0, 0
  for i = 1, n do
    local tp = m[(i - 1) * n + i]
    total, correct = total + rows[i], correct + tp
    local v, u = 0 / 0, 0 / 0
    if rows[i] > 0 then
      v, u = tp / rows[i], tp / (rows[i] + cols[i] - tp)
      seen, sumv, sumu = seen + 1, sumv + v, sumu + u
    end
    core.setelem(self.valids, v, i)
    core.setelem(self.unionvalids, u, i)
  end
  self.totalValid = total > 0 and correct / total or 0
  self.averageValid = seen > 0 and sumv / seen or 0
  self.averageUnionValid = seen > 0 and sumu / seen or 0
  self.total = total
  return self
end

-- Top-k accuracy (a fraction) over the scored samples; k = 1 is totalValid.
function CM:topk(k)
  if k == 1 then self:updateValids(); return self.totalValid end
  local c = self.topkCorrect[k]
  if c == nil then
    if k >= self.nclasses and self.topkTotal > 0 then return 1 end
    error(string.format('optim.ConfusionMatrix:topk: top-%s is not counted (pass {topk = {...}} when creating the matrix)',
      tostring(k)), 2)
  end
  return self.topkTotal > 0 and c / self.topkTotal or 0
end

local function pct(x)
  if x ~= x then return '    n/a' end
  return string.format('%6.2f%%', 100 * x)
end

function CM:__tostring__()
  self:updateValids()
  local n = self.nclasses
  local m = core.toflat(self.mat)
  local lines = {string.format('ConfusionMatrix (%d classes, %d samples; rows: targets, columns: predictions):',
    n, self.total)}
  local names = self.classes
  if n <= 20 then
    local w = 1
    for i = 1, #m do w = math.max(w, #tostring(m[i])) end
    local fmt = '%' .. (w + 1) .. 'd'
    for t = 1, n do
      local cells = {}
      for p = 1, n do cells[p] = string.format(fmt, m[(t - 1) * n + p]) end
      local open = t == 1 and '[[' or ' ['
      local close = t == n and ']]' or '] '
      local name = names[t] and ('  [class: ' .. names[t] .. ']') or ''
      lines[#lines + 1] = open .. table.concat(cells) .. close .. '  ' .. pct(core.get(self.valids, t)) .. name
    end
  else
    lines[#lines + 1] = string.format(' (%d x %d matrix not shown: see cm.mat and cm.valids)', n, n)
  end
  lines[#lines + 1] = ' + average row correct: ' .. pct(self.averageValid)
  lines[#lines + 1] = ' + average rowUcol correct (VOC measure): ' .. pct(self.averageUnionValid)
  lines[#lines + 1] = ' + global correct: ' .. pct(self.totalValid)
  for _, k in ipairs(self.ks) do
    if self.topkTotal > 0 then
      lines[#lines + 1] = string.format(' + top-%d correct: %s', k, pct(self:topk(k)))
    end
  end
  return table.concat(lines, '\n')
end

return CM
