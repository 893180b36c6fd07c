import Foundation
import PivotTensor
import XCTest

/// attention(q:k:v:heads:causal:) against a double-precision softmax(Q Kᵀ/√d) V.
final class AttentionTests: XCTestCase {
    /// Reference for query rows `rows` (all when nil) of every batch and head; other rows stay 0.
    /// Causal: query i attends keys 0...i (top-left aligned when Nq ≠ Nk).
    static func reference(q: Tensor, k: Tensor, v: Tensor, heads: Int, causal: Bool, rows: [Int]? = nil) -> [Double] {
        let b = q.dim(0), nq = q.dim(1), nk = k.dim(1), width = q.dim(2), d = width / heads
        let qs = doubles(q), ks = doubles(k), vs = doubles(v)
        let scale = 1 / Double(d).squareRoot()
        var out = [Double](repeating: 0, count: q.count)
        var s = [Double](repeating: 0, count: nk)
        for n in 0..<b {
            for h in 0..<heads {
                for i in rows ?? Array(0..<nq) {
                    let last = causal ? min(i, nk - 1) : nk - 1
                    var m = -Double.infinity
                    for j in 0...last {
                        var dot = 0.0
                        for t in 0..<d {
                            dot += qs[(n * nq + i) * width + h * d + t] * ks[(n * nk + j) * width + h * d + t]
                        }
                        s[j] = dot * scale
                        m = max(m, s[j])
                    }
                    var sum = 0.0
                    for j in 0...last {
                        s[j] = exp(s[j] - m)
                        sum += s[j]
                    }
                    for t in 0..<d {
                        var acc = 0.0
                        for j in 0...last { acc += s[j] * vs[(n * nk + j) * width + h * d + t] }
                        out[(n * nq + i) * width + h * d + t] = acc / sum
                    }
                }
            }
        }
        return out
    }

    func check(
        b: Int, nq: Int, nk: Int, heads: Int, d: Int, causal: Bool, qScale: Double = 1, seed: UInt64,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        var rng = SplitMix64(seed: seed)
        let q = rng.tensor([b, nq, heads * d], -qScale, qScale)
        let k = rng.tensor([b, nk, heads * d])
        let v = rng.tensor([b, nk, heads * d])
        let y = attention(q: q, k: k, v: v, heads: heads, causal: causal)
        let ref = Self.reference(q: q, k: k, v: v, heads: heads, causal: causal)
        assertClose(
            y, ref, shape: [b, nq, heads * d],
            "attention b\(b) nq\(nq) nk\(nk) heads\(heads) d\(d) causal \(causal)", file: file, line: line)
    }

    func testOneHead() {
        check(b: 2, nq: 7, nk: 7, heads: 1, d: 8, causal: false, seed: 600)
        check(b: 2, nq: 7, nk: 7, heads: 1, d: 8, causal: true, seed: 601)
        check(b: 2, nq: 5, nk: 13, heads: 1, d: 4, causal: false, seed: 602)
        check(b: 1, nq: 1, nk: 1, heads: 1, d: 3, causal: true, seed: 603)
    }

    func testTwoHeads() {
        check(b: 2, nq: 9, nk: 9, heads: 2, d: 16, causal: false, seed: 610)
        check(b: 2, nq: 9, nk: 9, heads: 2, d: 16, causal: true, seed: 611)
        check(b: 2, nq: 12, nk: 77, heads: 2, d: 8, causal: false, seed: 612)  // cross-attention shape
    }

    func testEightHeads() {
        check(b: 2, nq: 33, nk: 33, heads: 8, d: 8, causal: false, seed: 620)
        check(b: 2, nq: 77, nk: 77, heads: 8, d: 8, causal: true, seed: 621)  // CLIP-like causal
        check(b: 2, nq: 64, nk: 77, heads: 8, d: 5, causal: false, seed: 622)
        // Large logits: the softmax must subtract the row maximum.
        check(b: 2, nq: 16, nk: 19, heads: 8, d: 4, causal: false, qScale: 40, seed: 623)
    }

    func testCausalWithDifferentLengths() {
        // Nq < Nk: query i sees keys 0...i; Nq > Nk: queries ≥ Nk see every key.
        check(b: 2, nq: 5, nk: 11, heads: 2, d: 4, causal: true, seed: 630)
        check(b: 2, nq: 11, nk: 5, heads: 2, d: 4, causal: true, seed: 631)
        check(b: 2, nq: 17, nk: 16, heads: 8, d: 2, causal: true, seed: 632)
    }

    func testCausalFirstRowIsFirstValue() {
        // With causal masking, query 0 sees only key 0: its output is exactly v[0] (softmax of one logit is 1).
        var rng = SplitMix64(seed: 640)
        let q = rng.tensor([2, 6, 8]), k = rng.tensor([2, 6, 8]), v = rng.tensor([2, 6, 8])
        let y = attention(q: q, k: k, v: v, heads: 2, causal: true).scalars
        let vs = v.scalars
        for n in 0..<2 {
            for t in 0..<8 { XCTAssertEqual(y[n * 48 + t], vs[n * 48 + t], accuracy: 1e-6) }
        }
    }

