import PivotTensor
import XCTest

/// linear (x · Wᵀ + b over the last dimension) against a double-precision reference.
final class LinearTests: XCTestCase {
    static func reference(_ x: Tensor, _ w: Tensor, _ b: Tensor?) -> [Double] {
        let n = w.dim(0), k = w.dim(1), m = x.count / k
        let xs = doubles(x), ws = doubles(w), bs = b.map(doubles)
        var y = [Double](repeating: 0, count: m * n)
        for r in 0..<m {
            for j in 0..<n {
                var s = bs?[j] ?? 0
                for t in 0..<k { s += xs[r * k + t] * ws[j * k + t] }
                y[r * n + j] = s
            }
        }
        return y
    }

    func check(_ shape: [Int], out n: Int, bias: Bool, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) {
        var rng = SplitMix64(seed: seed)
        let k = shape.last!
        let x = rng.tensor(shape)
        let w = rng.tensor([n, k], -0.5, 0.5)
        let b = bias ? rng.tensor([n]) : nil
        let y = linear(x, weight: w, bias: b)
        assertClose(
            y, Self.reference(x, w, b), shape: Array(shape.dropLast()) + [n],
            "linear \(shape) → \(n) bias \(bias)", file: file, line: line)
    }

    func testThreeDimensionalInput() {
        check([2, 5, 7], out: 4, bias: true, seed: 800)
        check([2, 5, 7], out: 4, bias: false, seed: 801)
        check([2, 77, 64], out: 96, bias: true, seed: 802)
        check([2, 77, 64], out: 96, bias: false, seed: 803)
    }

    func testOtherRanks() {
        check([3, 10], out: 6, bias: true, seed: 810)
        check([9], out: 3, bias: false, seed: 811)
        check([2, 3, 4, 5], out: 2, bias: true, seed: 812)
        check([4, 1], out: 5, bias: true, seed: 813)  // K = 1
        check([1, 1, 300], out: 1, bias: false, seed: 814)  // N = 1
    }

    func testIdentityWeight() {
        // W = I, b = 1: y = x + 1 exactly.
        var rng = SplitMix64(seed: 820)
        let x = rng.tensor([2, 3, 4])
        var eye = [Float](repeating: 0, count: 16)
        for i in 0..<4 { eye[i * 5] = 1 }
        let y = linear(x, weight: Tensor(shape: [4, 4], values: eye), bias: Tensor(shape: [4], values: [1, 1, 1, 1]))
        XCTAssertEqual(y.shape, [2, 3, 4])
        XCTAssertEqual(y.scalars, x.scalars.map { $0 + 1 })
    }
}
