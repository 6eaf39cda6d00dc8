-- nd.cuda: the GPU. One Tensor type whose device is an attribute: t:cuda() moves a tensor to a GPU
-- (keeping its dtype), t:float() / t:double() / t:cpu() bring it back to the host, model:cuda()
-- moves a network. Devices are numbered from 0 ("cuda:0"). Every function here is safe to call
-- on a machine without a GPU or in a build without the CUDA backend:
--
--   nd.cuda.available()       -> true | false, reason ("no usable GPU (...)", "this build has no
--                                 CUDA backend ...")
--   nd.cuda.deviceCount()     -> number of GPUs (0 without one)
--   nd.cuda.deviceName([i]), nd.cuda.deviceInfo([i]) -> {name, capability, memory, index}
--   nd.cuda.setDevice(i), nd.cuda.getDevice()
--   nd.cuda.synchronize()     waits for queued GPU work (timings need it); no-op without a GPU
--   nd.cuda.memory()          -> {allocated, cached, peak, mallocs, hits} in bytes (current GPU):
--                                 held by live tensors, obtained from the driver (live + cached),
--                                 peak of allocated, driver allocations, cache hits
--   nd.cuda.emptyCache()      returns cached free blocks to the driver (after a full GC)
--   nd.cuda.resetPeak()
--   nd.cuda.manualSeed(s)     seeds the GPU generator (nd.manualSeed seeds both)
--   nd.cuda.getRNGState(), nd.cuda.setRNGState(state)
--   nd.cuda.tf32([on])        -> the previous setting (false without a GPU); with on, switches TF32
--                                 tensor cores for float32 cuBLAS products: nd.mm and friends, and
--                                 Deconv's statistics, Newton-Schulz and folding products. Off by
--                                 default (strict float32; ND_CUDA_TF32=1 at start turns it on).
--                                 cuDNN convolutions have their own switch (ND_CUDNN_TF32=0: off).
--
-- Element access on a GPU tensor (t[i], t[{i, j}] = v, :totable(), printing) copies through the
-- host: correct but slow (one transfer and synchronisation per call); use it for inspection.
return function(nd, Tensor, core)
  local cuda = {}
  nd.cuda = cuda

  function cuda.available()
    local ok, why = core.cuda_available()
    return ok, why
  end
  cuda.isAvailable = cuda.available
  function cuda.deviceCount() return core.cuda_device_count() end
  function cuda.deviceInfo(i) return core.cuda_device_info(i) end
  function cuda.deviceName(i) return core.cuda_device_info(i).name end
  function cuda.setDevice(i) core.cuda_set_device(i) end
  function cuda.getDevice() return core.cuda_current_device() end
  function cuda.synchronize() core.cuda_synchronize() end
  function cuda.memory()
    local a, c, p = core.cuda_memory()
    local m, h = core.cuda_memory_stats()
    return {allocated = a, cached = c, peak = p, mallocs = m, hits = h}
  end
  function cuda.emptyCache() core.cuda_empty_cache() end
  function cuda.resetPeak() core.cuda_reset_peak() end
  function cuda.manualSeed(s) core.cuda_manual_seed(s) end
  cuda.manualSeedAll = cuda.manualSeed
  function cuda.getRNGState()
    local seed, offset = core.cuda_rng_state()
    return {seed = seed, offset = offset}
  end
  function cuda.setRNGState(st) core.cuda_set_rng_state(st.seed, st.offset) end
  function cuda.tf32(on)
    if not core.cuda_available() then return false end
    return core.cudatf32(on)
  end

  -- nd.manualSeed seeds the GPU generator too, so one seed fixes a whole run.
  local cpu_seed = nd.manualSeed
  function nd.manualSeed(s)
    cpu_seed(s)
    core.cuda_manual_seed(s)
  end
  nd.manualseed = nd.manualSeed

  -- The device name of a tensor: 'cpu' or 'cuda:N'.
  function nd.deviceOf(t)
    local d, i = core.device(t)
    if d == 'cuda' then return 'cuda:' .. i end
    return 'cpu'
  end

  -- t:cuda([device]): t on GPU `device` (default: the current one), same dtype; t itself when it
  -- is already there. Raises "CUDA is not available: <reason>" without a GPU.
  function Tensor.cuda(t, device)
    if device ~= nil and math.type(device) ~= 'integer' then
      error('cuda(): expected a device number (from 0), got ' .. tostring(device), 2)
    end
    local ok, why = core.cuda_available()
    if not ok then error('cuda(): CUDA is not available: ' .. why, 2) end
    device = device or core.cuda_current_device()
    local d, i = core.device(t)
    if d == 'cuda' and i == device then return t end
    return core.clone(t, nil, 'cuda:' .. device)
  end
  -- t:cpu(): t on the host, same dtype (t itself when it is there).
  function Tensor.cpu(t)
    if core.device(t) == 'cpu' then return t end
    return core.clone(t, nil, 'cpu')
  end
  function Tensor.isCuda(t) return core.device(t) == 'cuda' end
  Tensor.is_cuda = Tensor.isCuda
  -- t:getDevice(): the GPU number, nil on the host.
  function Tensor.getDevice(t)
    local d, i = core.device(t)
    if d == 'cuda' then return i end
    return nil
  end
end
