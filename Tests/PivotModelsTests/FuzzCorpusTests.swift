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
    /// The folder is part of the repository (its README says how a finding gets there), and every sub-folder
    /// names a target, so a regression input filed under a misspelt target cannot be skipped silently.
    func testRegressions() throws {
        let folder = fuzzRoot + "/regressions"
        var isFolder: ObjCBool = false
        XCTAssertTrue(
            FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder) && isFolder.boolValue,
            "Fuzz/regressions/ is missing")
        let replayed = try replay("regressions")
        var filed = 0
        for name in try FileManager.default.contentsOfDirectory(atPath: folder) where !name.hasPrefix(".") {
            var sub: ObjCBool = false
            guard FileManager.default.fileExists(atPath: folder + "/" + name, isDirectory: &sub), sub.boolValue
            else { continue }
            XCTAssertTrue(fuzzTargets.contains { $0.name == name }, "Fuzz/regressions/\(name) names no fuzz target")
            filed += try FileManager.default.contentsOfDirectory(atPath: folder + "/" + name).count
        }
        XCTAssertEqual(replayed, filed, "every regression input is replayed by the target its folder names")
    }

    /// The broken-promise checks themselves fire: a multi-line error message is caught.
    func testMultiLineMessageIsABrokenPromise() {
        struct TwoLines: Error, CustomStringConvertible { var description: String { "first\nsecond" } }
        XCTAssertNotNil(brokenMessage(TwoLines()))
        XCTAssertNil(brokenMessage(CocoaError(.fileNoSuchFile)))
    }
}
