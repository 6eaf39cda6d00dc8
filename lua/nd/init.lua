-- nd: the tensor library. `local nd = require('nd')`; nothing is made global by require.
-- The C binding is nd.core (1-based dims and indices); this package builds the Torch7-style API.
local core = require('nd.core')

local nd = {core = core, version = '0.1'}
local Tensor = {}          -- the method table shared by every tensor userdata
nd.TensorMethods = Tensor

-- Loads an optional part of the library: absent files are skipped, broken ones raise.
local function part(name)
  if not package.searchpath(name, package.path) then return end
  require(name)(nd, Tensor, core)
end

require('nd.tensor')(nd, Tensor, core)
part('nd.print')
part('nd.math')
part('nd.linalg')
part('nd.class')
part('nd.serialize')
part('nd.cuda')
-- nd.isqrt(A, iters): Newton-Schulz inverse square root (reference-spec section 1).
function nd.isqrt(A, iters) return core.isqrt(A, iters or 5) end
return nd