    /// Nq·Nk = 2100² > attentionScoreBudget, so the query rows are processed in several bands.
    /// The reference is computed on the rows around each band boundary and a few others.
    func testSeveralScoreBands() {
        let (nq, nk, d) = (2100, 2100, 8)
        XCTAssertGreaterThan(nq * nk, attentionScoreBudget)
        let band = attentionScoreBudget / nk
        XCTAssertLessThan(band, nq, "at least two bands")
        var rng = SplitMix64(seed: 650)
        let q = rng.tensor([1, nq, d], -2, 2), k = rng.tensor([1, nk, d], -2, 2), v = rng.tensor([1, nk, d])
        var rows = [0, 1, 2, 777, nq - 2, nq - 1]
        for boundary in stride(from: band, to: nq, by: band) { rows += [boundary - 1, boundary, boundary + 1] }
        rows = Array(Set(rows.filter { $0 < nq })).sorted()
        for causal in [false, true] {
            let start = Date()
            let y = attention(q: q, k: k, v: v, heads: 1, causal: causal)
            let elapsed = Date().timeIntervalSince(start)
            // About 0.3 s in a debug build on 2 shared cores; the bound only catches gross regressions.
            XCTAssertLessThan(elapsed, 5.0, "banded attention took \(elapsed) s")
            XCTAssertEqual(y.shape, [1, nq, d])
            let ref = Self.reference(q: q, k: k, v: v, heads: 1, causal: causal, rows: rows)
            let ys = y.scalars
            var got: [Float] = [], want: [Double] = []
            for i in rows {
                for t in 0..<d {
                    got.append(ys[i * d + t])
                    want.append(ref[i * d + t])
                }
            }
            assertClose(got, want, "banded attention causal \(causal) rows \(rows)")
            XCTAssertTrue(ys.allSatisfy { $0.isFinite }, "causal \(causal): non-finite output")
        }
    }

    func testBandsWithBatchAndHeads() {
        // Nk large enough that a band holds fewer rows than Nq, with batch 2 and 2 heads.
        let (nq, nk, heads, d) = (600, 8000, 2, 4)
        XCTAssertLessThan(attentionScoreBudget / nk, nq)
        var rng = SplitMix64(seed: 660)
        let q = rng.tensor([2, nq, heads * d]), k = rng.tensor([2, nk, heads * d]), v = rng.tensor([2, nk, heads * d])
        let band = attentionScoreBudget / nk
        let rows = [0, band - 1, band, band + 1, nq - 1]
        for causal in [false, true] {
            let y = attention(q: q, k: k, v: v, heads: heads, causal: causal)
            let ref = Self.reference(q: q, k: k, v: v, heads: heads, causal: causal, rows: rows)
            let ys = y.scalars
            var got: [Float] = [], want: [Double] = []
            for n in 0..<2 {
                for i in rows {
                    for t in 0..<(heads * d) {
                        let idx = (n * nq + i) * heads * d + t
                        got.append(ys[idx])
                        want.append(ref[idx])
                    }
                }
            }
            assertClose(got, want, "banded attention b2 h2 nk \(nk) causal \(causal)")
        }
    }

    /// The backward pass over several score bands (Nq·Nk > attentionBackwardScoreBudget) against a
    /// double-precision reference of all three gradients; dK and dV sum over every band.
    func testBackwardOverSeveralBands() {
        let (nq, nk, d) = (1100, 2100, 4)
        XCTAssertLessThan(attentionBackwardScoreBudget / nk, nq / 2, "at least three bands")
        var rng = SplitMix64(seed: 661)
        let q = rng.tensor([1, nq, d]), k = rng.tensor([1, nk, d]), v = rng.tensor([1, nk, d]), go = rng.tensor([1, nq, d])
        let (gq, gk, gv) = attentionBackward(q: q, k: k, v: v, gradOut: go, heads: 1, causal: false)
        let (qs, ks, vs, gos) = (
            q.scalars.map(Double.init), k.scalars.map(Double.init), v.scalars.map(Double.init),
            go.scalars.map(Double.init)
        )
        let scale = 1 / Double(d).squareRoot()
        var rq = [Double](repeating: 0, count: nq * d), rk = [Double](repeating: 0, count: nk * d)
        var rv = [Double](repeating: 0, count: nk * d)
        var p = [Double](repeating: 0, count: nk), dp = [Double](repeating: 0, count: nk)
        for i in 0..<nq {
            var top = -Double.infinity
            for j in 0..<nk {
                var s = 0.0
                for t in 0..<d { s += qs[i * d + t] * ks[j * d + t] }
                p[j] = s * scale
                top = max(top, p[j])
            }
            var sum = 0.0
            for j in 0..<nk {
                p[j] = exp(p[j] - top)
                sum += p[j]
            }
            var dot = 0.0
            for j in 0..<nk {
                p[j] /= sum
                var g = 0.0
                for t in 0..<d { g += gos[i * d + t] * vs[j * d + t] }
                dp[j] = g
                dot += g * p[j]
            }
            for j in 0..<nk {
                let ds = p[j] * (dp[j] - dot) * scale
                for t in 0..<d {
                    rq[i * d + t] += ds * ks[j * d + t]
                    rk[j * d + t] += ds * qs[i * d + t]
                    rv[j * d + t] += p[j] * gos[i * d + t]
                }
            }
        }
        assertClose(gq.scalars, rq, "dQ over bands")
        assertClose(gk.scalars, rk, "dK over bands")
        assertClose(gv.scalars, rv, "dV over bands")
    }
}
