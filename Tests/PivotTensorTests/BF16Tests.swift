import Foundation
import PivotTensor
import XCTest

/// bf16 kernels: the conversion bit for bit, the oneDNN product against a double-precision product of the
/// same rounded inputs, and linear, attention and convolution (forward and VJP) against their fp32 forms.
/// Tests that need oneDNN's bf16 kernels skip, saying so, on a processor without AVX-512.
final class BF16Tests: XCTestCase {
    /// Round to nearest even, as the reference: the bf16 bits of a float.
    static func bits(_ f: Float) -> UInt16 {
        if f.isNaN { return UInt16(truncatingIfNeeded: f.bitPattern >> 16) | 0x40 }
        let u = f.bitPattern
        return UInt16(truncatingIfNeeded: (u &+ 0x7fff &+ ((u >> 16) & 1)) >> 16)
    }

    /// The float a bf16 value stands for.
    static func value(_ b: UInt16) -> Double { Double(Float(bitPattern: UInt32(b) << 16)) }

    func requireBF16() throws {
        guard BF16Support.usable else {
            throw XCTSkip("bf16 kernels not run: oneDNN has no bf16 kernels on this processor (it needs AVX-512)")
        }
        if !BF16Support.native {
            print("note: this processor has no native bf16; oneDNN emulates it (\(BF16Support.implementation))")
        }
    }

    func testConversionRoundsToNearestEven() {
        // 1 + 2⁻⁸ ties to 1 (even); 1 + 3·2⁻⁸ ties to 1 + 2⁻⁶ (even); the largest float overflows to ∞.
        let special: [Float] = [
            1, 1 + 0x1p-8, 1 + 3 * 0x1p-8, -1 - 0x1p-8, 0, -Float(0), .infinity, -.infinity,
            .greatestFiniteMagnitude, 65504, 1e-30, -3.1415926,
        ]
        let expected: [UInt16] = [0x3F80, 0x3F80, 0x3F82, 0xBF80, 0, 0x8000, 0x7F80, 0xFF80, 0x7F80]
        var rng = SplitMix64(seed: 7)
        // 37 values: the vector body (16 at a time) and a tail
        let values = special + (0..<25).map { _ in rng.uniform(-100, 100) }
        let b = BF16Buffer(values, count: values.count)
        let got = (0..<values.count).map { b.pointer[$0] }
        for (i, e) in expected.enumerated() { XCTAssertEqual(got[i], e, "value \(values[i])") }
        for i in 0..<values.count { XCTAssertEqual(got[i], Self.bits(values[i]), "value \(values[i])") }
        let nan = BF16Buffer([Float.nan, -Float.nan], count: 2)
        XCTAssertTrue(Self.value(nan.pointer[0]).isNaN && Self.value(nan.pointer[1]).isNaN)
        XCTAssertEqual(b.floats[0], 1)
    }

    /// The product of rounded inputs, in double precision: what a bf16-in, fp32-accumulate GEMM computes up
    /// to fp32 accumulation error.
    func checkGEMM(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, beta: Float, bias: Bool,
        singleThread: Bool, seed: UInt64
    ) {
        var rng = SplitMix64(seed: seed)
        let lda = (transA ? m : k) + 3, ldb = (transB ? k : n) + 1, ldc = n + 2
        let a = rng.tensor([(transA ? k : m) * lda]), bt = rng.tensor([(transB ? n : k) * ldb])
        let c0 = rng.tensor([m * ldc]), bs = rng.tensor([n])
        let ab = BF16Buffer(a), bb = BF16Buffer(bt)
        let c = c0.copy()
        BLAS.gemmBF16(
            transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: ab.pointer, lda: lda,
            b: bb.pointer, ldb: ldb, beta: beta, c: c.data, ldc: ldc, bias: bias ? UnsafePointer(bs.data) : nil,
            singleThread: singleThread)
        var ref = [Double](repeating: 0, count: m * ldc)
        for i in 0..<m {
            for j in 0..<ldc {
                guard j < n else {
                    ref[i * ldc + j] = Double(c0.data[i * ldc + j])
                    continue
                }
                var s = 0.0
                for p in 0..<k {
                    let av = Self.value(ab.pointer[transA ? p * lda + i : i * lda + p])
                    let bv = Self.value(bb.pointer[transB ? j * ldb + p : p * ldb + j])
                    s += av * bv
                }
                ref[i * ldc + j] = Double(alpha) * (s + (bias ? Double(bs.data[j]) : 0)) + Double(beta) * Double(c0.data[i * ldc + j])
            }
        }
        assertClose(c.scalars, ref, tol: 2e-5, "gemmBF16 tA=\(transA) tB=\(transB) \(m)×\(n)×\(k) α=\(alpha) β=\(beta) bias=\(bias)")
        withExtendedLifetime((a, bt, bs)) {}
    }

