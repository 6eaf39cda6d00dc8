-- make demo: the main job. The paper's Fig. 4 reproduction arrives with the datasets/training
-- issue; until then this shows the engine working end to end on generated data.
local t0 = nd.now()
nd.manualSeed(0)
local a, b = nd.randn(256, 256), nd.randn(256, 256)
local c = a:mm(b)
print(string.format('nd %s: 256x256 matmul checksum %.4f in %.3f s', nd.version, c:sum(), nd.now() - t0))
print('The Fig. 4 reproduction (make demo proper) comes with the datasets/training issue.')
