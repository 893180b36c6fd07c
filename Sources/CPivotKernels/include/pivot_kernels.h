// Elementwise and reduction kernels for pivot's tensor core.
// Each kernel has an AVX-512 path chosen at run time and a portable scalar path with the same results
// to within a few ulp. All pointers are to fp32 unless stated; sizes are element counts.
#ifndef PIVOT_KERNELS_H
#define PIVOT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// 1 when the processor has AVX-512 (F + DQ); the kernels themselves pick AVX-512, AVX2 or baseline code.
int pv_has_avx512(void);

/// In place, for each of `rows` rows of `cols` elements (row stride `ld`): x = softmax(scale * x).
/// When `causal_offset >= 0`, row r only attends to columns c <= r + causal_offset; the rest become 0.
void pv_softmax_rows(float *x, long rows, long cols, long ld, float scale, long causal_offset);

/// y = x * sigmoid(x). In place allowed.
void pv_silu(const float *x, float *y, long n);
/// y = x * sigmoid(1.702 x) (CLIP's quick_gelu). In place allowed.
void pv_quick_gelu(const float *x, float *y, long n);
/// y = 0.5 x (1 + erf(x / sqrt 2)) (exact GELU). In place allowed.
void pv_gelu(const float *x, float *y, long n);
/// GEGLU over rows of 2f features: y[r, j] = x[r, j] * gelu(x[r, f + j]); y is rows x f.
void pv_geglu(const float *x, float *y, long rows, long f);

/// y = x + b (n elements). In place allowed.
void pv_add(const float *x, const float *b, float *y, long n);
/// y[c, i] += bias[c] for a [channels, n] block.
void pv_add_channel_bias(float *y, const float *bias, long channels, long n);

/// Group norm of one sample x [C, HW] into y, with per-channel affine gamma/beta, optional fused SiLU.
/// `groups` is the number of groups in this slab (statistics are recomputed by the backward pass).
void pv_group_norm(const float *x, float *y, long channels, long hw, long groups,
                   const float *gamma, const float *beta, float eps, int silu);

/// Layer norm over the last dimension of x [rows, d] into y.
void pv_layer_norm(const float *x, float *y, long rows, long d, const float *gamma, const float *beta,
                   float eps);

/// im2col for one image x [C, H, W] and a kernel kh x kw with stride and zero padding, for output rows
/// [row0, row1) of an output of width wo: col [C * kh * kw, (row1 - row0) * wo], channels [c0, c1) only.
void pv_im2col(const float *x, float *col, long channels, long h, long w, long kh, long kw,
               long stride, long pad, long wo, long row0, long row1, long c0, long c1);

/// Winograd F(2x2, 3x3) weight transform: g [O, C, 3, 3] -> u [16, O, C] (u = G g Gᵀ), rows [o0, o1).
void pv_winograd_weights(const float *g, float *u, long out_channels, long in_channels, long o0, long o1);
/// The same for the VJP's kernels, flipped and transposed: g [O, C, 3, 3] -> u [16, C, O], rows [c0, c1).
void pv_winograd_weights_flipped(const float *g, float *u, long out_channels, long in_channels, long c0, long c1);

/// Winograd input transform of one image x [C, H, W] (padding 1) for tile rows [ty0, ty1) and channels
/// [c0, c1): v [16, C, P] with P = (ty1 - ty0) * ceil(W / 2) tiles, v = Bᵀ d B per 4x4 input tile d.
void pv_winograd_input(const float *x, float *v, long channels, long h, long w, long ty0, long ty1,
                       long c0, long c1);

/// Winograd output transform: m [16, O, P] -> output rows [2 ty0, 2 ty1) of y [O, H, W] (y = Aᵀ m A + bias),
/// channels [o0, o1); bias may be NULL.
void pv_winograd_output(const float *m, float *y, const float *bias, long out_channels, long h, long w,
                        long ty0, long ty1, long o0, long o1);

// ---- Vector-Jacobian products (backward_simd.inc, col2im.c). gy is the gradient of the output; gx receives the input's.

/// gx = gy * d/dx [x * sigmoid(x)].
void pv_silu_backward(const float *x, const float *gy, float *gx, long n);
/// gx = gy * d/dx [x * sigmoid(1.702 x)].
void pv_quick_gelu_backward(const float *x, const float *gy, float *gx, long n);
/// gx = gy * d/dx [0.5 x (1 + erf(x / sqrt 2))].
void pv_gelu_backward(const float *x, const float *gy, float *gx, long n);
/// GEGLU over rows of 2f: x [rows, 2f], gy [rows, f] -> gx [rows, 2f].
void pv_geglu_backward(const float *x, const float *gy, float *gx, long rows, long f);
/// Group norm of one sample, x [C, HW]: gx from gy, recomputing the statistics; `silu` as in the forward.
void pv_group_norm_backward(const float *x, const float *gy, float *gx, long channels, long hw, long groups,
                            const float *gamma, const float *beta, float eps, int silu);
/// Layer norm over rows of d: gx from gy, recomputing the statistics.
void pv_layer_norm_backward(const float *x, const float *gy, float *gx, long rows, long d, const float *gamma,
                            float eps);
/// Softmax backward in place: dp <- p * (dp - rowsum(dp * p)) for `rows` rows of `cols` (stride ld).
void pv_softmax_backward_rows(const float *p, float *dp, long rows, long cols, long ld);
/// Adds the columns of col [C * kh * kw, (row1 - row0) * wo] back into x [C, H, W] (the adjoint of
/// pv_im2col), channels [c0, c1).
void pv_col2im(const float *col, float *x, long channels, long h, long w, long kh, long kw, long stride,
               long pad, long wo, long row0, long row1, long c0, long c1);

#ifdef __cplusplus
}
#endif

#endif
