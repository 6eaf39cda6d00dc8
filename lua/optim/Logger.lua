-- optim.Logger(path, columns [, opts]): a tab-separated log, one header line naming the columns
-- and one line per :add, flushed at once so that a crashed run keeps its log and `tail -f` works.
--
--   local log = optim.Logger('runs/x/log.tsv', {'epoch', 'loss', 'acc'})
--   log:add{epoch = 1, loss = 0.52, acc = 81.3}       -- by name (missing ones stay empty)
--   log:add{2, 0.41, 84.0}                            -- or in column order
--
-- Creating the directory is the caller's job. opts.append = true continues an existing log (for
-- --resume): the header is kept and must name the same columns. Numbers are written with %.7g
-- (integers as integers), strings with tabs and newlines turned into spaces, nil as an empty cell.
-- log.rows keeps the rows added by this logger; optim.Logger.read(path) reads a log back.
local Logger = {}
Logger.__index = Logger

local function cell(v)
  local ty = type(v)
  if v == nil then return '' end
  if ty == 'number' then
    if math.type(v) == 'integer' then return tostring(v) end
    if v ~= v then return 'nan' end
    if v == math.huge then return 'inf' elseif v == -math.huge then return '-inf' end
    return string.format('%.7g', v)
  end
  return (tostring(v):gsub('[\t\r\n]', ' '))
end

local function new(_, path, columns, opts)
  if type(path) ~= 'string' then error('optim.Logger: expected a file name, got ' .. type(path), 2) end
  if type(columns) ~= 'table' or #columns == 0 then error('optim.Logger: expected a list of column names', 2) end
  opts = opts or {}
  local index = {}
  for i, c in ipairs(columns) do
    if type(c) ~= 'string' or c == '' or c:find('[\t\r\n]') then
      error('optim.Logger: column ' .. i .. ' needs a name without tabs or newlines', 2)
    end
    if index[c] then error("optim.Logger: column '" .. c .. "' appears twice", 2) end
    index[c] = i
  end
  local header = table.concat(columns, '\t')
  local file, err
  if opts.append then
    local old = io.open(path, 'r')
    local first = old and old:read('l')
    if old then old:close() end
    if first and first ~= '' then
      if first ~= header then
        error(string.format("optim.Logger: %s has the columns '%s', not '%s'", path, first:gsub('\t', ', '),
          (header:gsub('\t', ', '))), 2)
      end
      file, err = io.open(path, 'a')
      header = nil
    end
  end
  if not file then file, err = io.open(path, 'w') end
  if not file then error('optim.Logger: cannot write ' .. tostring(err), 2) end
  if header then
    file:write(header, '\n')
    file:flush()
  end
  return setmetatable({path = path, columns = {table.unpack(columns)}, index = index, file = file, rows = {}}, Logger)
end
setmetatable(Logger, {__call = new})

-- log:add(row): row maps column names to values, or lists them in column order.
function Logger:add(row)
  if type(row) ~= 'table' then error('optim.Logger:add: expected a table, got ' .. type(row), 2) end
  if not self.file then error('optim.Logger:add: the log ' .. self.path .. ' is closed', 2) end
  local n = #self.columns
  local values = {}
  if row[1] ~= nil then
    for k in pairs(row) do
      if math.type(k) ~= 'integer' or k < 1 or k > n then
        error(string.format('optim.Logger:add: a row in column order has %s (the log has %d columns)',
          type(k) == 'string' and ("key '" .. k .. "'") or tostring(k), n), 2)
      end
    end
    for i = 1, n do values[i] = row[i] end
  else
    for k, v in pairs(row) do
      local i = self.index[k]
      if not i then error("optim.Logger:add: unknown column '" .. tostring(k) .. "'", 2) end
      values[i] = v
    end
  end
  local cells = {}
  for i = 1, n do cells[i] = cell(values[i]) end
  self.file:write(table.concat(cells, '\t'), '\n')
  self.file:flush()
  local kept = {}
  for i = 1, n do kept[self.columns[i]] = values[i] end
  self.rows[#self.rows + 1] = kept
  return self
end

function Logger:close()
  if self.file then self.file:close() end
  self.file = nil
end

function Logger:__tostring()
  return string.format('optim.Logger(%s: %s; %d rows)', self.path, table.concat(self.columns, ', '), #self.rows)
end

-- optim.Logger.read(path) -> columns, rows: rows map column names to values (numbers where the
-- cell reads as one, nil where it is empty).
local special = {nan = 0 / 0, inf = math.huge, ['-inf'] = -math.huge}
function Logger.read(path)
  local f, err = io.open(path, 'r')
  if not f then error('optim.Logger.read: cannot open ' .. tostring(err), 2) end
  local header = f:read('l')
  if not header then f:close(); error('optim.Logger.read: ' .. path .. ' is empty', 2) end
  local columns = {}
  for c in (header .. '\t'):gmatch('([^\t]*)\t') do columns[#columns + 1] = c end
  local rows = {}
  for line in f:lines() do
    if line ~= '' then
      local row, i = {}, 0
      for c in (line .. '\t'):gmatch('([^\t]*)\t') do
        i = i + 1
        if columns[i] and c ~= '' then row[columns[i]] = tonumber(c) or special[c] or c end
      end
      rows[#rows + 1] = row
    end
  end
  f:close()
  return columns, rows
end

return Logger