    func testGEMMMatchesRoundedDoubleProduct() throws {
        try requireBF16()
        var seed: UInt64 = 1
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            for (alpha, beta, bias) in [(Float(1), Float(0), false), (0.5, 1, true), (1, 0, true)] {
                checkGEMM(
                    transA: ta, transB: tb, m: 37, n: 29, k: 70, alpha: alpha, beta: beta, bias: bias,
                    singleThread: seed % 2 == 0, seed: seed)
                seed += 1
            }
        }
        checkGEMM(transA: false, transB: true, m: 1, n: 1, k: 1, alpha: 1, beta: 0, bias: false, singleThread: true, seed: 99)
        checkGEMM(transA: false, transB: false, m: 300, n: 17, k: 513, alpha: 1, beta: 0, bias: false, singleThread: false, seed: 98)
    }

    func testLinearAgainstRoundedInputs() throws {
        try requireBF16()
        var rng = SplitMix64(seed: 11)
        let x = rng.tensor([2, 5, 48]), w = rng.tensor([33, 48]), b = rng.tensor([33])
        let y = Precision.with(.bf16) { linear(x, weight: w, bias: b) }
        let xr = BF16Buffer(x), wr = BF16Buffer(w)
        var ref = [Double](repeating: 0, count: 10 * 33)
        for r in 0..<10 {
            for j in 0..<33 {
                var s = Double(b.data[j])
                for p in 0..<48 { s += Self.value(xr.pointer[r * 48 + p]) * Self.value(wr.pointer[j * 48 + p]) }
                ref[r * 33 + j] = s
            }
        }
        assertClose(y, ref, shape: [2, 5, 33], tol: 2e-5, "linear bf16")
        // the weight is rounded once and kept
        XCTAssertTrue(w.bf16Weights === w.bf16Weights)
        // fp32 stays the default and exact path
        let y32 = linear(x, weight: w, bias: b)
        XCTAssertNotEqual(y32.scalars, y.scalars)
    }

    /// max|a − b| / max(1, max|b|) of two tensors.
    func relativeError(_ a: Tensor, _ b: Tensor) -> Double {
        var err = 0.0, ref = 0.0
        for i in 0..<a.count {
            err = max(err, abs(Double(a.data[i]) - Double(b.data[i])))
            ref = max(ref, abs(Double(b.data[i])))
        }
        return err / max(1, ref)
    }

    func testAttentionAndItsVJPNearFP32() throws {
        try requireBF16()
        // head widths of SD 1.x/2.x (40, 64, 80, 160), CLIP's causal 64, odd and tiny widths, several bands
        let cases = [
            (70, 70, 2, 40, false), (300, 77, 4, 16, false), (19, 19, 1, 64, true), (77, 77, 2, 64, true),
            (33, 130, 2, 80, false), (9, 64, 1, 160, false), (13, 29, 3, 7, false), (5, 200, 1, 2, true),
        ]
        for (nq, nk, heads, d, causal) in cases {
            var rng = SplitMix64(seed: UInt64(nq * nk))
            let q = rng.tensor([2, nq, heads * d]), k = rng.tensor([2, nk, heads * d]), v = rng.tensor([2, nk, heads * d])
            let g = rng.tensor([2, nq, heads * d])
            let o32 = attention(q: q, k: k, v: v, heads: heads, causal: causal)
            let o16 = Precision.with(.bf16) { attention(q: q, k: k, v: v, heads: heads, causal: causal) }
            XCTAssertLessThan(relativeError(o16, o32), 2e-2, "attention \(nq)×\(nk) h\(heads) d\(d)")
            let r32 = attentionBackward(q: q, k: k, v: v, gradOut: g, heads: heads, causal: causal)
            let r16 = Precision.with(.bf16) { attentionBackward(q: q, k: k, v: v, gradOut: g, heads: heads, causal: causal) }
            XCTAssertLessThan(relativeError(r16.0, r32.0), 3e-2, "∂q")
            XCTAssertLessThan(relativeError(r16.1, r32.1), 3e-2, "∂k")
            XCTAssertLessThan(relativeError(r16.2, r32.2), 3e-2, "∂v")
            XCTAssertGreaterThan(relativeError(o16, o32), 0, "bf16 really ran")
        }
    }

    func testConvolutionsAndVJPsNearFP32() throws {
        try requireBF16()
        // Winograd (every 3×3 stride-1 convolution in bf16, down to 1×1 images), strided im2col, 1×1; input
        // gradients by each route (Winograd's reads the forward's transform transposed)
        XCTAssertEqual(winogradBF16MinPixels, 1)
        let cases = [(6, 70, 32, 3, 1, 1), (5, 7, 9, 3, 1, 1), (3, 4, 1, 3, 1, 1), (7, 3, 2, 3, 1, 1), (4, 6, 16, 3, 2, 1), (8, 5, 12, 1, 1, 0)]
        for (c, o, h, k, stride, pad) in cases {
            var rng = SplitMix64(seed: UInt64(c * o * h))
            let x = rng.tensor([2, c, h, h]), w = rng.tensor([o, c, k, k], -0.5, 0.5), b = rng.tensor([o])
            let y32 = conv2d(x, weight: w, bias: b, stride: stride, padding: pad)
            let y16 = Precision.with(.bf16) { conv2d(x, weight: w, bias: b, stride: stride, padding: pad) }
            XCTAssertEqual(y16.shape, y32.shape)
            XCTAssertLessThan(relativeError(y16, y32), 2e-2, "conv \(c)→\(o) \(h)² k\(k) s\(stride)")
            let gy = rng.tensor(y32.shape)
            let g32 = conv2dBackward(gy, weight: w, inputShape: x.shape, stride: stride, padding: pad)
            let g16 = Precision.with(.bf16) { conv2dBackward(gy, weight: w, inputShape: x.shape, stride: stride, padding: pad) }
            XCTAssertLessThan(relativeError(g16, g32), 2e-2, "∂conv \(c)→\(o) \(h)² k\(k) s\(stride)")
        }
    }

    func testVJPRunsInTheForwardsPrecision() throws {
        try requireBF16()
        var rng = SplitMix64(seed: 5)
        let x = rng.tensor([3, 16]), w = rng.tensor([8, 16]), g = rng.tensor([3, 8])
        func grad(_ p: Precision) -> Tensor {
            let xi = x.copy()
            let tape = Tape()
            tape.watch(xi)
            let y = tape.record { Precision.with(p) { linear(xi, weight: w, bias: nil) } }
            tape.backward(from: y, gradient: g)  // outside Precision.with: the recorded precision applies
            return tape.gradient(of: xi)!
        }
        XCTAssertEqual(grad(.bf16).scalars, Precision.with(.bf16) { linearBackward(g, weight: w) }.scalars)
        XCTAssertEqual(grad(.fp32).scalars, linearBackward(g, weight: w).scalars)
    }
}
