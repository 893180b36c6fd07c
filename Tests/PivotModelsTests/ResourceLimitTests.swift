import Foundation
import PivotBatch
import PivotIO
import XCTest

/// Text inputs of absurd size are refused with one line before their memory is spent: a manifest of a
/// million rows (`pivot batch`), a prompt file of a million lines (`pivot tokenize --file`); both limits can
/// be raised from the command line.
final class ResourceLimitTests: XCTestCase, CLIRunning {
    var model: String { Bundle.module.path(forResource: "Fixtures/sd1-tiny/model", ofType: nil) ?? "missing" }

    func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "pivot-limits-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    /// `header` then `count` copies of `line`, written in one go.
    func writeLines(_ path: String, header: String = "", _ line: String, count: Int) throws {
        var data = Data(header.utf8)
        let bytes = Data((line + "\n").utf8)
        data.reserveCapacity(data.count + bytes.count * count)
        for _ in 0..<count { data.append(bytes) }
        try data.write(to: URL(fileURLWithPath: path))
    }

    func testMillionRowManifestIsRefusedBeforeParsing() throws {
        let dir = try temporaryDirectory()
        let manifest = dir + "/rows.csv"
        try writeLines(manifest, header: "image,source,target\n", "p.png,a red circle,a blue circle", count: 1_000_000)
        let start = Date()
        XCTAssertThrowsError(try BatchManifest.read(manifest)) { error in
            XCTAssertEqual("\(error)", "\(manifest): has 1000001 rows, over the limit of 100000 rows; raise it with max_rows")
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 5, "counting lines, not parsing rows")
        // The command line names its flag, exits non-zero and writes nothing.
        try FileManager.default.createDirectory(atPath: dir + "/in", withIntermediateDirectories: true)
        let r = try pivot(["batch", dir + "/in", "--model", model, "-o", dir + "/out", "--manifest", manifest])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertEqual(r.err.split(separator: "\n").count, 1, r.err)
        XCTAssertTrue(r.err.contains("over the limit of 100000 rows; raise it with --max-rows"), r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/out/pivot-batch.jsonl"))
        // A lower limit is honoured as well.
        let small = dir + "/small.csv"
        try writeLines(small, header: "image,source,target\n", "p.png,a red circle,a blue circle", count: 3)
        let r2 = try pivot(["batch", dir + "/in", "--model", model, "-o", dir + "/out", "--manifest", small, "--max-rows", "2"])
        XCTAssertNotEqual(r2.status, 0)
        XCTAssertTrue(r2.err.contains("has 4 rows, over the limit of 2 rows"), r2.err)
    }

    func testMillionLinePromptFileIsRefused() throws {
        let dir = try temporaryDirectory()
        let prompts = dir + "/prompts.txt"
        try writeLines(prompts, "a red circle", count: 1_000_000)
        let r = try pivot(["tokenize", "--model", model, "--file", prompts])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertEqual(r.out, "")
        XCTAssertEqual(r.err.split(separator: "\n").count, 1, r.err)
        XCTAssertTrue(r.err.contains("has 1000000 prompts, over the limit of 100000 prompts; raise it with --max-lines"), r.err)
        // Within a raised limit the same kind of file is tokenized.
        try writeLines(prompts, "a red circle", count: 3)
        let ok = try pivot(["tokenize", "--model", model, "--json", "--file", prompts, "--max-lines", "3"])
        XCTAssertEqual(ok.status, 0, ok.err)
        XCTAssertEqual(ok.out.split(separator: "\n").count, 3)
    }
}
