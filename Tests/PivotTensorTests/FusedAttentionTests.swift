import Foundation
import PivotTensor
import XCTest

/// The fused bf16 attention kernel (AVX512_BF16) against a double-precision attention of the same rounded
/// inputs: q scaled by 1/√d · log2 e then rounded, k and v rounded, as the kernel rounds them. On a processor
/// without AVX512_BF16 the tests skip, saying so (the band path is tested by BF16Tests there).
final class FusedAttentionTests: XCTestCase {
    func requireFused() throws {
        guard FusedAttention.bf16Supported else {
            throw XCTSkip("fused bf16 attention not run: this processor has no AVX512_BF16 (attention uses oneDNN bands)")
        }
    }

    static func rounded(_ f: Float) -> Double {
        let u = f.bitPattern
        return Double(Float(bitPattern: ((u &+ 0x7fff &+ ((u >> 16) & 1)) >> 16) << 16))
    }

    /// Attention in double precision from rounded inputs: the kernel's arithmetic without its fp32 sums and
    /// bf16 probabilities.
    static func reference(q: Tensor, k: Tensor, v: Tensor, heads: Int) -> [Double] {
        let b = q.dim(0), nq = q.dim(1), nk = k.dim(1), width = q.dim(2), d = width / heads
        let qs = (1 / Float(d).squareRoot()) * 1.442_695_040_888_963_4 as Float
        var out = [Double](repeating: 0, count: b * nq * width)
        var s = [Double](repeating: 0, count: nk)
        for n in 0..<b {
            for h in 0..<heads {
                for i in 0..<nq {
                    var mx = -Double.infinity
                    for j in 0..<nk {
                        var a = 0.0
                        for c in 0..<d {
                            a += rounded(q.data[(n * nq + i) * width + h * d + c] * qs) * rounded(k.data[(n * nk + j) * width + h * d + c])
                        }
                        s[j] = a
                        mx = max(mx, a)
                    }
                    var l = 0.0
                    for j in 0..<nk {
                        s[j] = pow(2, s[j] - mx)
                        l += s[j]
                    }
                    for c in 0..<d {
                        var a = 0.0
                        for j in 0..<nk { a += s[j] * rounded(v.data[(n * nk + j) * width + h * d + c]) }
                        out[(n * nq + i) * width + h * d + c] = a / l
                    }
                }
            }
        }
        return out
    }

    func check(nq: Int, nk: Int, heads: Int, d: Int, batch: Int, qRange: Double, seed: UInt64, rising: Bool = false) {
        var rng = SplitMix64(seed: seed)
        let q = rng.tensor([batch, nq, heads * d], -qRange, qRange), v = rng.tensor([batch, nk, heads * d])
        let k = rng.tensor([batch, nk, heads * d])
        if rising {  // keys that grow along the sequence: the running maximum rises many times
            for j in 0..<batch * nk {
                for c in 0..<heads * d { k.data[j * heads * d + c] *= Float(1 + 4 * (j % nk)) / Float(nk) }
            }
        }
        XCTAssertTrue(FusedAttention.bf16Applies(keys: nk, headWidth: d, causal: false), "fused kernel applies to \(nk) keys, d \(d)")
        let got = Precision.with(.bf16) { attention(q: q, k: k, v: v, heads: heads) }
        let ref = Self.reference(q: q, k: k, v: v, heads: heads)
        var maxErr = 0.0, sumErr = 0.0
        for i in 0..<ref.count {
            let e = abs(Double(got.data[i]) - ref[i])
            XCTAssertFalse(got.data[i].isNaN, "NaN at \(i)")
            maxErr = max(maxErr, e)
            sumErr += e
        }
        // probabilities are rounded to bf16 (relative 2⁻⁹) before P·V; values lie in [−1, 1]
        let label = "\(batch)×\(nq)×\(nk) h\(heads) d\(d) q±\(qRange)\(rising ? " rising" : "")"
        XCTAssertLessThan(maxErr, 8e-3, "max error, \(label)")
        XCTAssertLessThan(sumErr / Double(ref.count), 1e-3, "mean error, \(label)")
    }

    func testHeadWidthsAndRaggedShapes() throws {
        try requireFused()
        // SD's head widths, the smallest and largest, rows not a multiple of 16, keys not a multiple of 8
        check(nq: 70, nk: 130, heads: 2, d: 40, batch: 2, qRange: 1, seed: 1)
        check(nq: 16, nk: 128, heads: 1, d: 64, batch: 1, qRange: 1, seed: 2)
        check(nq: 33, nk: 131, heads: 2, d: 80, batch: 1, qRange: 1, seed: 3)
        check(nq: 9, nk: 137, heads: 1, d: 160, batch: 2, qRange: 1, seed: 4)
        check(nq: 200, nk: 129, heads: 1, d: 2, batch: 1, qRange: 1, seed: 5)
        check(nq: 3, nk: 135, heads: 1, d: 256, batch: 1, qRange: 1, seed: 6)
    }

