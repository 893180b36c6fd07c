import PivotTensor
import XCTest

/// SplitMix64: a tiny, seeded, deterministic generator (no Foundation randomness in these tests).
struct SplitMix64 {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// Uniform in [lo, hi).
    mutating func uniform(_ lo: Double, _ hi: Double) -> Float { Float(lo + (hi - lo) * unit()) }

    /// Uniform integer in 0..<n.
    mutating func int(_ n: Int) -> Int { Int(next() % UInt64(n)) }

    /// A tensor of the given shape with elements uniform in [lo, hi).
    mutating func tensor(_ shape: [Int], _ lo: Double = -1, _ hi: Double = 1) -> Tensor {
        let n = Tensor.elementCount(shape)
        var values = [Float](repeating: 0, count: n)
        for i in 0..<n { values[i] = uniform(lo, hi) }
        return Tensor(shape: shape, values: values)
    }
}

/// Elements of a tensor widened to Double (references are computed in double precision).
func doubles(_ t: Tensor) -> [Double] { t.scalars.map { Double($0) } }

/// Asserts max |got − ref| ≤ tol · max(1, max |ref|), that every element is finite, and the shape.
func assertClose(
    _ got: Tensor, _ ref: [Double], shape: [Int], tol: Double = 1e-5, _ what: String,
    file: StaticString = #filePath, line: UInt = #line
) {
    XCTAssertEqual(got.shape, shape, "\(what): shape", file: file, line: line)
    XCTAssertEqual(got.count, ref.count, "\(what): element count", file: file, line: line)
    guard got.count == ref.count else { return }
    assertClose(got.scalars, ref, tol: tol, what, file: file, line: line)
}

/// Asserts max |got − ref| ≤ tol · max(1, max |ref|) over two flat arrays, all finite.
func assertClose(
    _ got: [Float], _ ref: [Double], tol: Double = 1e-5, _ what: String,
    file: StaticString = #filePath, line: UInt = #line
) {
    XCTAssertEqual(got.count, ref.count, "\(what): element count", file: file, line: line)
    guard got.count == ref.count, !got.isEmpty else { return }
    var maxRef = 0.0, maxErr = 0.0, worst = 0, nonFinite = 0
    for i in 0..<got.count {
        maxRef = max(maxRef, abs(ref[i]))
        if !got[i].isFinite {
            nonFinite += 1
            continue
        }
        let e = abs(Double(got[i]) - ref[i])
        if e > maxErr {
            maxErr = e
            worst = i
        }
    }
    XCTAssertEqual(nonFinite, 0, "\(what): \(nonFinite) non-finite outputs", file: file, line: line)
    let bound = tol * max(1, maxRef)
    XCTAssertLessThanOrEqual(
        maxErr, bound,
        "\(what): max |Δ| \(maxErr) at flat index \(worst) (got \(got[worst]), "
            + "expected \(ref[worst])) exceeds \(bound)",
        file: file, line: line)
}
