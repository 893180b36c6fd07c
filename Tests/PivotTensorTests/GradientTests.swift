import PivotTensor
import XCTest

/// Finite-difference checks of every kernel's VJP: for L(x) = ⟨f(x), r⟩ and a random direction u,
/// ⟨∇L, u⟩ must match (L(x + εu) − L(x − εu)) / 2ε. Central differences in fp32 with ε = 1e-2 are
/// accurate to ~1e-3 relative for these smooth functions.
final class GradientTests: XCTestCase {
    /// Checks the gradient that `f` records on a tape for each of `inputs`.
    func check(
        _ name: String, _ inputs: [Tensor], tol: Double = 2e-3, seed: UInt64 = 1,
        _ f: ([Tensor]) -> Tensor
    ) {
        var rng = SplitMix64(seed: seed)
        let tape = Tape()
        let xs = inputs.map { $0.copy() }
        xs.forEach(tape.watch)
        let y = tape.record { f(xs) }
        let r = rng.tensor(y.shape)
        tape.backward(from: y, gradient: r)
        for (i, x) in xs.enumerated() {
            guard let g = tape.gradient(of: x) else { return XCTFail("\(name): no gradient for input \(i)") }
            XCTAssertEqual(g.shape, x.shape, name)
            let u = rng.tensor(x.shape)
            let eps: Float = 1e-2
            func loss(_ sign: Float) -> Double {
                var shifted = xs
                let xi = x.copy()
                for k in 0..<xi.count { xi.data[k] += sign * eps * u.data[k] }
                shifted[i] = xi
                let out = f(shifted)
                return zip(out.scalars, r.scalars).reduce(0) { $0 + Double($1.0) * Double($1.1) }
            }
            let numeric = (loss(1) - loss(-1)) / (2 * Double(eps))
            let analytic = zip(g.scalars, u.scalars).reduce(0) { $0 + Double($1.0) * Double($1.1) }
            let scale = max(1, abs(numeric), abs(analytic))
            XCTAssertLessThanOrEqual(
                abs(numeric - analytic) / scale, tol,
                "\(name) input \(i): numeric \(numeric), analytic \(analytic)")
        }
    }

    /// A watched input the output does not depend on has no gradient: asking for it throws instead of
    /// handing back zeros; and a tape records from a background task as on the main thread.
    func testMissingGradientThrowsAndBackgroundRecording() async throws {
        var rng = SplitMix64(seed: 3)
        let x = rng.tensor([4, 8]), unused = rng.tensor([4, 8])
        let tape = Tape()
        tape.watch(x)
        tape.watch(unused)
        let y = tape.record { scale(x, 2) }
        tape.backward(from: y, gradient: rng.tensor(y.shape))
        XCTAssertNotNil(tape.gradient(of: x))
        XCTAssertThrowsError(try tape.requiredGradient(of: unused, name: "the unused input")) { error in
            XCTAssertEqual(error as? TapeError, .noGradient("the unused input"))
        }
        let ones = Tensor(shape: y.shape, values: [Float](repeating: 1, count: y.count))
        let t0 = Tape()
        let x0 = x.copy()
        t0.watch(x0)
        let y0 = t0.record { scale(x0, 2) }
        t0.backward(from: y0, gradient: ones)
        let onMain = try t0.requiredGradient(of: x0, name: "x")
        let inTask = try await Task.detached { () throws -> Tensor in
            let t = Tape()
            let xc = x.copy()
            t.watch(xc)
            let out = t.record { scale(xc, 2) }
            t.backward(from: out, gradient: Tensor(shape: out.shape, values: [Float](repeating: 1, count: out.count)))
            return try t.requiredGradient(of: xc, name: "x")
        }.value
        XCTAssertEqual(onMain.scalars, inTask.scalars)
    }

    func testLinear() {
        var rng = SplitMix64(seed: 2)
        let w = rng.tensor([5, 7]), b = rng.tensor([5])
        check("linear", [rng.tensor([2, 3, 7])]) { linear($0[0], weight: w, bias: b) }
    }

    func testConvolutions() {
        var rng = SplitMix64(seed: 3)
        for (k, stride, pad, h, w) in [(3, 1, 1, 6, 5), (3, 2, 1, 7, 6), (1, 1, 0, 4, 4), (3, 2, 0, 9, 8), (3, 1, 1, 40, 36)] {
            let weight = rng.tensor([4, 3, k, k]), bias = rng.tensor([4])
            check("conv \(k)x\(k) s\(stride) p\(pad) \(h)x\(w)", [rng.tensor([2, 3, h, w])]) {
                conv2d($0[0], weight: weight, bias: bias, stride: stride, padding: pad)
            }
        }
    }

