import Foundation
import PivotImage
import XCTest

/// The committed fixtures (made by scripts/fixtures/make_image_fixtures.py) and their expected values.
enum Fixtures {
    static var directory: String {
        Bundle.module.path(forResource: "Fixtures", ofType: nil) ?? "missing-fixtures"
    }

    static func path(_ name: String) -> String { directory + "/" + name }

    static func bytes(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: path(name))))
    }

    /// expected.json, parsed once.
    static let expected: [String: Any] = {
        guard let data = FileManager.default.contents(atPath: path("expected.json")),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return [:] }
        return object
    }()

    struct Decoded {
        let name: String
        let width: Int
        let height: Int
        let depth: Int
        let tolerance: Int
        let values: [Int]
    }

    /// Every file with expected decoded values, sorted by name.
    static var decoded: [Decoded] {
        let table = expected["decode"] as? [String: [String: Any]] ?? [:]
        return table.keys.sorted().compactMap { name in
            guard let entry = table[name], let w = entry["width"] as? Int, let h = entry["height"] as? Int,
                let depth = entry["depth"] as? Int, let tolerance = entry["tolerance"] as? Int,
                let values = entry["values"] as? [Int]
            else { return nil }
            return Decoded(name: name, width: w, height: h, depth: depth, tolerance: tolerance, values: values)
        }
    }

    static func list(_ key: String) -> [[String: Any]] {
        expected[key] as? [[String: Any]] ?? []
    }
}

/// A fresh temporary directory, removed when the test ends.
func temporaryDirectory(_ test: XCTestCase) throws -> String {
    let path = NSTemporaryDirectory() + "pivot-image-\(getpid())-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
    return path
}

func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

func directoryListing(_ path: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
}

/// The thrown `ImageError`, failing the test when the call succeeds or throws something else.
func imageError(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> ImageError? {
    do {
        try body()
        XCTFail("expected an ImageError", file: file, line: line)
    } catch let error as ImageError {
        XCTAssertFalse(error.description.contains("\n"), "multi-line error: \(error)", file: file, line: line)
        return error
    } catch {
        XCTFail("unexpected error type: \(error)", file: file, line: line)
    }
    return nil
}

/// Largest |a − b| over two equally long arrays (infinity when the lengths differ).
func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
    guard a.count == b.count else { return .infinity }
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

/// A deterministic pseudo-random generator (SplitMix64), so fuzz cases are the same on every run.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
