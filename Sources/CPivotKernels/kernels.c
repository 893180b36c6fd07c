// Elementwise and reduction kernels, written once with vector extensions (kernels_simd.inc) and compiled for
// AVX-512, AVX2 + FMA and baseline (kernels_simd.inc, included three times); calls dispatch at run time.
#include "pivot_kernels.h"

#include <math.h>
#include <string.h>

#define PV_INLINE static inline __attribute__((always_inline))
#define PV_FN static PV_TARGET

int pv_has_avx512(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
#else
    return 0;
#endif
}

// AVX-512: 16 lanes.
#define W 16
#define PV_TARGET __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx2,fma,f16c")))
#define SFX(name) name##_v4
typedef float vf16 __attribute__((vector_size(64), aligned(4)));
typedef int vi16 __attribute__((vector_size(64), aligned(4)));
#define vf vf16
#define vi vi16
#include "kernels_simd.inc"
#undef vf
#undef vi
#undef W
#undef PV_TARGET
#undef SFX

// AVX2 + FMA: 8 lanes.
#define W 8
#define PV_TARGET __attribute__((target("avx2,fma,f16c")))
#define SFX(name) name##_v3
typedef float vf8 __attribute__((vector_size(32), aligned(4)));
typedef int vi8 __attribute__((vector_size(32), aligned(4)));
#define vf vf8
#define vi vi8
#include "kernels_simd.inc"
#undef vf
#undef vi
#undef W
#undef PV_TARGET
#undef SFX

// Baseline x86-64 (SSE2) or other architectures: 4 lanes.
#define W 4
#define PV_TARGET
#define SFX(name) name##_v1
typedef float vf4 __attribute__((vector_size(16), aligned(4)));
typedef int vi4 __attribute__((vector_size(16), aligned(4)));
#define vf vf4
#define vi vi4
#include "kernels_simd.inc"
#undef vf
#undef vi
#undef W
#undef PV_TARGET
#undef SFX

// Run-time dispatch: 2 = AVX-512, 1 = AVX2 + FMA, 0 = baseline.
static int pv_level(void) {
    static int level = -1;
    if (level < 0) {
#if defined(__x86_64__)
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw")) level = 2;
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) level = 1;
        else level = 0;
#else
        level = 0;
#endif
    }
    return level;
}

#define DISPATCH(name, ...) \
    switch (pv_level()) { case 2: name##_v4(__VA_ARGS__); return; case 1: name##_v3(__VA_ARGS__); return; \
                          default: name##_v1(__VA_ARGS__); return; }

void pv_softmax_rows(float *x, long rows, long cols, long ld, float scale, long causal_offset) {
    DISPATCH(pv_softmax_rows, x, rows, cols, ld, scale, causal_offset)
}
void pv_silu(const float *x, float *y, long n) { DISPATCH(pv_silu, x, y, n) }
void pv_quick_gelu(const float *x, float *y, long n) { DISPATCH(pv_quick_gelu, x, y, n) }
void pv_gelu(const float *x, float *y, long n) { DISPATCH(pv_gelu, x, y, n) }
void pv_geglu(const float *x, float *y, long rows, long f) { DISPATCH(pv_geglu, x, y, rows, f) }
void pv_add(const float *x, const float *b, float *y, long n) { DISPATCH(pv_add, x, b, y, n) }
void pv_add_channel_bias(float *y, const float *bias, long channels, long n) {
    DISPATCH(pv_add_channel_bias, y, bias, channels, n)
}
void pv_group_norm(const float *x, float *y, long channels, long hw, long groups, const float *gamma,
                   const float *beta, float eps, int silu, float *mean_out, float *rstd_out) {
    DISPATCH(pv_group_norm, x, y, channels, hw, groups, gamma, beta, eps, silu, mean_out, rstd_out)
}
void pv_layer_norm(const float *x, float *y, long rows, long d, const float *gamma, const float *beta,
                   float eps, float *mean_out, float *rstd_out) {
    DISPATCH(pv_layer_norm, x, y, rows, d, gamma, beta, eps, mean_out, rstd_out)
}

// ---------------------------------------------------------------------------------------------------------
// im2col

void pv_im2col(const float *x, float *col, long channels, long h, long w, long kh, long kw,
               long stride, long pad, long wo, long row0, long row1, long c0, long c1) {
    (void)channels;
    long ncols = (row1 - row0) * wo;
    for (long c = c0; c < c1; c++) {
        const float *xc = x + c * h * w;
        for (long ky = 0; ky < kh; ky++) {
            for (long kx = 0; kx < kw; kx++) {
                float *dst = col + ((c * kh + ky) * kw + kx) * ncols;
                for (long oy = row0; oy < row1; oy++) {
                    long iy = oy * stride - pad + ky;
                    float *d = dst + (oy - row0) * wo;
                    if (iy < 0 || iy >= h) { memset(d, 0, (size_t)wo * sizeof(float)); continue; }
                    const float *src = xc + iy * w;
                    if (stride == 1) {
                        // Output columns [ox0, ox1) read input columns ox - pad + kx inside [0, w).
                        long ox0 = pad - kx > 0 ? pad - kx : 0;
                        if (ox0 > wo) ox0 = wo;
                        long ox1 = w + pad - kx < wo ? w + pad - kx : wo;
                        if (ox1 < ox0) ox1 = ox0;
                        for (long ox = 0; ox < ox0; ox++) d[ox] = 0;
                        if (ox1 > ox0) memcpy(d + ox0, src + ox0 - pad + kx, (size_t)(ox1 - ox0) * sizeof(float));
                        for (long ox = ox1; ox < wo; ox++) d[ox] = 0;
                    } else {
                        for (long ox = 0; ox < wo; ox++) {
                            long ix = ox * stride - pad + kx;
                            d[ox] = (ix >= 0 && ix < w) ? src[ix] : 0.0f;
                        }
                    }
                }
            }
        }
    }
}
