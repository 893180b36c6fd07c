// Matrix products on oneDNN (Debian's libdnnl, 2.6): bf16 inputs with fp32 accumulation and output, and
// fp32, with primitives cached by shape. Also fp32 ↔ bf16 conversion (round to nearest even) with run-time
// ISA dispatch. oneDNN itself picks its kernels by CPUID (avx512_core_bf16, AMX, …).
#ifndef PIVOT_DNNL_H
#define PIVOT_DNNL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// 1 when the processor has native bf16 arithmetic (AVX512_BF16 or AMX-BF16).
int pv_cpu_has_bf16(void);
/// 1 when the processor has AMX tiles for bf16.
int pv_cpu_has_amx_bf16(void);
/// 1 when oneDNN can run a bf16 matrix product on this processor (it needs AVX-512 at least; it emulates
/// bf16 arithmetic without AVX512_BF16). Probed once.
int pv_dnnl_bf16_usable(void);
/// The oneDNN version, "major.minor.patch".
const char *pv_dnnl_version(void);
/// The implementation oneDNN chose for a bf16 matrix product (e.g. "brg:avx512_core_bf16"), or "".
const char *pv_dnnl_bf16_impl(void);

/// dst[i] = bf16(src[i]), round to nearest even (NaN stays NaN).
void pv_f32_to_bf16(const float *src, uint16_t *dst, size_t n);
/// Rows of a strided matrix: dst[r * ldd + c] = bf16(src[r * lds + c]) for r < rows, c < cols.
void pv_f32_to_bf16_2d(const float *src, size_t lds, uint16_t *dst, size_t ldd, size_t rows, size_t cols);
/// dst[i] = float(src[i]).
void pv_bf16_to_f32(const uint16_t *src, float *dst, size_t n);

/// C[M, N] = alpha · (op(A)[M, K] · op(B)[K, N] + bias) + beta · C, with bias[N] broadcast over rows (none when
/// NULL; oneDNN scales it with the product), row-major with leading dimensions, A and B bf16, C fp32, on the
/// calling thread alone (callers split work between threads). Returns 0, or a oneDNN status on failure.
int pv_gemm_bf16(int trans_a, int trans_b, long m, long n, long k, float alpha, const uint16_t *a, long lda,
                 const uint16_t *b, long ldb, float beta, float *c, long ldc, const float *bias);
/// The same product in fp32 on oneDNN.
int pv_gemm_f32_dnnl(int trans_a, int trans_b, long m, long n, long k, float alpha, const float *a, long lda,
                     const float *b, long ldb, float beta, float *c, long ldc, const float *bias);

#ifdef __cplusplus
}
#endif
#endif
