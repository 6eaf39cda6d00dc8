#include "nd_rng.h"

#include <math.h>

#include "nd_iter.h"

static uint64_t nd_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void nd_rng_seed(nd_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = nd_splitmix64(&x);
    r->seed = seed;
}

static inline uint64_t nd_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t nd_rng_next(nd_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = nd_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = nd_rotl(s[3], 45);
    return out;
}

double nd_rng_uniform(nd_rng *r) { return (double)(nd_rng_next(r) >> 11) * 0x1.0p-53; }

double nd_rng_normal(nd_rng *r)
{
    double u1 = 1.0 - nd_rng_uniform(r); /* (0, 1] */
    double u2 = nd_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

int64_t nd_rng_below(nd_rng *r, int64_t n)
{
    if (n <= 1) return 0;
    uint64_t un = (uint64_t)n, lim = UINT64_MAX - UINT64_MAX % un, x;
    do x = nd_rng_next(r);
    while (x >= lim);
    return (int64_t)(x % un);
}

nd_rng *nd_rng_global(void)
{
    static nd_rng g;
    static int seeded;
    if (!seeded) {
        nd_rng_seed(&g, 0);
        seeded = 1;
    }
    return &g;
}

/* Calls GEN for every element of t, storing through the element's dtype. */
#define ND_RNG_FILL(t, GEN)                                                             \
    do {                                                                                \
        if (nd_tensor_device(t).type != ND_DEVICE_CPU)                                  \
            return ND_ERROR(ND_ERR_DEVICE, "random fill: the tensor must be on the CPU"); \
        nd_iter it;                                                                     \
        const nd_tensor *ops_[1] = {t};                                                 \
        nd_iter_init(&it, 1, ops_);                                                     \
        while (nd_iter_next(&it)) {                                                     \
            for (int64_t i = 0; i < it.inner; i++) {                                    \
                double v_ = (GEN);                                                      \
                char *p_ = it.ptr[0] + i * it.istride[0] * (int64_t)nd_dtype_size(t->dtype); \
                switch (t->dtype) {                                                     \
                case ND_DTYPE_F32: *(float *)p_ = (float)v_; break;                     \
                case ND_DTYPE_F64: *(double *)p_ = v_; break;                           \
                case ND_DTYPE_I64: *(int64_t *)p_ = (int64_t)v_; break;                 \
                case ND_DTYPE_U8: *(uint8_t *)p_ = (uint8_t)v_; break;                  \
                default: break;                                                         \
                }                                                                       \
            }                                                                           \
        }                                                                               \
    } while (0)

nd_status nd_rng_fill_uniform(nd_rng *r, nd_tensor *t, double a, double b)
{
    ND_RNG_FILL(t, a + (b - a) * nd_rng_uniform(r));
    return ND_OK;
}

nd_status nd_rng_fill_normal(nd_rng *r, nd_tensor *t, double mean, double std)
{
    ND_RNG_FILL(t, mean + std * nd_rng_normal(r));
    return ND_OK;
}

nd_status nd_rng_fill_integer(nd_rng *r, nd_tensor *t, int64_t a, int64_t b)
{
    if (b < a) return ND_ERROR(ND_ERR_ARG, "random: empty range [%lld, %lld]", (long long)a, (long long)b);
    ND_RNG_FILL(t, (double)(a + nd_rng_below(r, b - a + 1)));
    return ND_OK;
}

nd_status nd_rng_fill_bernoulli(nd_rng *r, nd_tensor *t, double p)
{
    if (!(p >= 0 && p <= 1)) return ND_ERROR(ND_ERR_ARG, "bernoulli: p = %g is not in [0, 1]", p);
    ND_RNG_FILL(t, nd_rng_uniform(r) < p ? 1.0 : 0.0);
    return ND_OK;
}

nd_status nd_rng_permutation(nd_rng *r, nd_tensor *out, int64_t n)
{
    if (n < 1) return ND_ERROR(ND_ERR_ARG, "randperm: n must be positive, got %lld", (long long)n);
    int64_t size[1] = {n};
    ND_TRY(nd_tensor_new(out, ND_DTYPE_I64, 1, size, nd_cpu_device(), 0));
    int64_t *p = (int64_t *)nd_tensor_data(out);
    for (int64_t i = 0; i < n; i++) p[i] = i;
    for (int64_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
        int64_t j = nd_rng_below(r, i + 1);
        int64_t tmp = p[i];
        p[i] = p[j];
        p[j] = tmp;
    }
    return ND_OK;
}
