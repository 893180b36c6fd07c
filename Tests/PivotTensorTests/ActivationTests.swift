import Foundation
import PivotTensor
import XCTest

/// Activation.silu / .gelu / .quickGelu and geglu against double-precision references.
///
/// The target is a relative error ≤ 2e-6. Where an fp32 evaluation of the formula cannot reach it, the
/// allowance is widened and explained next to the check (see each test).
final class ActivationTests: XCTestCase {
    static func silu(_ x: Double) -> Double { x / (1 + exp(-x)) }
    static func quickGelu(_ x: Double) -> Double { x / (1 + exp(-1.702 * x)) }
    /// Exact GELU; erfc form on the negative side so the double reference itself has no cancellation.
    static func gelu(_ x: Double) -> Double {
        x >= 0 ? 0.5 * x * (1 + erf(x / 2.0.squareRoot())) : 0.5 * x * erfc(-x / 2.0.squareRoot())
    }

    /// Relative tolerance asked of every activation.
    static let rel = 2e-6
    /// Absolute slack for results in the subnormal range (two of the smallest subnormal steps).
    static let subnormal = 2 * Double(Float.leastNonzeroMagnitude)
    /// Above this argument the kernels' exp saturates (its input is clamped to [−87, 88]; fp32 overflows at 88.72).
    static let expSaturation = 87.0
    /// Absolute slack where exp(−k·x) saturates: the true result is below 1e-36 there and the kernel may
    /// return 0 or x·sigmoid-floor instead; anything up to 1e-30 is harmless, a visible value is not.
    static let saturatedSlack = 1e-30

    /// Test points: a dense grid over [-20, 20], the large magnitudes ±20, ±90 and beyond, the overflow
    /// edge of exp, tiny and subnormal values, signed zeros and random values; the length is not a
    /// multiple of 16 so the vector kernels' tail code is used.
    static func points() -> [Float] {
        var p: [Float] = []
        for i in -4000...4000 { p.append(Float(i) * 0.005) }  // step 0.005 over [-20, 20]
        p += [
            20, -20, 90, -90, 30, -30, 50, -50, 53, -53, 55, -55, 61, -61, 87, -87, 88.5, -88.5, 88.8, -88.8,
            89, -89, 95, -95, 100, -100, 103, -103, 104, -104, 110, -110, 200, -200, 1e4, -1e4, 1e6, -1e6,
        ]
        for e in stride(from: -1, through: -45, by: -1) {
            let v = Float("1e\(e)")!
            p += [v, -v]
        }
        p += [
            0, -0.0, Float.leastNormalMagnitude, -Float.leastNormalMagnitude,
            Float.leastNonzeroMagnitude, -Float.leastNonzeroMagnitude, Float.ulpOfOne, -Float.ulpOfOne,
        ]
        var rng = SplitMix64(seed: 500)
        for _ in 0..<2000 { p.append(rng.uniform(-12, 12)) }
        for _ in 0..<(17 - p.count % 16) { p.append(rng.uniform(-3, 3)) }
        return p
    }

    /// Checks `act` at every point: finite output and |got − ref| ≤ allowed(x, ref).
    func check(
        _ act: Activation, _ ref: (Double) -> Double, allowed: (Double, Double) -> Double,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        let xs = Self.points()
        let y = act(Tensor(shape: [xs.count], values: xs)).scalars
        var failures: [String] = []
        for (i, x) in xs.enumerated() {
            let want = ref(Double(x))
            guard y[i].isFinite else {
                failures.append("x = \(x): non-finite \(y[i])")
                continue
            }
            let err = abs(Double(y[i]) - want)
            if err > allowed(Double(x), want) {
                failures.append("x = \(x): got \(y[i]), expected \(want), |Δ| \(err) > \(allowed(Double(x), want))")
            }
        }
        XCTAssertTrue(
            failures.isEmpty, "\(act): \(failures.count) bad points: \(failures.prefix(8))",
            file: file, line: line)
        XCTAssertGreaterThan(xs.count, 10_000)
    }

    func testSiLU() {
        // 2e-6 relative. Below x = −87 exp(−x) saturates (result ≤ 1e-36): absolute slack there.
        check(.silu, Self.silu) { x, r in
            Self.rel * abs(r) + Self.subnormal + (-x > Self.expSaturation ? Self.saturatedSlack : 0)
        }
    }

