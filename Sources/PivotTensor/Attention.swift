import CPivotDNNL
import CPivotKernels

/// Multi-head scaled dot-product attention, softmax(Q Kᵀ / √d) V. Work is split into (sample, head, band of
/// query rows) items; each thread runs its items with single-threaded GEMMs and a softmax on a score band
/// small enough to stay in cache (`attentionScoreBudget` floats). Scores are always fp32 (this covers
/// diffusers' `upcast_attention`).
/// - q: [B, Nq, H·d]; k, v: [B, Nk, H·d]. Returns [B, Nq, H·d].
/// - causal: query i attends to keys 0...i (CLIP's text encoder).
public func attention(q: Tensor, k: Tensor, v: Tensor, heads: Int, causal: Bool = false) -> Tensor {
    let b = q.dim(0), nq = q.dim(1), nk = k.dim(1), width = q.dim(2)
    precondition(
        width % heads == 0 && k.dim(2) == width && v.dim(2) == width && v.dim(1) == nk,
        "attention: q \(q.shape), k \(k.shape), v \(v.shape), heads \(heads)")
    let d = width / heads
    let scale = 1 / Float(d).squareRoot()
    let out = Tensor(uninitialized: q.shape)
    let band = max(1, min(nq, attentionScoreBudget / max(nk, 1)))
    let bands = (nq + band - 1) / band
    let scratch = Tensor(uninitialized: [Parallel.workers * band * nk])
    let flops0 = BLAS.flops
    let precision = Precision.current
    Profiler.measure(nk > 128 ? "attention" : "attention.x") {
        switch precision {
        case .fp32 where FusedAttention.fp32Applies(keys: nk, headWidth: d, causal: causal):
            FusedAttention.runFP32(q: q, k: k, v: v, heads: heads, scale: scale, out: out)
        case .fp32:
            BLAS.singleThreaded {
                Parallel.chunks(b * heads * bands) { worker, items in
                    let scores = scratch.data + worker * band * nk  // [rows, Nk]
                    for item in items {
                        let n = item / (heads * bands), h = (item / bands) % heads, row0 = (item % bands) * band
                        let rows = min(band, nq - row0)
                        let qn = q.data + n * nq * width, kn = k.data + n * nk * width, vn = v.data + n * nk * width
                        BLAS.gemm(
                            transB: true, m: rows, n: nk, k: d, a: qn + row0 * width + h * d, lda: width,
                            b: kn + h * d, ldb: width, c: scores, ldc: nk)
                        pv_softmax_rows(scores, rows, nk, nk, scale, causal ? row0 : -1)
                        BLAS.gemm(
                            m: rows, n: d, k: nk, a: scores, lda: nk, b: vn + h * d, ldb: width,
                            c: out.data + n * nq * width + row0 * width + h * d, ldc: width)
                    }
                }
            }
        case .bf16 where FusedAttention.bf16Applies(keys: nk, headWidth: d, causal: causal):
            FusedAttention.runBF16(q: q, k: k, v: v, heads: heads, scale: scale, out: out)
        case .bf16:
            // q, k, v rounded once; each band's probabilities rounded after the fp32 softmax
            let qb = BF16Buffer(q), kb = BF16Buffer(k), vb = BF16Buffer(v)  // [B, N, H·d]
            let pb = BF16Buffer(count: Parallel.workers * band * nk)
            Parallel.chunks(b * heads * bands) { worker, items in
                let scores = scratch.data + worker * band * nk, probs = pb.pointer + worker * band * nk  // [rows, Nk]
                for item in items {
                    let n = item / (heads * bands), h = (item / bands) % heads, row0 = (item % bands) * band
                    let rows = min(band, nq - row0)
                    let qn = qb.pointer + n * nq * width, kn = kb.pointer + n * nk * width, vn = vb.pointer + n * nk * width
                    BLAS.gemmBF16(
                        transB: true, m: rows, n: nk, k: d, a: qn + row0 * width + h * d, lda: width,
                        b: kn + h * d, ldb: width, c: scores, ldc: nk, singleThread: true)
                    pv_softmax_rows(scores, rows, nk, nk, scale, causal ? row0 : -1)
                    pv_f32_to_bf16(scores, probs, rows * nk)
                    BLAS.gemmBF16(
                        m: rows, n: d, k: nk, a: probs, lda: nk, b: vn + h * d, ldb: width,
                        c: out.data + n * nq * width + row0 * width + h * d, ldc: width, singleThread: true)
                }
            }
            withExtendedLifetime((qb, kb, vb, pb)) {}
        }
    }
    withExtendedLifetime(scratch) {}  // used through raw pointers until here
    BLAS.flops = flops0 &+ 4 &* b &* nq &* nk &* width  // worker threads' counts race; set the total
    if let tape = Tape.active(q, k, v) {
        tape.record(out, "∂attention") { [unowned tape] gout in
            let (gq, gk, gv) = Precision.with(precision) {
                attentionBackward(q: q, k: k, v: v, gradOut: gout, heads: heads, causal: causal)
            }
            tape.accumulate(q.storage.id, gq)
            tape.accumulate(k.storage.id, gk)
            tape.accumulate(v.storage.id, gv)
        }
    }
    return out
}

