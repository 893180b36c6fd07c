import CPivotKernels

/// Multi-head scaled dot-product attention, softmax(Q Kᵀ / √d) V, computed head by head in bands of query
/// rows so the score matrix never exceeds `attentionScoreBudget` floats. Scores are always fp32
/// (this covers diffusers' `upcast_attention`).
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
    let scores = Tensor(uninitialized: [band * nk])
    for n in 0..<b {
        let qn = q.data + n * nq * width, kn = k.data + n * nk * width, vn = v.data + n * nk * width
        let on = out.data + n * nq * width
        for h in 0..<heads {
            var row0 = 0
            while row0 < nq {
                let rows = min(band, nq - row0)
                BLAS.gemm(transB: true, m: rows, n: nk, k: d, a: qn + row0 * width + h * d, lda: width,
                          b: kn + h * d, ldb: width, c: scores.data, ldc: nk)
                let r0 = row0
                Profiler.measure("softmax") {
                Parallel.forEach(rows, grain: max(1, 32768 / nk)) { r in
                    pv_softmax_rows(scores.data + r.lowerBound * nk, r.count, nk, nk, scale,
                                    causal ? r0 + r.lowerBound : -1)
                }
                }
                BLAS.gemm(m: rows, n: d, k: nk, a: scores.data, lda: nk, b: vn + h * d, ldb: width,
                          c: on + row0 * width + h * d, ldc: width)
                row0 += rows
            }
        }
    }
    return out
}

/// Floats allowed in one band of attention scores (16 MiB).
public let attentionScoreBudget = 4 << 20
