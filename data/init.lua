-- data: the data sets nd trains on, and batch loaders. `local data = require('data')`.
--
--   data.load(name, split, {dir=...}) -> ds
--     name  'mnist' | 'fashion-mnist' | 'cifar10' | 'cifar100';  split 'train' | 'test'
--     ds = {images = uint8 N x H x W (MNIST) or N x 3 x 32 x 32 (CIFAR), labels = int64 N (1-based),
--           classes = {names}, mean = {per channel}, std = {per channel}, name =, split =, n =,
--           coarse_labels =, coarse_classes = (CIFAR-100 only)}
--     Files live in data/cache/<name>/ (fetched by data/get.sh) unless opts.dir (or the
--     ND_DATA_DIR environment variable, a folder holding <name>/) says otherwise.
--   data.loader(ds, opts) -> a batch loader (see data/loader.lua)
--   data.read_idx / read_idx_labels / write_idx / read_cifar / write_cifar / read_png / write_png:
--     the file readers and writers of the C engine.
local nd = require('nd')
local core = nd.core

local data = {}

-- The folder of this file, relative to the working directory when it lies below it.
local function here()
  local src = debug.getinfo(1, 'S').source
  local dir = src:match('^@(.*)[/\\]init%.lua$') or src:match('^@(.*)[/\\][^/\\]*$') or 'data'
  local cwd = os.getenv('PWD')
  if cwd and dir:sub(1, #cwd + 1) == cwd .. '/' then dir = dir:sub(#cwd + 2) end
  return (dir:gsub('^%./', ''))
end

-- data.cachedir: where data/get.sh puts the data sets.
data.cachedir = os.getenv('ND_DATA_DIR') or (here() .. '/cache')

-- Each data set: the module that reads it and its constants (spec 8.1).
local sets = {
  mnist = 'data.mnist', ['fashion-mnist'] = 'data.mnist', cifar10 = 'data.cifar', cifar100 = 'data.cifar',
}
data.names = {'mnist', 'fashion-mnist', 'cifar10', 'cifar100'}

function data.exists(path)
  local f = io.open(path, 'rb')
  if f then f:close() return true end
  return false
end

-- The description of a data set: {files = {train = {...}, test = {...}}, classes, mean, std, read, hint}.
function data.info(name)
  local mod = sets[name]
  if not mod then
    error(("unknown dataset '%s' (expected one of: %s)"):format(tostring(name), table.concat(data.names, ', ')), 3)
  end
  return require(mod).sets[name]
end

function data.load(name, split, opts)
  opts = opts or {}
  local info = data.info(name)
  split = split or 'train'
  local files = info.files[split]
  if not files then error(("dataset %s has no split '%s' (expected 'train' or 'test')"):format(name, tostring(split)), 2) end
  local dir = opts.dir or (data.cachedir .. '/' .. name)
  -- A file may also be there gzip'd (IDX files).
  local paths, missing, found = {}, {}, 0
  for i, f in ipairs(files) do
    local p = dir .. '/' .. f
    if not data.exists(p) and info.gz and data.exists(p .. '.gz') then p = p .. '.gz' end
    if data.exists(p) then found = found + 1 else missing[#missing + 1] = f end
    paths[i] = p
  end
  if found == 0 then
    error(('dataset %s not found in %s: %s'):format(name, dir, info.hint), 2)
  elseif #missing > 0 then
    error(('dataset %s incomplete in %s: missing %s; %s'):format(name, dir, table.concat(missing, ', '), info.hint), 2)
  end
  local ds = info.read(paths, info)
  ds.name, ds.split, ds.dir = name, split, dir
  ds.classes, ds.mean, ds.std = info.classes, info.mean, info.std
  ds.coarse_classes = info.coarse_classes
  ds.n = ds.images:size(1)
  return ds
end

function data.loader(ds, opts) return require('data.loader').new(ds, opts) end

data.read_idx = core.idx_read
data.read_idx_labels = core.idx_read_labels
data.write_idx = core.idx_write
data.read_cifar = core.cifar_read
data.write_cifar = core.cifar_write
data.read_png = core.png_read
data.write_png = core.png_write

return data