/// VJP of `attention` with respect to q, k and v. The probabilities are recomputed band by band (never
/// stored whole): dV = Pᵀ dO, dP = dO Vᵀ, dS = P ⊙ (dP − rowsum(dP ⊙ P)), dQ = s·dS K, dK = s·dSᵀ Q.
/// Each thread owns whole (sample, head) pairs, so dK and dV accumulate without races.
public func attentionBackward(q: Tensor, k: Tensor, v: Tensor, gradOut: Tensor, heads: Int, causal: Bool)
    -> (Tensor, Tensor, Tensor)
{
    let b = q.dim(0), nq = q.dim(1), nk = k.dim(1), width = q.dim(2)
    let d = width / heads
    let scale = 1 / Float(d).squareRoot()
    let gq = Tensor(uninitialized: q.shape), gk = Tensor(zeros: k.shape), gv = Tensor(zeros: v.shape)
    let band = max(1, min(nq, attentionBackwardScoreBudget / max(nk, 1)))
    let scratch = Tensor(uninitialized: [Parallel.workers * 2 * band * nk])
    if Precision.current == .bf16 {
        attentionBackwardBF16(
            q: q, k: k, v: v, gradOut: gradOut, heads: heads, causal: causal, band: band,
            scratch: scratch, gq: gq, gk: gk, gv: gv)
        return (gq, gk, gv)
    }
    BLAS.singleThreaded {
        Parallel.chunks(b * heads) { worker, items in
            let p = scratch.data + worker * 2 * band * nk, dp = p + band * nk
            for item in items {
                let n = item / heads, h = item % heads
                let off = n * nq * width + h * d, koff = n * nk * width + h * d
                let qh = q.data + off, kh = k.data + koff, vh = v.data + koff, doh = gradOut.data + off
                var row0 = 0
                while row0 < nq {
                    let rows = min(band, nq - row0)
                    BLAS.gemm(
                        transB: true, m: rows, n: nk, k: d, a: qh + row0 * width, lda: width, b: kh, ldb: width,
                        c: p, ldc: nk)
                    pv_softmax_rows(p, rows, nk, nk, scale, causal ? row0 : -1)
                    // dV += Pᵀ dO
                    BLAS.gemm(
                        transA: true, m: nk, n: d, k: rows, a: p, lda: nk, b: doh + row0 * width, ldb: width,
                        beta: 1, c: gv.data + koff, ldc: width)
                    // dP = dO Vᵀ, then dS in place
                    BLAS.gemm(
                        transB: true, m: rows, n: nk, k: d, a: doh + row0 * width, lda: width, b: vh, ldb: width,
                        c: dp, ldc: nk)
                    pv_softmax_backward_rows(p, dp, rows, nk, nk)
                    // dQ = s · dS K ; dK += s · dSᵀ Q
                    BLAS.gemm(
                        m: rows, n: d, k: nk, alpha: scale, a: dp, lda: nk, b: kh, ldb: width,
                        c: gq.data + off + row0 * width, ldc: width)
                    BLAS.gemm(
                        transA: true, m: nk, n: d, k: rows, alpha: scale, a: dp, lda: nk, b: qh + row0 * width,
                        ldb: width, beta: 1, c: gk.data + koff, ldc: width)
                    row0 += rows
                }
            }
        }
    }
    withExtendedLifetime(scratch) {}
    return (gq, gk, gv)
}

