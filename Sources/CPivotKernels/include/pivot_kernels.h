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

/// The highest instruction-set level run-time dispatch may pick, from the environment variable PIVOT_MAX_ISA
/// (read once): 2 = AVX-512 (unset, "avx512"), 1 = AVX2 + FMA ("avx2"), 0 = baseline ("baseline"). It caps
/// these kernels, the bf16 kernels and conversions (none below AVX-512) and oneDNN's JIT; an unknown value caps
/// nothing. For benchmarks of the code paths of smaller processors on a larger one.
int pv_isa_cap(void);
/// PIVOT_MAX_ISA's text as a level (2, 1, 0; 2 for NULL or empty), -1 when it is not one of the three names.
int pv_isa_cap_parse(const char *text);
/// 1 when the processor has AVX-512 (F + DQ) and PIVOT_MAX_ISA allows it; the kernels themselves pick AVX-512,
/// AVX2 or baseline code.
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

/// Winograd F(4×4, 3×3) (winograd4.c): the same four transforms with 6×6 tiles, 36 planes and 4×4 output tiles
/// (tw = ceil(W / 4) tiles per tile row): weights g [O, C, 3, 3] -> u [36, O, C], rows [o0, o1); flipped and
/// transposed for the VJP -> u [36, C, O], rows [c0, c1); input -> v [36, C, P]; output m [36, O, P] -> rows
/// [4 ty0, 4 ty1) of y (+ bias).
void pv_winograd4_weights(const float *g, float *u, long out_channels, long in_channels, long o0, long o1);
void pv_winograd4_weights_flipped(const float *g, float *u, long out_channels, long in_channels, long c0, long c1);
void pv_winograd4_input(const float *x, float *v, long channels, long h, long w, long ty0, long ty1, long c0, long c1);
void pv_winograd4_output(const float *m, float *y, const float *bias, long out_channels, long h, long w, long ty0,
                         long ty1, long o0, long o1);

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

// ---- Fused fp32 attention forward (attention_simd.inc), one head at a time: row-major operands offset to the
// head's first column, rows of width d ≤ 256 with the stated strides.

/// The instruction-set level the fused fp32 attention runs at: 2 = AVX-512 (16 rows per vector), 1 = AVX2 +
/// FMA (8), 0 = baseline (4).
int pv_attention_f32_level(void);
/// out[r * ldo + c] = Σ_j softmax_j(scale · q_r · k_j) v[j, c] for query rows r0 ≤ r < r1 and keys j < nk.
void pv_attention_f32_rows(const float *q, long ldq, const float *k, long ldk, const float *v, long ldv, long nk, long d,
                           float scale, long r0, long r1, float *out, long ldo);
/// The same at a given level (for tests of every level the processor has); −1 when it lacks that level.
int pv_attention_f32_rows_at(int level, const float *q, long ldq, const float *k, long ldk, const float *v, long ldv,
                             long nk, long d, float scale, long r0, long r1, float *out, long ldo);

// ---- Fused bf16 attention (attention_bf16.c; AVX512_BF16 only).

/// 1 when the processor runs the fused bf16 attention (AVX-512 BW and AVX512_BF16).
int pv_flash_bf16_supported(void);
/// Keys padded to whole steps of the fused kernel (8).
long pv_flash_keys_padded(long nk);
/// Values of one sample v [nk, width] as bf16 pairs of consecutive keys: vp[jp * width + c] holds v[2 jp, c]
/// (low half) and v[2 jp + 1, c] (high half), zero beyond nk; rows [jp0, jp1) of vp [nkp / 2, width].
void pv_flash_pack_values(const float *v, long nk, long width, uint32_t *vp, long jp0, long jp1);
/// out[r * ldo + c] = Σ_j softmax_j(scale · q_r · k_j) v[j, c] for query rows r0 ≤ r < r1 of one head of
/// width d: q fp32 (row stride ldq, rounded to bf16 after scaling), kp and vp as packed above and offset to
/// the head's first column (row strides ldk and ldv in elements), keys j < nk. Scores and sums are fp32.
/// Returns 0, or −1 when the processor or d (even, 2…256) does not allow it (nothing written then).
int pv_flash_attention_bf16(const float *q, long ldq, const uint16_t *kp, long ldk, const uint32_t *vp, long ldv,
                            long nk, long d, float scale, long r0, long r1, float *out, long ldo);

#ifdef __cplusplus
}
#endif

#endif
