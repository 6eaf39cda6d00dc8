-- nn: modules, containers and criterions with the Torch7 protocol.
-- `local nn = require('nn')`; classes load on first use (nn.Linear loads lua/nn/Linear.lua).
local nd = require('nd')

local nn = {}

local special = {init = 'nn.initializers', utils = 'nn.utils', util = 'nn.util'}

setmetatable(nn, {
  __index = function(t, name)
    if type(name) ~= 'string' then return nil end
    local modname = special[name] or ('nn.' .. name)
    if not package.searchpath(modname, package.path) then return nil end
    local value = require(modname)
    rawset(t, name, value)
    return value
  end,
})

-- Loads the base classes so that nd.class can resolve parents by name.
nn.Module = require('nn.Module')
nn.Container = require('nn.Container')
nn.Criterion = require('nn.Criterion')

-- Resolves a class by its registered name ('nn.Linear'), loading its file if needed.
nd.classloader = nd.classloader or {}
nd.classloader.nn = function(name) return nn[name:match('^nn%.(.+)$')] end

return nn
