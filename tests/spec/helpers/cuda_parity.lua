-- Shared pieces of the CPU/GPU parity specs (cuda_nn_spec.lua, cuda_deconv_spec.lua): whether a
-- GPU is usable (ok, why), the forward / backward tolerances, device moves, tensor and scalar
-- comparison and the contiguous / non-contiguous input variants. Loaded with
-- require('helpers.cuda_parity') (tests/spec is on the path of busted (.busted) and of
-- scripts/spec_runner.lua).
local nd = require('nd')

local M = {}

M.ok, M.why = false, 'nd.cuda is missing (no CUDA support in this build of nd)'
if nd.cuda and nd.cuda.available then M.ok, M.why = nd.cuda.available() end

M.FWD, M.BWD = 1e-4, 1e-3

function M.host(t) return nd.core.clone(t, nil, 'cpu') end
function M.gpu(t) return t:cuda() end

-- |a - b| / max(|b|, 1e-12) <= tol for two numbers.
function M.num_close(a, b, tol, what)
  local e = math.abs(a - b) / math.max(math.abs(b), 1e-12)
  assert(e <= tol, string.format('%s: %.9g vs %.9g (relative error %.3g > %.1g)', what, a, b, e, tol))
end

-- Strict float32 on the GPU for parity (cuDNN convolutions and cuBLAS products without TF32,
-- whatever ND_CUDNN_TF32 / ND_CUDA_TF32 say); returns a function that restores the settings.
function M.strict_fp32()
  local conv = nd.core.conv_cuda_config(false)
  local mm = nd.cuda.tf32(false)
  return function()
    nd.core.conv_cuda_config(conv)
    nd.cuda.tf32(mm)
  end
end

-- max |a - b| / max |b| over the tensor (either may be on the GPU). t:abs() works in place (Torch7).
function M.rel(a, b)
  a = M.host(a):double()
  b = M.host(b):double()
  local scale = b:clone():abs():max()
  if scale == 0 then scale = 1 end
  return (a - b):abs():max() / scale
end

-- Same shape and M.rel(a, b) <= tol, or an error naming `what`.
function M.close(a, b, tol, what)
  local sa, sb = nd.core.size(a), nd.core.size(b)
  local same = #sa == #sb
  for i = 1, #sb do same = same and sa[i] == sb[i] end
  assert(same, string.format('%s: shapes differ (%s vs %s)', what, table.concat(sa, 'x'), table.concat(sb, 'x')))
  local e = M.rel(a, b)
  assert(e <= tol, string.format('%s: relative error %.3g > %.1g', what, e, tol))
end

-- The CPU input and a non-contiguous view with the same values (a transposed copy, transposed
-- back), as (tag, cpu, gpu) triples.
function M.variants(x)
  local d = x:dim()
  local base = x:transpose(d - 1, d):contiguous()
  return {
    {'contiguous', x, M.gpu(x)},
    {'non-contiguous', base:transpose(d - 1, d), M.gpu(base):transpose(d - 1, d)},
  }
end

return M
