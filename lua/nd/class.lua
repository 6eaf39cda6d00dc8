-- Classes in the style of Torch7's torch.class, without globals.
--
--   local Linear, parent = nd.class('nn.Linear', 'nn.Module')   -- parent by name or class table
--   function Linear:__init(a, b) parent.__init(self); ... end
--   local m = Linear(3, 4)                                      -- calls __init
--
-- A class is one table: the methods of its objects and their metatable (Class.__index = Class);
-- the parent's methods are reached through the class's own metatable. Objects are plain tables
-- with the class as metatable, so nd.save can write them and nd.load restore them by name.
-- Class.__typename (and __name) is the registered name; Class.__version (default 1) is written
-- with every saved object, and an optional `Class:read(version)` hook is called on each loaded
-- object with the version it was saved with, to upgrade old objects.
-- Metamethods are inherited: __tostring, __len, __call, __eq, __lt, __le, __concat and the
-- arithmetic ones defined on a class apply to its subclasses too; tostring(obj) also uses
-- a Torch7-style `__tostring__` method when there is one.
return function(nd, Tensor, core)
  local classes = {}                                   -- name -> class
  local names = setmetatable({}, {__mode = 'k'})       -- class -> name
  local parents = setmetatable({}, {__mode = 'k'})     -- class -> parent class
  nd.classes = classes
  nd.classloader = nd.classloader or {}                -- prefix -> function(name) loading it

  -- The class called `name`, loading it on demand: nd.classloader[prefix](name) when a loader is
  -- registered for the prefix ('nn' in 'nn.Linear'), otherwise require(prefix) when such a module
  -- exists (it may register the class or a loader). nil when still unknown.
  local function find(name)
    local c = classes[name]
    if c then return c end
    local prefix = type(name) == 'string' and name:match('^([%a_][%w_]*)%.')
    if not prefix then return nil end
    if not nd.classloader[prefix] and not package.loaded[prefix]
        and package.searchpath(prefix, package.path) then
      require(prefix)
      c = classes[name]
      if c then return c end
    end
    local loader = nd.classloader[prefix]
    if loader then loader(name) end
    return classes[name]
  end
  nd._findclass = find
  function nd._classname(mt) return names[mt] end

  -- ---- inherited metamethods ----
  local dispatchers = {}   -- dispatcher function -> true
  -- The nearest definition of metamethod `key` at or above class c that is not a dispatcher.
  local function lookup(c, key)
    while c do
      local f = rawget(c, key)
      if f ~= nil and not dispatchers[f] then return f end
      c = parents[c]
    end
  end
  local function dispatcher(key, fallback)
    -- binary operators: the first operand's class, then the second's (as Lua itself does)
    local f = function(a, b, ...)
      local ca, cb = getmetatable(a), getmetatable(b)
      local m = names[ca] and lookup(ca, key)
      if not m and names[cb] then m = lookup(cb, key) end
      if m then return m(a, b, ...) end
      return fallback(a, b, names[ca] and ca or cb)
    end
    dispatchers[f] = true
    return f
  end
  local function fail(what)
    return function(a, b, c) error(string.format("attempt to %s a %s object", what, names[c]), 3) end
  end
  local meta = {
    __len = dispatcher('__len', function(a) return rawlen(a) end),
    __call = dispatcher('__call', fail('call')),
    __eq = dispatcher('__eq', function() return false end),
    __lt = dispatcher('__lt', fail('compare')),
    __le = dispatcher('__le', fail('compare')),
    __concat = dispatcher('__concat', fail('concatenate')),
    __unm = dispatcher('__unm', fail('negate')),
  }
  for _, op in ipairs {'__add', '__sub', '__mul', '__div', '__mod', '__pow', '__idiv'} do
    meta[op] = dispatcher(op, fail('do arithmetic (' .. op .. ') on'))
  end
  -- tostring: the nearest __tostring or __tostring__ (Torch7), else "name: 0x...".
  local function tostring_of(obj)
    local c = getmetatable(obj)
    while c do
      local f = rawget(c, '__tostring')
      if f ~= nil and not dispatchers[f] then return f(obj) end
      f = rawget(c, '__tostring__')
      if f ~= nil then return f(obj) end
      c = parents[c]
    end
    return string.format('%s: %p', names[getmetatable(obj)], obj)
  end
  dispatchers[tostring_of] = true
  meta.__tostring = tostring_of

  -- Registers an existing metatable as a class (used for nd.Size so sizes can be saved).
  local function register(name, c, parent)
    classes[name] = c
    names[c] = name
    parents[c] = parent
  end
  if nd.Size then register('nd.Size', nd.Size) end

  -- nd.class(name [, parent [, package]]) -> class, parent class. With a package table (Torch7's
  -- third argument) the class is also stored there under the last part of its name.
  function nd.class(name, parent, package_)
    if type(name) ~= 'string' or name == '' then
      error('nd.class: expected a class name, got ' .. type(name), 2)
    end
    if classes[name] then
      error(string.format("nd.class: class '%s' already exists (each name is defined once)", name), 2)
    end
    local p = parent
    if type(parent) == 'string' then
      p = find(parent)
      if not p then error(string.format("nd.class: parent class '%s' of '%s' is not defined", parent, name), 2) end
    elseif parent ~= nil and not names[parent] then
      error(string.format("nd.class: the parent of '%s' is not a class (%s)", name, type(parent)), 2)
    end
    local c = {}
    for k, f in pairs(meta) do c[k] = f end
    c.__index = c
    c.__typename = name
    c.__name = name
    c.__version = 1
    setmetatable(c, {
      __index = p,
      __call = function(cls, ...)
        local obj = setmetatable({}, cls)
        local init = cls.__init
        if init then
          -- a constructor's error names the line that called the class (as a Lua function's
          -- error(msg, 2) would), not a line inside the class code
          local ok, err = pcall(init, obj, ...)
          if not ok then
            if type(err) ~= 'string' then error(err, 0) end
            error((err:gsub('^[^\n]-%.lua:%d+: ', '', 1)), 2)
          end
        end
        return obj
      end,
      __tostring = function() return 'class ' .. name end,
    })
    register(name, c, p)
    if type(package_) == 'table' then package_[name:match('([^.]+)$')] = c end
    return c, p
  end

  -- nd.typename(x): the class name of an object, the tensor type of a tensor, else nil.
  function nd.typename(x)
    if core.istensor(x) then return x:type() end
    if type(x) == 'table' then return names[getmetatable(x)] end
    return nil
  end

  -- nd.isinstance(x, cls): x is an object of class cls (a name or a class) or of a subclass.
  -- For tensors: cls is 'nd.Tensor' (any tensor) or the tensor's type ('nd.FloatTensor';
  -- 'torch.' names also work).
  function nd.isinstance(x, cls)
    if core.istensor(x) then
      if type(cls) ~= 'string' then return false end
      local n = cls:gsub('^torch%.', 'nd.')
      return n == 'nd.Tensor' or n == x:type()
    end
    if type(x) ~= 'table' then return false end
    local c = getmetatable(x)
    if not names[c] then return false end
    if type(cls) == 'string' then
      while c do
        if names[c] == cls then return true end
        c = parents[c]
      end
    else
      while c do
        if c == cls then return true end
        c = parents[c]
      end
    end
    return false
  end
  nd.isTypeOf = nd.isinstance

  -- nd.getmetatable(name): the class (the metatable of its objects), loaded on demand; nil if unknown.
  function nd.getmetatable(name) return find(name) end

  -- nd.parentclass(cls): the parent of a class (given by name or table), nil for a root.
  function nd.parentclass(cls)
    if type(cls) == 'string' then cls = find(cls) end
    return cls and parents[cls]
  end
end