    func testLargeAndRisingScores() throws {
        try requireFused()
        // peaked softmax (scores spanning hundreds of log2 units) and a maximum that keeps rising: the lazy
        // rescaling of the running output must keep every row exact
        check(nq: 40, nk: 300, heads: 2, d: 40, batch: 1, qRange: 30, seed: 7)
        check(nq: 40, nk: 300, heads: 2, d: 64, batch: 1, qRange: 8, seed: 8, rising: true)
    }

    func testNotUsedWhereItDoesNotApply() {
        XCTAssertFalse(FusedAttention.bf16Applies(keys: 77, headWidth: 40, causal: false), "cross-attention stays on bands")
        XCTAssertFalse(FusedAttention.bf16Applies(keys: 4096, headWidth: 40, causal: true), "causal stays on bands")
        XCTAssertFalse(FusedAttention.bf16Applies(keys: 4096, headWidth: 7, causal: false), "odd head width")
        XCTAssertFalse(FusedAttention.bf16Applies(keys: 4096, headWidth: 258, causal: false), "head width beyond 256")
    }
}

/// The fused fp32 forward at every instruction-set level the processor has, against the score-band path
/// (OpenBLAS products, separate softmax): fp32 both, so they agree to rounding.
final class FusedAttentionFP32Tests: XCTestCase {
    func testEveryLevelMatchesTheBandPath() {
        let cases = [(70, 130, 2, 40), (33, 131, 2, 80), (9, 137, 1, 160), (200, 129, 1, 2), (17, 300, 3, 64), (5, 128, 1, 7)]
        let names = ["baseline", "AVX2 + FMA", "AVX-512"]
        var ran: [String] = []
        for level in 0...2 {
            for (nq, nk, heads, d) in cases {
                var rng = SplitMix64(seed: UInt64(nq * 31 + nk))
                let q = rng.tensor([1, nq, heads * d], -3, 3), k = rng.tensor([1, nk, heads * d], -3, 3)
                let v = rng.tensor([1, nk, heads * d])
                let p = attentionProbabilities(q: q, k: k, heads: heads)  // the band path's arithmetic, whole
                let ref = applyAttention(p, v: v, heads: heads)
                guard let got = FusedAttention.fp32Forward(q: q, k: k, v: v, heads: heads, level: level) else {
                    print("note: fused fp32 attention at level \(names[level]) not run: this processor lacks it")
                    break
                }
                assertClose(got.scalars, doubles(ref), tol: 5e-6, "\(names[level]) \(nq)×\(nk) h\(heads) d\(d)")
                if !ran.contains(names[level]) { ran.append(names[level]) }
            }
        }
        print("fused fp32 attention checked at: \(ran.joined(separator: ", "))")
        XCTAssertFalse(ran.isEmpty)
    }

    func testAttentionTakesTheFusedPathAndItsVJPStillHolds() {
        guard FusedAttention.fp32Supported else {
            print("note: fused fp32 attention not used: this processor has neither AVX2 + FMA nor AVX-512")
            return
        }
        XCTAssertTrue(FusedAttention.fp32Applies(keys: 200, headWidth: 40, causal: false))
        XCTAssertFalse(FusedAttention.fp32Applies(keys: 77, headWidth: 40, causal: false))
        var rng = SplitMix64(seed: 5)
        let q = rng.tensor([2, 150, 80]), k = rng.tensor([2, 150, 80]), v = rng.tensor([2, 150, 80])
        let ref = applyAttention(attentionProbabilities(q: q, k: k, heads: 2), v: v, heads: 2)
        let tape = Tape()
        tape.watch(q)
        let out = tape.record { attention(q: q, k: k, v: v, heads: 2) }
        assertClose(out.scalars, doubles(ref), tol: 2e-6, "fused forward through attention()")
        let g = rng.tensor([2, 150, 80])
        tape.backward(from: out, gradient: g)
        let expected = attentionBackward(q: q, k: k, v: v, gradOut: g, heads: 2, causal: false).0
        XCTAssertEqual(tape.gradient(of: q)?.scalars, expected.scalars, "the VJP is the band path's, bit for bit")
    }
}
