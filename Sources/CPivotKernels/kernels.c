// Elementwise and reduction kernels, written once with vector extensions (kernels_simd.inc) and compiled for
// AVX-512, AVX2 + FMA and baseline (kernels_simd.inc, included three times); calls dispatch at run time.
#include "pivot_kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PV_INLINE static inline __attribute__((always_inline))
#define PV_FN static PV_TARGET

int pv_isa_cap_parse(const char *text) {
    if (!text || !*text || !strcasecmp(text, "avx512")) return 2;
    if (!strcasecmp(text, "avx2")) return 1;
    if (!strcasecmp(text, "baseline")) return 0;
    return -1;
}

int pv_isa_cap(void) {
    static int cap = -2;
    if (cap == -2) {
        int parsed = pv_isa_cap_parse(getenv("PIVOT_MAX_ISA"));
        cap = parsed < 0 ? 2 : parsed;  // an unknown value caps nothing (the CLI reports it)
    }
    return cap;
}

int pv_has_avx512(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return pv_isa_cap() >= 2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
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
        int cap = pv_isa_cap();
        if (level > cap) level = cap;
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
void pv_silu_backward(const float *x, const float *gy, float *gx, long n) { DISPATCH(pv_silu_backward, x, gy, gx, n) }
void pv_quick_gelu_backward(const float *x, const float *gy, float *gx, long n) {
    DISPATCH(pv_quick_gelu_backward, x, gy, gx, n)
}
void pv_gelu_backward(const float *x, const float *gy, float *gx, long n) { DISPATCH(pv_gelu_backward, x, gy, gx, n) }
void pv_geglu_backward(const float *x, const float *gy, float *gx, long rows, long f) {
    DISPATCH(pv_geglu_backward, x, gy, gx, rows, f)
}
void pv_group_norm_backward(const float *x, const float *gy, float *gx, long channels, long hw, long groups,
                            const float *gamma, const float *beta, float eps, int silu) {
    DISPATCH(pv_group_norm_backward, x, gy, gx, channels, hw, groups, gamma, beta, eps, silu)
}
void pv_layer_norm_backward(const float *x, const float *gy, float *gx, long rows, long d, const float *gamma,
                            float eps) {
    DISPATCH(pv_layer_norm_backward, x, gy, gx, rows, d, gamma, eps)
}
void pv_softmax_backward_rows(const float *p, float *dp, long rows, long cols, long ld) {
    DISPATCH(pv_softmax_backward_rows, p, dp, rows, cols, ld)
}
int pv_attention_f32_level(void) { return pv_level(); }
void pv_attention_f32_rows(const float *q, long ldq, const float *k, long ldk, const float *v, long ldv, long nk, long d,
                           float scale, long r0, long r1, float *out, long ldo) {
    DISPATCH(pv_attention_f32_rows, q, ldq, k, ldk, v, ldv, nk, d, scale, r0, r1, out, ldo)
}
int pv_attention_f32_rows_at(int level, const float *q, long ldq, const float *k, long ldk, const float *v, long ldv,
                             long nk, long d, float scale, long r0, long r1, float *out, long ldo) {
    if (level < 0 || level > pv_level()) return -1;
    if (level == 2) pv_attention_f32_rows_v4(q, ldq, k, ldk, v, ldv, nk, d, scale, r0, r1, out, ldo);
    else if (level == 1) pv_attention_f32_rows_v3(q, ldq, k, ldk, v, ldv, nk, d, scale, r0, r1, out, ldo);
    else pv_attention_f32_rows_v1(q, ldq, k, ldk, v, ldv, nk, d, scale, r0, r1, out, ldo);
    return 0;
}
void pv_group_norm(const float *x, float *y, long channels, long hw, long groups, const float *gamma,
                   const float *beta, float eps, int silu) {
    DISPATCH(pv_group_norm, x, y, channels, hw, groups, gamma, beta, eps, silu)
}
void pv_layer_norm(const float *x, float *y, long rows, long d, const float *gamma, const float *beta,
                   float eps) {
    DISPATCH(pv_layer_norm, x, y, rows, d, gamma, beta, eps)
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

// ---------------------------------------------------------------------------------------------------------
// Winograd F(2x2, 3x3) (Lavin & Gray 2016): Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d Bᵀᵀ)] A, 2.25x fewer multiplications
// than direct 3x3 convolution; the 16 element-wise products become 16 GEMMs over channels.

// G g Gᵀ of one 3x3 kernel k into t[16] (row-major 4x4).
static inline void winograd_tile(const float *k, float t[16]) {
    float gk[4][3];  // G g: 4x3
    for (int j = 0; j < 3; j++) {
        float a = k[j], b = k[3 + j], e = k[6 + j];
        gk[0][j] = a;
        gk[1][j] = 0.5f * (a + b + e);
        gk[2][j] = 0.5f * (a - b + e);
        gk[3][j] = e;
    }
    for (int i = 0; i < 4; i++) {  // (G g) Gᵀ: 4x4
        float a = gk[i][0], b = gk[i][1], e = gk[i][2];
        t[i * 4] = a;
        t[i * 4 + 1] = 0.5f * (a + b + e);
        t[i * 4 + 2] = 0.5f * (a - b + e);
        t[i * 4 + 3] = e;
    }
}

// Transformed kernels as planes u [16, rows, cols], rows [r0, r1): the kernel at (row r, column j) is
// g[r, j] (g is [rows, cols, 3, 3]) or, `flipped`, g[j, r] (g is [cols, rows, 3, 3]) flipped. Flipping a
// kernel reverses its rows and columns, and G J = P G with P swapping rows 0 and 3 of G's output, so the
// flipped kernel's transform is the original's with tile indices 0 and 3 swapped in both axes.
// Inlined into both entry points, so `flipped` and the slot table fold away.
PV_INLINE void winograd_weight_planes(const float *g, float *u, long rows, long cols, long r0, long r1, int flipped) {
    enum { JB = 64 };
    static const int same[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    static const int swap03[16] = {15, 13, 14, 12, 7, 5, 6, 4, 11, 9, 10, 8, 3, 1, 2, 0};
    const int *slot = flipped ? swap03 : same;
    long plane = rows * cols;
    float tmp[16][JB], t[16];
    for (long r = r0; r < r1; r++) {
        for (long jb = 0; jb < cols; jb += JB) {
            long n = cols - jb < JB ? cols - jb : JB;
            for (long j = 0; j < n; j++) {
                winograd_tile(g + (flipped ? (jb + j) * rows + r : r * cols + jb + j) * 9, t);
                for (int k = 0; k < 16; k++) tmp[slot[k]][j] = t[k];
            }
            for (int k = 0; k < 16; k++) memcpy(u + k * plane + r * cols + jb, tmp[k], (size_t)n * sizeof(float));
        }
    }
}

void pv_winograd_weights(const float *g, float *u, long out_channels, long in_channels, long o0, long o1) {
    winograd_weight_planes(g, u, out_channels, in_channels, o0, o1, 0);
}

void pv_winograd_weights_flipped(const float *g, float *u, long out_channels, long in_channels, long c0, long c1) {
    winograd_weight_planes(g, u, in_channels, out_channels, c0, c1, 1);
}

void pv_winograd_input(const float *x, float *v, long channels, long h, long w, long ty0, long ty1,
                       long c0, long c1) {
    long tw = (w + 1) / 2;
    long p = (ty1 - ty0) * tw;
    long cp = channels * p;
    long pw = 2 * tw + 2;  // padded row: one zero column left, zeros past the right edge
    float *rows = malloc((size_t)(4 * pw + 16 * tw) * sizeof(float));
    if (!rows) return;
    float *tmp = rows + 4 * pw;
    for (long c = c0; c < c1; c++) {
        const float *xc = x + c * h * w;
        for (long ty = ty0; ty < ty1; ty++) {
            long y0 = 2 * ty - 1;
            for (int i = 0; i < 4; i++) {
                float *r = rows + i * pw;
                long yy = y0 + i;
                memset(r, 0, (size_t)pw * sizeof(float));
                if (yy >= 0 && yy < h) memcpy(r + 1, xc + yy * w, (size_t)w * sizeof(float));
            }
            const float *r0 = rows, *r1 = rows + pw, *r2 = rows + 2 * pw, *r3 = rows + 3 * pw;
            for (long tx = 0; tx < tw; tx++) {
                long x0 = 2 * tx;
                float t[4][4];  // Bᵀ d
                for (int j = 0; j < 4; j++) {
                    float d0 = r0[x0 + j], d1 = r1[x0 + j], d2 = r2[x0 + j], d3 = r3[x0 + j];
                    t[0][j] = d0 - d2;
                    t[1][j] = d1 + d2;
                    t[2][j] = d2 - d1;
                    t[3][j] = d1 - d3;
                }
                for (int i = 0; i < 4; i++) {  // (Bᵀ d) B
                    tmp[(i * 4) * tw + tx] = t[i][0] - t[i][2];
                    tmp[(i * 4 + 1) * tw + tx] = t[i][1] + t[i][2];
                    tmp[(i * 4 + 2) * tw + tx] = t[i][2] - t[i][1];
                    tmp[(i * 4 + 3) * tw + tx] = t[i][1] - t[i][3];
                }
            }
            float *dst = v + c * p + (ty - ty0) * tw;
            for (int k = 0; k < 16; k++) memcpy(dst + k * cp, tmp + k * tw, (size_t)tw * sizeof(float));
        }
    }
    free(rows);
}

void pv_winograd_output(const float *m, float *y, const float *bias, long out_channels, long h, long w,
                        long ty0, long ty1, long o0, long o1) {
    long tw = (w + 1) / 2;
    long p = (ty1 - ty0) * tw;
    long op = out_channels * p;
    float *tmp = malloc((size_t)(16 * tw + 4 * tw) * sizeof(float));
    if (!tmp) return;
    float *out = tmp + 16 * tw;  // two output rows of width 2 tw
    for (long o = o0; o < o1; o++) {
        float b = bias ? bias[o] : 0.0f;
        float *yo = y + o * h * w;
        for (long ty = ty0; ty < ty1; ty++) {
            const float *mrow = m + o * p + (ty - ty0) * tw;
            for (int k = 0; k < 16; k++) memcpy(tmp + k * tw, mrow + k * op, (size_t)tw * sizeof(float));
            for (long tx = 0; tx < tw; tx++) {
                float s[4][4];
                for (int k = 0; k < 16; k++) s[k / 4][k % 4] = tmp[k * tw + tx];
                float t[2][4];  // Aᵀ s
                for (int j = 0; j < 4; j++) {
                    t[0][j] = s[0][j] + s[1][j] + s[2][j];
                    t[1][j] = s[1][j] - s[2][j] - s[3][j];
                }
                for (int i = 0; i < 2; i++) {  // (Aᵀ s) A
                    out[i * 2 * tw + 2 * tx] = t[i][0] + t[i][1] + t[i][2] + b;
                    out[i * 2 * tw + 2 * tx + 1] = t[i][1] - t[i][2] - t[i][3] + b;
                }
            }
            for (int i = 0; i < 2 && 2 * ty + i < h; i++) {
                memcpy(yo + (2 * ty + i) * w, out + i * 2 * tw, (size_t)w * sizeof(float));
            }
        }
    }
    free(tmp);
}
