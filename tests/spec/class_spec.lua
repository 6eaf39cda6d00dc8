-- nd.class: Torch7-style classes without globals, the registry, typename/isinstance,
-- inherited metamethods, versions and on-demand loading.
package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path
package.cpath = (os.getenv('ND_BUILD') or 'build') .. '/lib/?.so;' .. package.cpath
local nd = require('nd')

describe('nd.class', function()
  it('returns the class and its parent; calling the class runs __init', function()
    local Animal, none = nd.class('cspec.Animal')
    assert.is_nil(none)
    function Animal:__init(name) self.name = name end
    function Animal:speak() return self.name .. ' makes a sound' end
    local Dog, parent = nd.class('cspec.Dog', 'cspec.Animal')
    assert.are.equal(Animal, parent)
    function Dog:__init(name, breed)
      parent.__init(self, name)
      self.breed = breed
    end
    function Dog:speak() return self.name .. ' barks' end
    local a, d = Animal('cat'), Dog('rex', 'pug')
    assert.are.equal('cat makes a sound', a:speak())
    assert.are.equal('rex barks', d:speak())
    assert.are.equal('pug', d.breed)
    assert.are.equal(Dog, getmetatable(d))
    assert.are.equal('table', type(d))
  end)

  it('inherits __init and methods when the subclass does not define them', function()
    local Base = nd.class('cspec.Base')
    function Base:__init(x) self.x = x end
    function Base:double() return 2 * self.x end
    local Sub = nd.class('cspec.Sub', Base)   -- parent as a class table
    local s = Sub(21)
    assert.are.equal(42, s:double())
    function Base:late() return 'late' end      -- methods added later are seen too
    assert.are.equal('late', s:late())
  end)

  it('stores the class in a package table when one is given', function()
    local pkg = {}
    local C = nd.class('cspecpkg.Widget', nil, pkg)
    assert.are.equal(C, pkg.Widget)
  end)

  it('creates no globals and keeps a registry', function()
    local C = nd.class('cspecglobal.Thing')
    assert.is_nil(rawget(_G, 'cspecglobal'))
    assert.are.equal(C, nd.classes['cspecglobal.Thing'])
    assert.are.equal(C, nd.getmetatable('cspecglobal.Thing'))
    assert.is_nil(nd.getmetatable('cspecglobal.Nothing'))
    assert.are.equal('cspecglobal.Thing', C.__typename)
  end)

  it('refuses a second class of the same name and unknown parents', function()
    nd.class('cspec.Once')
    assert.has_error(function() nd.class('cspec.Once') end)
    local ok, err = pcall(nd.class, 'cspec.Orphan', 'cspec.NoSuchParent')
    assert.is_false(ok)
    assert.truthy(err:find("parent class 'cspec.NoSuchParent'", 1, true))
    assert.has_error(function() nd.class('cspec.Bad', {}) end)
    assert.has_error(function() nd.class(42) end)
  end)

  it('answers typename and isinstance for objects, tensors and other values', function()
    local A = nd.class('cspec.TA')
    local B = nd.class('cspec.TB', 'cspec.TA')
    local Other = nd.class('cspec.TOther')
    local b = B()
    assert.are.equal('cspec.TB', nd.typename(b))
    assert.is_true(nd.isinstance(b, 'cspec.TB'))
    assert.is_true(nd.isinstance(b, 'cspec.TA'))
    assert.is_true(nd.isinstance(b, A))
    assert.is_false(nd.isinstance(b, 'cspec.TOther'))
    assert.is_false(nd.isinstance(b, Other))
    assert.is_false(nd.isinstance(A(), 'cspec.TB'))
    local t = nd.Tensor(2, 2)
    assert.are.equal('nd.FloatTensor', nd.typename(t))
    assert.is_true(nd.isinstance(t, 'nd.Tensor'))
    assert.is_true(nd.isinstance(t, 'torch.FloatTensor'))
    assert.is_false(nd.isinstance(t, 'nd.DoubleTensor'))
    assert.is_nil(nd.typename({}))
    assert.is_nil(nd.typename(3))
    assert.is_false(nd.isinstance({}, 'cspec.TA'))
    assert.is_false(nd.isinstance(5, 'cspec.TA'))
    assert.are.equal(A, nd.parentclass('cspec.TB'))
  end)

  it('has a version, 1 by default, per class', function()
    local V = nd.class('cspec.V')
    local W = nd.class('cspec.W', V)
    assert.are.equal(1, V.__version)
    V.__version = 3
    assert.are.equal(3, V.__version)
    assert.are.equal(1, W.__version)
  end)

  it('inherits metamethods and the Torch7 __tostring__', function()
    local P = nd.class('cspec.P')
    function P:__init(v) self.v = v end
    function P.__add(a, b) return getmetatable(a)(a.v + b.v) end
    function P:__tostring__() return 'P(' .. self.v .. ')' end
    function P:__len() return self.v end
    local Q = nd.class('cspec.Q', P)
    local q = Q(2) + Q(3)
    assert.are.equal(5, q.v)
    assert.are.equal('P(5)', tostring(q))
    assert.are.equal(5, #q)
    function Q.__tostring(x) return 'Q' .. x.v end   -- a raw __tostring in the subclass wins
    assert.are.equal('Q5', tostring(q))
    assert.are.equal('P(1)', tostring(P(1)))
    local R = nd.class('cspec.R')
    assert.truthy(tostring(R()):match('^cspec%.R: '))
    assert.has_error(function() return R() + R() end)
    local r = R()
    assert.are.equal(r, r)
    assert.are_not.equal(R(), R())
    assert.are.equal('class cspec.R', tostring(R))
  end)

  it('loads classes on demand through nd.classloader', function()
    local loaded = {}
    nd.classloader.cspecl = function(name)
      loaded[#loaded + 1] = name
      if name == 'cspecl.Lazy' then nd.class('cspecl.Lazy') end
    end
    local C = nd.getmetatable('cspecl.Lazy')
    assert.is_not_nil(C)
    assert.are.same({'cspecl.Lazy'}, loaded)
    local D = nd.class('cspecl.Child', 'cspecl.Lazy')
    assert.is_true(nd.isinstance(D(), 'cspecl.Lazy'))
    assert.is_nil(nd.getmetatable('cspecl.Missing'))
    nd.classloader.cspecl = nil
  end)
end)
