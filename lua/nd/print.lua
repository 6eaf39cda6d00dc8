-- Torch7-style printing: values in aligned columns, a common format per tensor, slices of
-- higher-dimensional tensors labelled (i,j,.,.), long dimensions summarised with "...",
-- and a footer naming the type, the size and (for GPU tensors) the device.
return function(nd, Tensor, core)
  local EDGE, LIMIT = 3, 1000

  -- The indices to show along a dimension of size n ({1,2,3,false,n-2,n-1,n} when summarised).
  local function shown(n, summarise)
    local r = {}
    if summarise and n > 2 * EDGE then
      for i = 1, EDGE do r[#r + 1] = i end
      r[#r + 1] = false
      for i = n - EDGE + 1, n do r[#r + 1] = i end
    else
      for i = 1, n do r[i] = i end
    end
    return r
  end

  -- Chooses one number format for all printed values.
  local function formatter(values, integer_dtype)
    local maxabs, allint = 0, true
    for _, v in ipairs(values) do
      if v ~= v or v == math.huge or v == -math.huge then allint = false
      else
        local a = math.abs(v)
        if a > maxabs then maxabs = a end
        if v ~= math.floor(v) then allint = false end
      end
    end
    if integer_dtype or (allint and maxabs < 1e9) then
      return function(v)
        if v ~= v then return 'nan' end
        if v == math.huge then return 'inf' elseif v == -math.huge then return '-inf' end
        return string.format('%d', math.floor(v))
      end
    end
    if maxabs ~= 0 and (maxabs >= 1e5 or maxabs < 1e-3) then
      return function(v) return string.format('%.4e', v) end
    end
    return function(v) return string.format('%.4f', v) end
  end

  local function matrix_lines(t, rows, cols, fmt, width, out)
    for _, i in ipairs(rows) do
      if not i then out[#out + 1] = ' ...' else
        local cells = {}
        for _, j in ipairs(cols) do
          cells[#cells + 1] = j and string.format('%' .. width .. 's', fmt(core.get(t, i, j))) or '...'
        end
        out[#out + 1] = ' ' .. table.concat(cells, ' ')
      end
    end
  end

  function Tensor.__tostring(t)
    local ndim = core.dim(t)
    local footer = nd._footer(t)
    if ndim == 0 then return footer end
    if core.device(t) ~= 'cpu' then t = core.clone(t, core.dtype(t), 'cpu') end -- values via the host
    local summarise = core.numel(t) > LIMIT
    local sizes = core.size(t)
    local idx = {}
    for d = 1, ndim do idx[d] = shown(sizes[d], summarise) end
    -- gather the printed values to choose a format and a column width
    local values = {}
    local function gather(v, d)
      if d > ndim then return end
      for _, i in ipairs(idx[d]) do
        if i then
          if d == ndim then values[#values + 1] = core.get(v, i) else gather(core.select(v, 1, i), d + 1) end
        end
      end
    end
    if ndim == 1 then
      for _, i in ipairs(idx[1]) do if i then values[#values + 1] = core.get(t, i) end end
    else
      gather(t, 1)
    end
    local dt = core.dtype(t)
    local fmt = formatter(values, dt == 'int64' or dt == 'uint8')
    local width = 1
    for _, v in ipairs(values) do width = math.max(width, #fmt(v)) end
    local out = {}
    if ndim == 1 then
      for _, i in ipairs(idx[1]) do
        out[#out + 1] = i and string.format('%' .. width .. 's', fmt(core.get(t, i))) or '...'
      end
    elseif ndim == 2 then
      matrix_lines(t, idx[1], idx[2], fmt, width, out)
    else
      local prefix = {}
      local function walk(v, d)
        if d == ndim - 1 then
          out[#out + 1] = '(' .. table.concat(prefix, ',') .. ',.,.) = '
          matrix_lines(v, idx[ndim - 1], idx[ndim], fmt, width, out)
          out[#out + 1] = ''
          return
        end
        for _, i in ipairs(idx[d]) do
          if not i then out[#out + 1] = '...'; out[#out + 1] = '' else
            prefix[d] = tostring(i)
            walk(core.select(v, 1, i), d + 1)
          end
        end
        prefix[d] = nil
      end
      walk(t, 1)
    end
    out[#out + 1] = footer
    return table.concat(out, '\n')
  end
end