/// `attentionBackward` with bf16 products: q, k, v and dO rounded once, P and dS rounded per band after their
/// fp32 softmax arithmetic; dQ, dK, dV accumulate in fp32.
func attentionBackwardBF16(
    q: Tensor, k: Tensor, v: Tensor, gradOut: Tensor, heads: Int, causal: Bool, band: Int,
    scratch: Tensor, gq: Tensor, gk: Tensor, gv: Tensor
) {
    let b = q.dim(0), nq = q.dim(1), nk = k.dim(1), width = q.dim(2)
    let d = width / heads
    let scale = 1 / Float(d).squareRoot()
    let qb = BF16Buffer(q), kb = BF16Buffer(k), vb = BF16Buffer(v), gb = BF16Buffer(gradOut)  // [B, N, H·d]
    let rounded = BF16Buffer(count: Parallel.workers * 2 * band * nk)
    Parallel.chunks(b * heads) { worker, items in
        let p = scratch.data + worker * 2 * band * nk, dp = p + band * nk  // [rows, Nk] fp32
        let pr = rounded.pointer + worker * 2 * band * nk, dsr = pr + band * nk  // [rows, Nk] bf16
        for item in items {
            let n = item / heads, h = item % heads
            let off = n * nq * width + h * d, koff = n * nk * width + h * d
            let qh = qb.pointer + off, kh = kb.pointer + koff, vh = vb.pointer + koff, doh = gb.pointer + off
            var row0 = 0
            while row0 < nq {
                let rows = min(band, nq - row0)
                BLAS.gemmBF16(
                    transB: true, m: rows, n: nk, k: d, a: qh + row0 * width, lda: width, b: kh, ldb: width,
                    c: p, ldc: nk, singleThread: true)
                pv_softmax_rows(p, rows, nk, nk, scale, causal ? row0 : -1)
                pv_f32_to_bf16(p, pr, rows * nk)
                // dV += Pᵀ dO
                BLAS.gemmBF16(
                    transA: true, m: nk, n: d, k: rows, a: pr, lda: nk, b: doh + row0 * width, ldb: width,
                    beta: 1, c: gv.data + koff, ldc: width, singleThread: true)
                // dP = dO Vᵀ, then dS in place
                BLAS.gemmBF16(
                    transB: true, m: rows, n: nk, k: d, a: doh + row0 * width, lda: width, b: vh, ldb: width,
                    c: dp, ldc: nk, singleThread: true)
                pv_softmax_backward_rows(p, dp, rows, nk, nk)
                pv_f32_to_bf16(dp, dsr, rows * nk)
                // dQ = s · dS K ; dK += s · dSᵀ Q
                BLAS.gemmBF16(
                    m: rows, n: d, k: nk, alpha: scale, a: dsr, lda: nk, b: kh, ldb: width,
                    c: gq.data + off + row0 * width, ldc: width, singleThread: true)
                BLAS.gemmBF16(
                    transA: true, m: nk, n: d, k: rows, alpha: scale, a: dsr, lda: nk, b: qh + row0 * width,
                    ldb: width, beta: 1, c: gk.data + koff, ldc: width, singleThread: true)
                row0 += rows
            }
        }
    }
    withExtendedLifetime((qb, kb, vb, gb, rounded, scratch)) {}
}

/// Floats in one thread's band of attention scores (1 MiB: a band stays in the core's cache).
public let attentionScoreBudget = 1 << 18

/// Floats in each of the backward pass's two score bands per thread (4 MiB): taller bands make the
/// Pᵀ·dO and dSᵀ·Q products less narrow, which outweighs leaving the core's cache (measured on the SD 1.5
/// UNet VJP: −8 % attention-backward time against 1 MiB bands; 8 MiB bands were no better; the forward
/// pass gained nothing from taller bands).
public let attentionBackwardScoreBudget = 1 << 20

/// The attention probabilities softmax(Q Kᵀ / √d) of every head, materialised: [B, H, Nq, Nk]. For
/// attention controllers (Prompt-to-Prompt), which read and edit them before `applyAttention`.
public func attentionProbabilities(q: Tensor, k: Tensor, heads: Int) -> Tensor {
    let b = q.dim(0), nq = q.dim(1), nk = k.dim(1), width = q.dim(2), d = width / heads
    let scale = 1 / Float(d).squareRoot()
    let p = Tensor(uninitialized: [b, heads, nq, nk])
    BLAS.singleThreaded {
        Parallel.forEach(b * heads) { items in
            for item in items {
                let n = item / heads, h = item % heads
                let dst = p.data + item * nq * nk
                BLAS.gemm(
                    transB: true, m: nq, n: nk, k: d, a: q.data + n * nq * width + h * d, lda: width,
                    b: k.data + n * nk * width + h * d, ldb: width, c: dst, ldc: nk)
                pv_softmax_rows(dst, nq, nk, nk, scale, -1)
            }
        }
    }
    return p
}

/// P V for materialised probabilities P [B, H, Nq, Nk] and values v [B, Nk, H·d] → [B, Nq, H·d].
public func applyAttention(_ p: Tensor, v: Tensor, heads: Int) -> Tensor {
    let b = p.dim(0), nq = p.dim(2), nk = p.dim(3), width = v.dim(2), d = width / heads
    let out = Tensor(uninitialized: [b, nq, width])
    BLAS.singleThreaded {
        Parallel.forEach(b * heads) { items in
            for item in items {
                let n = item / heads, h = item % heads
                BLAS.gemm(
                    m: nq, n: d, k: nk, a: p.data + item * nq * nk, lda: nk, b: v.data + n * nk * width + h * d,
                    ldb: width, c: out.data + n * nq * width + h * d, ldc: width)
            }
        }
    }
    return out
}
