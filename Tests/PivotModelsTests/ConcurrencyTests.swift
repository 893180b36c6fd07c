import Foundation
import PivotImage
import XCTest

/// Several pivot processes on one folder: two edits of one photo build its cached inversion once (a lock on
/// the cache key); two batch shards writing one output folder, one killed and rerun, record every row once.
final class ConcurrencyTests: XCTestCase, CLIRunning {
    var model: String { Bundle.module.path(forResource: "Fixtures/sd1-tiny/model", ofType: nil) ?? "missing" }
    var photo: String { Bundle.module.path(forResource: "Fixtures/inversion/photo.png", ofType: nil) ?? "missing" }

    func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "pivot-concurrency-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    /// Starts `pivot args…` without waiting; standard error goes to `stderr`.
    func start(_ args: [String], environment: [String: String] = [:], stderr: String) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        FileManager.default.createFile(atPath: stderr, contents: nil)
        p.standardError = FileHandle(forWritingAtPath: stderr)
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        return p
    }

    func testTwoEditsOfOnePhotoInvertItOnce() throws {
        let dir = try temporaryDirectory(), cache = dir + "/cache"
        let env = ["PIVOT_CACHE_DIR": cache]
        let edits = try (0..<2).map { k in
            try start(
                [
                    "edit", photo, "--model", model, "--source", "a red circle", "--target", "a blue circle", "--steps", "3", "--inner-steps", "2",
                    "-o", dir + "/out\(k).png",
                ], environment: env, stderr: dir + "/err\(k).txt")
        }
        for p in edits { p.waitUntilExit() }
        let errs = try (0..<2).map { try String(contentsOfFile: dir + "/err\($0).txt", encoding: .utf8) }
        for (p, err) in zip(edits, errs) { XCTAssertEqual(p.terminationStatus, 0, err) }
        for k in 0..<2 { XCTAssertNoThrow(try RGBImage(contentsOf: dir + "/out\(k).png")) }
        // One of them inverted; the other waited on the lock and used its entry.
        XCTAssertEqual(errs.filter { $0.contains("using the cached inversion") }.count, 1, errs.joined(separator: "\n---\n"))
        let entries = try FileManager.default.contentsOfDirectory(atPath: cache).filter { $0.hasSuffix(".safetensors") }
        XCTAssertEqual(entries.count, 1)
    }

    func testTwoShardsIntoOneFolderOneKilledAndRerun() throws {
        let dir = try temporaryDirectory(), input = dir + "/in", out = dir + "/out"
        try FileManager.default.createDirectory(atPath: input, withIntermediateDirectories: true)
        let base = try RGBImage(contentsOf: photo)
        for k in 0..<4 {
            var px = base.pixels
            for i in stride(from: 0, to: px.count, by: 3) { px[i] = min(1, px[i] + Float(k) * 0.05) }
            try RGBImage(width: base.width, height: base.height, pixels: px).write(input + "/p\(k).png")
        }
        func args(_ shard: String) -> [String] {
            [
                "batch", input, "--model", model, "-o", out, "--source", "a red circle", "--target", "a blue circle",
                "--steps", "2", "--inner-steps", "1", "--no-cache", "--quiet", "--shard", shard,
            ]
        }
        func journal() -> [[String: Any]] {
            guard let text = try? String(contentsOfFile: out + "/pivot-batch.jsonl", encoding: .utf8) else { return [] }
            return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }
        let first = try start(args("1/2"), stderr: dir + "/err1.txt")
        let second = try start(args("2/2"), stderr: dir + "/err2.txt")
        // Kill shard 1 as soon as any row is recorded (by either shard), while both are still writing.
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, first.isRunning, journal().isEmpty { usleep(10_000) }
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        second.waitUntilExit()
        XCTAssertEqual(second.terminationStatus, 0, (try? String(contentsOfFile: dir + "/err2.txt", encoding: .utf8)) ?? "")
        let rerun = try pivot(args("1/2"))
        XCTAssertEqual(rerun.status, 0, rerun.err)
        // Every row recorded ok exactly once, every output whole, no temporary file left.
        let ok = journal().filter { ($0["status"] as? String) == "ok" }.compactMap { $0["output"] as? String }
        XCTAssertEqual(ok.sorted(), (0..<4).map { "p\($0).png" }, "\(journal())")
        for k in 0..<4 { XCTAssertNoThrow(try RGBImage(contentsOf: out + "/p\(k).png"), "p\(k).png") }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.contains(".tmp-") }, [])
        // The journal holds only whole lines.
        let text = try String(contentsOfFile: out + "/pivot-batch.jsonl", encoding: .utf8)
        for line in text.split(separator: "\n") {
            XCTAssertNotNil(try? JSONSerialization.jsonObject(with: Data(line.utf8)), "cut line: \(line)")
        }
    }
}
