import Foundation
import XCTest

/// The fuzz targets' seed corpora and every input the fuzzer ever found (`Fuzz/regressions/<target>/`), replayed
/// through the same targets (`FuzzTargets.swift` is `Fuzz/Sources/PivotFuzz/Targets.swift`) without libFuzzer:
/// each reader returns something sane or throws a one-line error. A crash found by `scripts/fuzz.sh` becomes a
/// file in `Fuzz/regressions/<target>/`, so this suite keeps it fixed.
final class FuzzCorpusTests: XCTestCase {
    private var fuzzRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fuzz").path
    }

    private func inputs(_ kind: String, _ target: String) throws -> [String] {
        let folder = fuzzRoot + "/\(kind)/\(target)"
        guard FileManager.default.fileExists(atPath: folder) else { return [] }
        return try FileManager.default.contentsOfDirectory(atPath: folder).sorted().map { folder + "/" + $0 }
    }

    private func replay(_ kind: String) throws -> Int {
        let scratch = NSTemporaryDirectory() + "pivot-fuzz-replay-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        var count = 0
        for target in fuzzTargets {
            for path in try inputs(kind, target.name) {
                let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
                fuzzOne(target, bytes, directory: scratch) { XCTFail("\(target.name) \(path): \($0)") }
                count += 1
            }
        }
        return count
    }

    /// Every seed of every target (valid files and near misses) reads or fails cleanly.
    func testSeedCorpora() throws {
        for target in fuzzTargets {
            XCTAssertFalse(try inputs("corpus", target.name).isEmpty, "\(target.name) has no seeds in Fuzz/corpus/")
        }
        XCTAssertGreaterThan(try replay("corpus"), 90)
    }

    /// Inputs that once crashed or broke a promise stay fixed.
    func testRegressions() throws {
        _ = try replay("regressions")
        for name in try FileManager.default.contentsOfDirectory(atPath: fuzzRoot + "/regressions") where !name.hasPrefix(".") {
            XCTAssertTrue(fuzzTargets.contains { $0.name == name }, "Fuzz/regressions/\(name) names no fuzz target")
        }
    }

    /// The broken-promise checks themselves fire: a multi-line error message is caught.
    func testMultiLineMessageIsABrokenPromise() {
        struct TwoLines: Error, CustomStringConvertible { var description: String { "first\nsecond" } }
        XCTAssertNotNil(brokenMessage(TwoLines()))
        XCTAssertNil(brokenMessage(CocoaError(.fileNoSuchFile)))
    }
}
