-- Batch loaders: float32 batches prepared by a C worker thread, two ahead of the training step.
--
--   local loader = data.loader(ds, {batchSize = 128, shuffle = true, crop = 4, flip = true,
--                                   normalize = true, seed = 0, epoch = 1})
--   for i, x, y in loader:batches() do ... end   -- x: float32 B x C x H x W, y: int64 B (1-based)
--   loader:size()   number of batches per epoch (the last partial batch is kept unless dropLast)
--   loader:close()  stops the worker and frees the buffers (also on garbage collection, and at
--                   the end of a `local loader <close> = ...` scope)
--
-- Options (defaults): batchSize 128; shuffle false; crop 0 (padding of the random crop; true
-- means 4); flip false; normalize true ((x/255 - mean) / std with ds.mean, ds.std; false:
-- x/255); mean, std (override ds.mean, ds.std: a number or one per channel); seed 0; epoch 1
-- (the epoch the first batches() call runs; each call then moves to the next); dropLast false.
-- The batches of an epoch depend only on (seed, epoch): never on the global generator.
local nd = require('nd')
local core = nd.core

local M = {}
local Loader = {}
Loader.__index = Loader
M.Loader = Loader

local known = {
  batchSize = true, batch_size = true, shuffle = true, crop = true, flip = true, normalize = true,
  mean = true, std = true, seed = true, epoch = true, dropLast = true, drop_last = true,
}

function M.new(ds, opts)
  opts = opts or {}
  if type(ds) ~= 'table' or not nd.istensor(ds.images) or not nd.istensor(ds.labels) then
    error('data.loader: expected a data set {images = uint8 tensor, labels = int64 tensor} (from data.load)', 3)
  end
  for k in pairs(opts) do
    if not known[k] then error(("data.loader: unknown option '%s'"):format(tostring(k)), 3) end
  end
  local crop = opts.crop
  if crop == true then crop = 4 elseif not crop then crop = 0 end
  local normalize = opts.normalize ~= false
  local copts = {
    batch_size = opts.batchSize or opts.batch_size or 128,
    shuffle = opts.shuffle or false,
    crop_pad = crop,
    flip = opts.flip or false,
    normalize = normalize,
    drop_last = opts.dropLast or opts.drop_last or false,
    mean = normalize and (opts.mean or ds.mean) or nil,
    std = normalize and (opts.std or ds.std) or nil,
    seed = opts.seed or 0,
  }
  local ok, c = pcall(core.loader, ds.images, ds.labels, copts)
  if not ok then error('data.loader: ' .. tostring(c), 3) end
  return setmetatable({_c = c, epoch = opts.epoch or 1, batchSize = copts.batch_size, dataset = ds}, Loader)
end

-- Stops the worker when a for loop over batches() ends, also by break or error.
local Closer = {__close = function(self) self.c:stop(self.gen) end}

-- Iterator over the batches of one epoch: for i, x, y in loader:batches([epoch]) do ... end.
function Loader:batches(epoch)
  epoch = epoch or self.epoch
  self.epoch = epoch + 1
  local c = self._c
  local gen = c:start(epoch)
  local i = 0
  local function iter()
    local x, y = c:next()
    if x == nil then return nil end
    i = i + 1
    return i, x, y
  end
  return iter, nil, nil, setmetatable({c = c, gen = gen}, Closer)
end

function Loader:size() return self._c:size() end
function Loader:nsamples() return self._c:nsamples() end
function Loader:close() self._c:close() end
Loader.__len = Loader.size
Loader.__close = Loader.close
function Loader.__tostring(self) return tostring(self._c) end

return M
