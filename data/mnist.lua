-- MNIST and Fashion-MNIST: four IDX files each (raw or gzip'd), 60000 train / 10000 test images
-- of 28 x 28. `require('data.mnist').load('train')` is `require('data').load('mnist', 'train')`.
local nd = require('nd')
local core = nd.core

local M = {}

local files = {
  train = {'train-images-idx3-ubyte', 'train-labels-idx1-ubyte'},
  test = {'t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'},
}

-- images (uint8 N x 28 x 28) and labels (int64 N, 1-based) from the two IDX files.
local function read(paths, info)
  local images = core.idx_read(paths[1], 3)
  local labels = core.idx_read_labels(paths[2], #info.classes)
  if images:size(1) ~= labels:size(1) then
    error(('%s: %d images but %s has %d labels'):format(paths[1], images:size(1), paths[2], labels:size(1)), 0)
  end
  return {images = images, labels = labels}
end

M.sets = {
  mnist = {
    files = files, gz = true, read = read,
    classes = {'0', '1', '2', '3', '4', '5', '6', '7', '8', '9'},
    mean = {0.1307}, std = {0.3081},
    hint = 'run data/get.sh mnist (or make data)',
  },
  ['fashion-mnist'] = {
    files = files, gz = true, read = read,
    classes = {'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag',
               'Ankle boot'},
    -- spec 8.1: ToTensor only (the pixel mean/std would be 0.2860/0.3530)
    mean = {0}, std = {1},
    hint = 'run data/get.sh fashion-mnist (or make data)',
  },
}

function M.load(split, opts) return require('data').load('mnist', split, opts) end
function M.fashion(split, opts) return require('data').load('fashion-mnist', split, opts) end

return M
