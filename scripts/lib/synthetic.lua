-- A small generated data set for tests and smoke runs: no download, the same bytes on every
-- machine, independent of nd's random generator.
--
--   local synthetic = require('scripts.lib.synthetic')
--   local ds = synthetic.load('train', {n = 1024, size = 28, channels = 1})
--
-- 10 classes; each class has a fixed random 'prototype' image; a sample is its class prototype
-- blended with noise, so a linear model learns it to high (not perfect) accuracy. Same shape
-- conventions as data.load: images uint8 N x H x W (1 channel) or N x C x H x W, labels int64
-- 1-based, classes, mean, std. Train and test use different noise streams.
local nd = require('nd')

local synthetic = {}

synthetic.defaults = {train = 1024, test = 256}

-- A 32-bit linear congruential generator (Numerical Recipes constants).
local function lcg(seed)
  local s = seed & 0xffffffff
  return function()
    s = (s * 1664525 + 1013904223) & 0xffffffff
    return s >> 24 -- 0..255
  end
end

function synthetic.load(split, opts)
  opts = opts or {}
  split = split or 'train'
  if split ~= 'train' and split ~= 'test' then
    error("synthetic: no split '" .. tostring(split) .. "' (expected 'train' or 'test')", 2)
  end
  local n = opts.n or synthetic.defaults[split]
  local size, channels, classes = opts.size or 28, opts.channels or 1, opts.classes or 10
  local d = size * size * channels
  -- prototypes (shared by both splits)
  local proto_rng = lcg(12345)
  local proto = {}
  for k = 1, classes do
    local p = {}
    for j = 1, d do p[j] = proto_rng() end
    proto[k] = p
  end
  local rng = lcg(split == 'train' and 777 or 4242)
  local bytes, labels = {}, {}
  local parts = {}
  for i = 1, n do
    local k = (rng() % classes) + 1
    labels[i] = k
    local p = proto[k]
    for j = 1, d do
      -- 12% prototype, 88% noise
      bytes[j] = (p[j] * 12 + rng() * 88) // 100
    end
    parts[i] = string.char(table.unpack(bytes, 1, d))
  end
  local shape = channels == 1 and {n, size, size} or {n, channels, size, size}
  local images = nd.core.frombytes(nd.core.empty('uint8', shape), table.concat(parts))
  local lab = nd.LongTensor(labels)
  local names = {}
  for k = 1, classes do names[k] = 'class' .. k end
  local mean, std = {}, {}
  for c = 1, channels do mean[c], std[c] = 0.5, 0.2 end
  return {images = images, labels = lab, classes = names, mean = mean, std = std,
          name = 'synthetic', split = split, n = n}
end

return synthetic