    /// The input gradient of a large 3×3 convolution goes through Winograd with the flipped kernel; compare
    /// it with the transposed convolution written out as a direct sum. 70 output channels cross the weight
    /// transform's block of 64; 65×66 and 70 input channels take F(4×4, 3×3) (its transform blocks 64 kernels
    /// too); the 1×1 and small-image cases take Wᵀ·gy (with col2im for 3×3).
    func testConvBackwardMatchesDirectSum() {
        var rng = SplitMix64(seed: 4)
        let cases = [(5, 3, 3, 40, 34), (70, 6, 3, 32, 33), (3, 70, 3, 65, 66), (7, 5, 3, 9, 8), (9, 4, 1, 6, 7)]
        for (o, c, k, h, w) in cases {
            let pad = k / 2
            let weight = rng.tensor([o, c, k, k]), gy = rng.tensor([2, o, h, w])
            let gx = conv2dBackward(gy, weight: weight, inputShape: [2, c, h, w], stride: 1, padding: pad)
            XCTAssertEqual(gx.shape, [2, c, h, w])
            var maxDiff: Float = 0, maxRef: Float = 0
            for n in 0..<2 {
                for ic in 0..<c {
                    for i in 0..<h {
                        for j in 0..<w {
                            var s: Float = 0
                            for oc in 0..<o {
                                for ky in 0..<k {
                                    for kx in 0..<k {
                                        let oy = i + pad - ky, ox = j + pad - kx
                                        guard oy >= 0, oy < h, ox >= 0, ox < w else { continue }
                                        s += weight.data[((oc * c + ic) * k + ky) * k + kx] * gy.data[((n * o + oc) * h + oy) * w + ox]
                                    }
                                }
                            }
                            maxRef = max(maxRef, abs(s))
                            maxDiff = max(maxDiff, abs(s - gx.data[((n * c + ic) * h + i) * w + j]))
                        }
                    }
                }
            }
            XCTAssertLessThan(maxDiff, 1e-5 * max(1, maxRef), "conv backward o\(o) c\(c) k\(k) \(h)x\(w)")
        }
        XCTAssertGreaterThanOrEqual(32 * 33, winogradMinPixels)
        XCTAssertGreaterThanOrEqual(65 * 66, winograd4MinPixels)
    }

    func testGroupNorm() {
        var rng = SplitMix64(seed: 5)
        let gamma = rng.tensor([8]), beta = rng.tensor([8])
        for silu in [false, true] {
            check("groupnorm silu=\(silu)", [rng.tensor([2, 8, 3, 5], -2, 3)]) {
                groupNorm($0[0], groups: 4, weight: gamma, bias: beta, eps: 1e-5, silu: silu)
            }
        }
    }

    func testLayerNorm() {
        var rng = SplitMix64(seed: 6)
        let gamma = rng.tensor([12]), beta = rng.tensor([12])
        check("layernorm", [rng.tensor([3, 4, 12], -2, 2)]) { layerNorm($0[0], weight: gamma, bias: beta, eps: 1e-5) }
    }

    func testActivations() {
        var rng = SplitMix64(seed: 7)
        for act in [Activation.silu, .gelu, .quickGelu] {
            check("\(act)", [rng.tensor([3, 50], -4, 4)]) { act($0[0]) }
        }
        check("geglu", [rng.tensor([4, 2 * 9], -3, 3)]) { geglu($0[0]) }
    }

    func testAttention() {
        var rng = SplitMix64(seed: 8)
        for causal in [false, true] {
            check("self-attention causal=\(causal)", [rng.tensor([2, 6, 8]), rng.tensor([2, 6, 8]), rng.tensor([2, 6, 8])]) {
                attention(q: $0[0], k: $0[1], v: $0[2], heads: 2, causal: causal)
            }
        }
        // 5 keys: the vector kernels' tails only; 19: full vectors and a tail.
        for keys in [5, 19] {
            check("cross-attention \(keys) keys", [rng.tensor([1, 9, 12]), rng.tensor([1, keys, 12]), rng.tensor([1, keys, 12])]) {
                attention(q: $0[0], k: $0[1], v: $0[2], heads: 3)
            }
        }
    }

    func testShapeOps() {
        var rng = SplitMix64(seed: 9)
        check("upsample", [rng.tensor([2, 3, 4, 5])]) { upsampleNearest2x($0[0]) }
        check("transpose", [rng.tensor([2, 3, 7])]) { transposeLast2($0[0]) }
        check("concat", [rng.tensor([2, 3, 4]), rng.tensor([2, 5, 4])]) { concatChannels($0[0], $0[1]) }
        check("add+scale", [rng.tensor([3, 4]), rng.tensor([3, 4])]) { scale(add($0[0], $0[1]), 0.5) }
        let v = rng.tensor([2, 3])
        check("channel bias", [rng.tensor([2, 3, 2, 2])]) { addingChannelBias($0[0], v) }
    }

    /// A composite: gradients accumulate where a tensor feeds several ops.
    func testFanOut() {
        var rng = SplitMix64(seed: 10)
        let w = rng.tensor([6, 6])
        check("fan-out", [rng.tensor([2, 6])]) { x in
            let h = linear(x[0], weight: w, bias: nil)
            return add(Activation.silu(h), linear(h, weight: w, bias: nil))
        }
    }
}
