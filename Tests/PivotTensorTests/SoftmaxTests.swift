import CPivotKernels
import Foundation
import PivotTensor
import XCTest

/// pv_softmax_rows (the public entry point: AVX-512 where available, scalar otherwise).
final class SoftmaxTests: XCTestCase {
    /// softmax(scale · x) of each row in double; with a causal offset, row r keeps columns ≤ r + offset.
    static func reference(_ x: [Float], rows: Int, cols: Int, ld: Int, scale: Double, causal: Int) -> [Double] {
        var y = x.map { Double($0) }
        for r in 0..<rows {
            let n = causal >= 0 ? min(cols, r + causal + 1) : cols
            let row = (0..<n).map { scale * Double(x[r * ld + $0]) }
            let m = row.max()!
            let e = row.map { exp($0 - m) }
            let s = e.reduce(0, +)
            for c in 0..<cols { y[r * ld + c] = c < n ? e[c] / s : 0 }
        }
        return y
    }

    func check(
        rows: Int, cols: Int, ld: Int, scale: Float, causal: Int, lo: Double = -3, hi: Double = 3,
        seed: UInt64, file: StaticString = #filePath, line: UInt = #line
    ) {
        var rng = SplitMix64(seed: seed)
        // Padding columns (ld > cols) hold a sentinel that must survive.
        var x = [Float](repeating: 12345, count: rows * ld)
        for r in 0..<rows { for c in 0..<cols { x[r * ld + c] = rng.uniform(lo, hi) } }
        let ref = Self.reference(x, rows: rows, cols: cols, ld: ld, scale: Double(scale), causal: causal)
        var y = x
        y.withUnsafeMutableBufferPointer { pv_softmax_rows($0.baseAddress, rows, cols, ld, scale, causal) }
        let what = "softmax rows \(rows) cols \(cols) ld \(ld) scale \(scale) causal \(causal)"
        assertClose(y, ref, what, file: file, line: line)
        for r in 0..<rows {
            for c in cols..<ld { XCTAssertEqual(y[r * ld + c], 12345, "\(what): padding written", file: file, line: line) }
            let n = causal >= 0 ? min(cols, r + causal + 1) : cols
            var sum = 0.0
            for c in 0..<cols {
                XCTAssertGreaterThanOrEqual(y[r * ld + c], 0, file: file, line: line)
                if c >= n { XCTAssertEqual(y[r * ld + c], 0, "\(what): masked column", file: file, line: line) }
                sum += Double(y[r * ld + c])
            }
            XCTAssertEqual(sum, 1, accuracy: 1e-5, "\(what): row \(r) sum", file: file, line: line)
        }
    }

    func testReportsISA() {
        let isa = pv_has_avx512()
        XCTAssertTrue(isa == 0 || isa == 1)
        print("pv_has_avx512() = \(isa)")
    }

    func testWidthsNotMultipleOf16() {
        var seed: UInt64 = 700
        for cols in [1, 15, 16, 17, 31, 32, 33, 77, 1000] {
            for scale: Float in [1, 0.125] {
                seed += 1
                check(rows: 3, cols: cols, ld: cols, scale: scale, causal: -1, seed: seed)
            }
        }
    }

    func testLeadingDimension() {
        check(rows: 4, cols: 17, ld: 20, scale: 1, causal: -1, seed: 710)
        check(rows: 3, cols: 77, ld: 80, scale: 0.5, causal: -1, seed: 711)
        check(rows: 5, cols: 15, ld: 32, scale: 1, causal: 0, seed: 712)
    }

    func testCausalOffsets() {
        var seed: UInt64 = 720
        for cols in [1, 15, 16, 17, 77, 1000] {
            for offset in [0, 2, 16, cols] {
                seed += 1
                check(rows: min(cols + 2, 20), cols: cols, ld: cols, scale: 0.7, causal: offset, seed: seed)
            }
        }
        // Offset placing rows in the middle of a wide matrix (as a later band of attention would).
        check(rows: 6, cols: 1000, ld: 1000, scale: 1, causal: 500, seed: 730)
    }

    func testLargeLogitsAndMaskedEntries() {
        // Large logits: no overflow thanks to the max subtraction.
        check(rows: 3, cols: 77, ld: 77, scale: 1, causal: -1, lo: -500, hi: 500, seed: 740)
        check(rows: 3, cols: 33, ld: 33, scale: 8, causal: -1, lo: 80, hi: 90, seed: 741)
        // −inf entries (additive masks) become exact zeros; the row still sums to 1.
        for cols in [5, 16, 17, 40] {
            var x = (0..<cols).map { Float($0 % 7) * 0.3 }
            for c in stride(from: 1, to: cols, by: 3) { x[c] = -.infinity }
            x.withUnsafeMutableBufferPointer { pv_softmax_rows($0.baseAddress, 1, cols, cols, 1, -1) }
            let ref = Self.reference(
                (0..<cols).map { c in c % 3 == 1 ? -Float.greatestFiniteMagnitude : Float(c % 7) * 0.3 },
                rows: 1, cols: cols, ld: cols, scale: 1, causal: -1)
            assertClose(x, ref, "softmax with -inf entries, cols \(cols)")
            for c in stride(from: 1, to: cols, by: 3) { XCTAssertEqual(x[c], 0, accuracy: 1e-30, "cols \(cols) c \(c)") }
        }
    }

    func testUniformRow() {
        for cols in [1, 15, 16, 17, 1000] {
            var x = [Float](repeating: 3.25, count: cols)
            x.withUnsafeMutableBufferPointer { pv_softmax_rows($0.baseAddress, 1, cols, cols, 0.3, -1) }
            for v in x { XCTAssertEqual(Double(v), 1 / Double(cols), accuracy: 1e-7 / Double(cols) + 1e-9, "cols \(cols)") }
        }
    }
}
