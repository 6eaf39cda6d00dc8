/* Random fills on the GPU with a counter-based generator: Philox-4x32 with 10 rounds (Salmon,
 * Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC 2011), written from the
 * paper's definition. Element i of the f-th fill since the seed uses the counter
 * (i low, i high, f low, f high) and the key (seed low, seed high): no state per thread, so the
 * values do not depend on the launch configuration, and a fill needs no host synchronisation.
 * The CPU generator (xoshiro256**, src/core/nd_rng.c) gives other numbers for the same seed. */
#include <math.h>

#include "common.cuh"

static uint64_t nd_rng_seed_ = 0;
static uint64_t nd_rng_offset_ = 0; /* fills done since the seed */

extern "C" void nd_cuda_manual_seed(uint64_t seed)
{
    nd_rng_seed_ = seed;
    nd_rng_offset_ = 0;
}

extern "C" void nd_cuda_rng_get_state(uint64_t *seed, uint64_t *offset)
{
    if (seed) *seed = nd_rng_seed_;
    if (offset) *offset = nd_rng_offset_;
}

extern "C" void nd_cuda_rng_set_state(uint64_t seed, uint64_t offset)
{
    nd_rng_seed_ = seed;
    nd_rng_offset_ = offset;
}

struct nd_philox_out {
    uint32_t v[4];
};

/* Philox-4x32-10: S-box round (c0, c1, c2, c3) -> (hi(M1 c2) ^ c1 ^ k0, lo(M1 c2),
 * hi(M0 c0) ^ c3 ^ k1, lo(M0 c0)), key bumped by the Weyl constants between rounds. */
static __device__ __forceinline__ nd_philox_out nd_philox(uint64_t counter, uint64_t stream, uint64_t key)
{
    uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32);
    uint32_t c2 = (uint32_t)stream, c3 = (uint32_t)(stream >> 32);
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
#pragma unroll
    for (int r = 0; r < 10; r++) {
        uint32_t hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
        uint32_t hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
        uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
        c0 = n0;
        c1 = n1;
        c2 = n2;
        c3 = n3;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    nd_philox_out o;
    o.v[0] = c0;
    o.v[1] = c1;
    o.v[2] = c2;
    o.v[3] = c3;
    return o;
}

/* Uniform doubles in [0, 1) with 53 random bits, from two words. */
static __device__ __forceinline__ double nd_u01(uint32_t hi, uint32_t lo)
{
    uint64_t x = ((uint64_t)hi << 32 | lo) >> 11;
    return (double)x * 0x1.0p-53;
}

enum nd_rand_kind { ND_RAND_UNIFORM, ND_RAND_NORMAL, ND_RAND_INTEGER, ND_RAND_BERNOULLI };

/* Kind-specific value in double precision, then converted to D (as the CPU does). */
template <typename D>
__global__ void nd_rand_kernel(D *__restrict__ out, nd_cuda_layout l, int64_t n, uint64_t key, uint64_t stream, int kind,
                               double p1, double p2)
{
    int64_t step = (int64_t)blockDim.x * gridDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
        nd_philox_out r = nd_philox((uint64_t)i, stream, key);
        double u = nd_u01(r.v[0], r.v[1]);
        double v;
        if (kind == ND_RAND_UNIFORM) {
            v = p1 + (p2 - p1) * u;
        } else if (kind == ND_RAND_NORMAL) { /* Box-Muller, u1 in (0, 1] */
            double u1 = 1.0 - u, u2 = nd_u01(r.v[2], r.v[3]);
            v = p1 + p2 * sqrt(-2.0 * log(u1)) * cospi(2.0 * u2);
        } else if (kind == ND_RAND_INTEGER) { /* p1 = a, p2 = b - a + 1 (exact below 2^53) */
            double k = floor(u * p2);
            if (k >= p2) k = p2 - 1;
            v = p1 + k;
        } else {
            v = u < p1 ? 1.0 : 0.0;
        }
        D d = nd_cuda_cast<D>(v); /* integer dtypes: truncated, uint8 wrapping, as on the CPU */
        if (kind == ND_RAND_UNIFORM && sizeof(D) == 4 && (double)d >= p2 && p2 > p1) d = (D)p1; /* float rounding to b */
        out[nd_cuda_offset(l, i)] = d;
    }
}

template <typename D>
static void nd_rand_launch(nd_tensor *t, int64_t n, uint64_t stream, int kind, double p1, double p2)
{
    nd_rand_kernel<D><<<nd_cuda_blocks(n), 256, 0, nd_cuda_stream()>>>((D *)nd_tensor_data(t), nd_cuda_layout_of(t), n,
                                                                       nd_rng_seed_, stream, kind, p1, p2);
}

static nd_status nd_rand_fill(nd_tensor *t, int kind, double p1, double p2, const char *op)
{
    int64_t n = nd_tensor_numel(t);
    if (n == 0) return ND_OK;
    nd_device dv = nd_tensor_device(t);
    if (dv.type != ND_DEVICE_CUDA) return ND_ERROR(ND_ERR_DEVICE, "%s: expected a CUDA tensor, got a CPU one", op);
    uint64_t stream = nd_rng_offset_++;
    int prev = nd_cuda_device_enter(dv.index);
    switch (t->dtype) {
    case ND_DTYPE_F32: nd_rand_launch<float>(t, n, stream, kind, p1, p2); break;
    case ND_DTYPE_F64: nd_rand_launch<double>(t, n, stream, kind, p1, p2); break;
    case ND_DTYPE_I64: nd_rand_launch<int64_t>(t, n, stream, kind, p1, p2); break;
    case ND_DTYPE_U8: nd_rand_launch<uint8_t>(t, n, stream, kind, p1, p2); break;
    default: nd_cuda_device_restore(prev); return ND_ERROR(ND_ERR_DTYPE, "%s: unknown dtype %d", op, (int)t->dtype);
    }
    cudaError_t e = cudaGetLastError();
    nd_cuda_device_restore(prev);
    if (e != cudaSuccess) return ND_ERROR(ND_ERR_DEVICE, "%s: %s", op, cudaGetErrorString(e));
    return ND_OK;
}

extern "C" nd_status nd_cuda_fill_uniform(nd_tensor *t, double a, double b)
{
    return nd_rand_fill(t, ND_RAND_UNIFORM, a, b, "uniform");
}

extern "C" nd_status nd_cuda_fill_normal(nd_tensor *t, double mean, double std)
{
    return nd_rand_fill(t, ND_RAND_NORMAL, mean, std, "normal");
}

extern "C" nd_status nd_cuda_fill_integer(nd_tensor *t, int64_t a, int64_t b)
{
    if (b < a) return ND_ERROR(ND_ERR_ARG, "random: empty range [%lld, %lld]", (long long)a, (long long)b);
    return nd_rand_fill(t, ND_RAND_INTEGER, (double)a, (double)(b - a) + 1.0, "random");
}

extern "C" nd_status nd_cuda_fill_bernoulli(nd_tensor *t, double p)
{
    if (!(p >= 0 && p <= 1)) return ND_ERROR(ND_ERR_ARG, "bernoulli: p = %g is not in [0, 1]", p);
    return nd_rand_fill(t, ND_RAND_BERNOULLI, p, 0, "bernoulli");
}
