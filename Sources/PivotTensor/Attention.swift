import CPivotKernels

/// Multi-head scaled dot-product attention, softmax(Q Kᵀ / √d) V. Work is split into (sample, head, band of
/// query rows) items; each thread runs its items with single-threaded GEMMs and a softmax on a score band
/// small enough to stay in cache (`attentionScoreBudget` floats). Scores are always fp32 (this covers
/// diffusers' `upcast_attention`).
/// - q: [B, Nq, H·d]; k, v: [B, Nk, H·d]. Returns [B, Nq, H·d].
/// - causal: query i attends to keys 0...i (CLIP's text encoder).
public func attention(q: Tensor, k: Tensor, v: Tensor, heads: Int, causal: Bool = false) -> Tensor {
    let b = q.dim(0), nq = q.dim(1), nk = k.dim(1), width = q.dim(2)
    precondition(width % heads == 0 && k.dim(2) == width && v.dim(2) == width && v.dim(1) == nk,
                 "attention: q \(q.shape), k \(k.shape), v \(v.shape), heads \(heads)")
    let d = width / heads
    let scale = 1 / Float(d).squareRoot()
    let out = Tensor(uninitialized: q.shape)
    let band = max(1, min(nq, attentionScoreBudget / max(nk, 1)))
    let bands = (nq + band - 1) / band
    let scratch = Tensor(uninitialized: [Parallel.workers * band * nk])
    let flops0 = BLAS.flops
    Profiler.measure(nk > 128 ? "attention" : "attention.x") {
    BLAS.singleThreaded {
        Parallel.chunks(b * heads * bands) { worker, items in
            let scores = scratch.data + worker * band * nk
            for item in items {
                let n = item / (heads * bands), h = (item / bands) % heads, row0 = (item % bands) * band
                let rows = min(band, nq - row0)
                let qn = q.data + n * nq * width, kn = k.data + n * nk * width, vn = v.data + n * nk * width
                BLAS.gemm(transB: true, m: rows, n: nk, k: d, a: qn + row0 * width + h * d, lda: width,
                          b: kn + h * d, ldb: width, c: scores, ldc: nk)
                pv_softmax_rows(scores, rows, nk, nk, scale, causal ? row0 : -1)
                BLAS.gemm(m: rows, n: d, k: nk, a: scores, lda: nk, b: vn + h * d, ldb: width,
                          c: out.data + n * nq * width + row0 * width + h * d, ldc: width)
            }
        }
    }
    }
    withExtendedLifetime(scratch) {}  // used through raw pointers until here
    BLAS.flops = flops0 &+ 4 &* b &* nq &* nk &* width  // worker threads' counts race; set the total
    return out
}

/// Floats in one thread's band of attention scores (1 MiB: a band stays in the core's cache).
public let attentionScoreBudget = 1 << 18
