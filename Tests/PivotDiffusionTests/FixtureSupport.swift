import Foundation
import PivotTensor
import XCTest

/// Loads and decodes a JSON fixture from this target's `Fixtures` folder.
func loadFixture<T: Decodable>(_ name: String, as type: T.Type) throws -> T {
    let path = try XCTUnwrap(Bundle.module.path(forResource: "Fixtures/\(name)", ofType: nil), "missing fixture \(name)")
    return try JSONDecoder().decode(T.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
}

/// FNV-1a (64-bit) over 32-bit words, as the fixture scripts compute it; lower-case hex.
func fnv1a64(_ words: some Sequence<UInt32>) -> String {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for w in words {
        h ^= UInt64(w)
        h = h &* 0x100_0000_01B3
    }
    let hex = String(h, radix: 16)
    return String(repeating: "0", count: 16 - hex.count) + hex
}

/// A tensor from fp32 bit patterns.
func tensor(_ shape: [Int], bits: [UInt32]) -> Tensor {
    Tensor(shape: shape, values: bits.map { Float(bitPattern: $0) })
}

/// Asserts max |got − ref| ≤ tol · max(1, |ref|) elementwise (NaN must meet NaN, ±inf must match) and returns how
/// many elements are bit-identical.
@discardableResult
func assertWithin(
    _ got: [Float], _ ref: [Float], tol: Float = 1e-6, _ what: String,
    file: StaticString = #filePath, line: UInt = #line
) -> Int {
    XCTAssertEqual(got.count, ref.count, "\(what): element count", file: file, line: line)
    var worst: Float = 0, worstIndex = -1, identical = 0
    for i in 0..<min(got.count, ref.count) {
        let g = got[i], r = ref[i]
        if g.bitPattern == r.bitPattern {
            identical += 1
            continue
        }
        if g.isNaN || r.isNaN || g.isInfinite || r.isInfinite {
            XCTAssertTrue(g.isNaN && r.isNaN || g == r, "\(what)[\(i)]: \(g) vs \(r)", file: file, line: line)
            continue
        }
        let e = abs(g - r) / max(1, abs(r))
        if e > worst {
            worst = e
            worstIndex = i
        }
    }
    XCTAssertLessThanOrEqual(worst, tol, "\(what): worst relative error \(worst) at \(worstIndex)", file: file, line: line)
    return identical
}