    func testQuickGelu() {
        // 2e-6 relative plus the conditioning of exp: 1.702·x is rounded to fp32 before exp, an error of up
        // to |1.702 x|·2⁻²⁴ in the exponent, i.e. that much relative error in the result (2.3e-6 at x = −19.65).
        // Below 1.702·x = −87 exp saturates (result ≤ 1e-36): absolute slack there, as for SiLU.
        check(.quickGelu, Self.quickGelu) { x, r in
            let arg = abs(1.702 * x)
            return (Self.rel + arg * 0x1p-24) * abs(r) + Self.subnormal
                + (-1.702 * x > Self.expSaturation ? Self.saturatedSlack : 0)
        }
    }

    func testGelu() {
        // 2e-6 relative for x ≥ −2.3. Below, 1 + erf(x/√2) cancels in fp32: the error is about one ulp of 1
        // times x/2, i.e. |Δ| ≤ 3e-8·|x| (the relative error grows to 100 % where gelu(x) < 3e-8·|x|, x ≲ −5.9).
        check(.gelu, Self.gelu) { x, r in
            Self.rel * abs(r) + Self.subnormal + (x < -2.3 ? 3e-8 * abs(x) : 0)
        }
    }

    func testZeroAndLargePositive() {
        // f(±0) = 0 exactly; f(x) = x to 2e-6 for large positive x, up to the top of the float range.
        let big: [Float] = [90, 1e4, 1e10, 3e38, Float.greatestFiniteMagnitude]
        for act in [Activation.silu, .gelu, .quickGelu] {
            let y = act(Tensor(shape: [2 + big.count], values: [0, -0.0] + big)).scalars
            XCTAssertEqual(Array(y[0..<2]), [0, 0], "\(act) at ±0")
            for (i, x) in big.enumerated() { XCTAssertEqual(y[2 + i], x, accuracy: x * 2e-6, "\(act)(\(x))") }
        }
    }

    func testVeryNegativeInputsGiveZero() {
        // The true values are below 1e-40 in magnitude for all of these, so |f(x)| > 1e-30 is wrong.
        let negative: [Float] = [-200, -1e4, -1e6, -1e10, -1e20, -1e30, -1e38, -3e38, -Float.greatestFiniteMagnitude]
        for act in [Activation.silu, .gelu, .quickGelu] {
            let y = act(Tensor(shape: [negative.count], values: negative)).scalars
            for (x, v) in zip(negative, y) {
                XCTAssertTrue(v.isFinite && abs(v) <= 1e-30, "\(act)(\(x)) = \(v), expected ≈ -0 (|y| ≤ 1e-30)")
            }
        }
    }

    func testInPlaceAndThreadSplitsMatch() {
        // More than one grain (1 << 16) so the work is split across threads at non-multiple-of-16 offsets.
        var rng = SplitMix64(seed: 501)
        let n = 3 * 65536 + 7
        let x = rng.tensor([n], -10, 10)
        for act in [Activation.silu, .gelu, .quickGelu] {
            let y = act(x)
            // Spot-check many positions against the reference, including the chunk edges and the tail.
            let ys = y.scalars, xs = x.scalars
            let ref: (Double) -> Double = act == .silu ? Self.silu : act == .gelu ? Self.gelu : Self.quickGelu
            var idx = Array(stride(from: 0, to: n, by: 97)) + Array((n - 40)..<n)
            idx += [65535, 65536, 65537, n / 2, n / 2 + 1]
            assertClose(idx.map { ys[$0] }, idx.map { ref(Double(xs[$0])) }, "\(act) on \(n) elements")
            let z = x.copy()
            act.applyInPlace(z)
            XCTAssertEqual(z.scalars, ys, "\(act): in place differs from out of place")
            XCTAssertEqual(x.scalars, xs, "\(act): input modified")
        }
    }

    func testGeglu() {
        var seed: UInt64 = 510
        for shape in [[2, 5, 34], [3, 2], [1, 77, 80], [2, 4096, 10]] {
            seed += 1
            var rng = SplitMix64(seed: seed)
            let x = rng.tensor(shape, -4, 4)
            let y = geglu(x)
            let f = shape.last! / 2, rows = x.count / (2 * f)
            let xs = doubles(x)
            var ref = [Double](repeating: 0, count: rows * f)
            for r in 0..<rows {
                for j in 0..<f { ref[r * f + j] = xs[r * 2 * f + j] * Self.gelu(xs[r * 2 * f + f + j]) }
            }
            assertClose(y, ref, shape: Array(shape.dropLast()) + [f], "geglu \(shape)")
        }
    }
}
