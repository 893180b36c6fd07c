import Foundation
import Pivot
import PivotFormats
import PivotIO
import PivotLoading
import PivotTensor
import XCTest

/// Inversion files are validated in the library against the model before any work: hand-made, hostile
/// files get one typed error naming the tensor and both shapes, never a trap.
final class InversionFileTests: XCTestCase, CLIRunning {
    var model: String { Bundle.module.path(forResource: "Fixtures/sd1-tiny/model", ofType: nil) ?? "missing" }
    let steps = 3

    /// sd1-tiny: latents [T+1, 4, 16, 16], null embeddings [T, 77, 32].
    func tensors(
        latents: [Int]? = nil, nulls: [Int]? = nil, offsets: [Int]? = nil, poison: String? = nil,
        value: Float = .nan
    ) -> [(name: String, tensor: Tensor)] {
        func filled(_ shape: [Int], _ name: String) -> Tensor {
            let n = Tensor.elementCount(shape)
            var v = (0..<n).map { Float($0 % 7) * 0.1 }
            if poison == name, n > 0 { v[n / 2] = value }
            return Tensor(shape: shape, values: v)
        }
        var out = [("latents", filled(latents ?? [steps + 1, 4, 16, 16], "latents"))]
        if let nulls { out.append(("null_embeddings", filled(nulls, "null_embeddings"))) }
        if let offsets { out.append(("offsets", filled(offsets, "offsets"))) }
        return out
    }

    func write(_ tensors: [(name: String, tensor: Tensor)], method: String = "null-text", extra: [String: String] = [:]) throws -> String {
        let path = NSTemporaryDirectory() + "pivot-hostile-\(UUID().uuidString).safetensors"
        let metadata = ["format": "pivot-inversion-1", "method": method, "prompt": "a red circle"].merging(extra) { $1 }
        try SafeTensorsWriter.write(tensors, metadata: metadata, to: path)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    /// The library's error for a file, as one line (fails the test if the file is accepted).
    func rejection(_ path: String, _ sd: StableDiffusion, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try sd.readInversion(path: path, source: "a red circle")
            XCTFail("accepted \(path)", file: file, line: line)
            return ""
        } catch {
            XCTAssertTrue(error is InversionError, "\(type(of: error)): \(error)", file: file, line: line)
            let message = "\(error)"
            XCTAssertFalse(message.contains("\n"), message, file: file, line: line)
            return message
        }
    }

    func testHostileFilesAreRejectedWithTheTensorAndBothShapes() throws {
        let sd = try StableDiffusion(model: ModelFolder(path: model))
        let nulls = [steps, 77, 32]
        let cases: [(String, [(name: String, tensor: Tensor)], String, [String])] = [
            ("narrow null embeddings", tensors(nulls: [steps, 77, 16]), "null-text", ["null_embeddings", "[3, 77, 16]", "[3, 77, 32]"]),
            ("short null embeddings", tensors(nulls: [steps - 1, 77, 32]), "null-text", ["null_embeddings", "[2, 77, 32]", "[3, "]),
            ("2×2 latents", tensors(latents: [steps + 1, 4, 2, 2], nulls: nulls), "null-text", ["latents", "[4, 4, 2, 2]", "[4, 4, 16, 16]"]),
            (
                "wrong channels", tensors(latents: [steps + 1, 3, 16, 16], nulls: nulls), "null-text",
                ["latents", "[4, 3, 16, 16]", "[4, 4, 16, 16]"]
            ),
            ("rank-2 latents", tensors(latents: [steps + 1, 1024]), "ddim", ["latents", "[4, 1024]", "[T+1, C, h, w]"]),
            ("zero steps", tensors(latents: [1, 4, 16, 16]), "ddim", ["latents", "[1, 4, 16, 16]", "between 1 and"]),
            ("zero-sized side", tensors(latents: [steps + 1, 4, 0, 16]), "ddim", ["latents", "[4, 4, 0, 16]"]),
            ("more than 1000 steps", tensors(latents: [1002, 4, 1, 1]), "ddim", ["latents", "[1002, 4, 1, 1]", "1000"]),
            ("misshaped offsets", tensors(offsets: [steps, 4, 8, 8]), "direct", ["offsets", "[3, 4, 8, 8]", "[3, 4, 16, 16]"]),
            ("NaN latents", tensors(nulls: nulls, poison: "latents"), "null-text", ["latents", "not finite"]),
            (
                "infinite null embeddings", tensors(nulls: nulls, poison: "null_embeddings", value: .infinity), "null-text",
                ["null_embeddings", "not finite"]
            ),
            ("NaN offsets", tensors(offsets: [steps, 4, 16, 16], poison: "offsets"), "direct", ["offsets", "not finite"]),
            ("null-text without embeddings", tensors(), "null-text", ["null_embeddings"]),
        ]
        for (name, tensors, method, expected) in cases {
            let message = rejection(try write(tensors, method: method), sd)
            for part in expected { XCTAssertTrue(message.contains(part), "\(name): '\(part)' not in: \(message)") }
        }
        let disagreeing = try write(tensors(nulls: nulls), extra: ["steps": "5"])
        XCTAssertTrue(rejection(disagreeing, sd).contains("records 5 steps but holds latents for 3"))
    }

    /// A given setting that disagrees with the file names the setting by key in the library and as a flag
    /// on the command line.
    func testSettingConflictsNameTheSetting() throws {
        let sd = try StableDiffusion(model: ModelFolder(path: model))
        let path = try write(tensors(nulls: [steps, 77, 32]), extra: ["steps": "3", "guidance": "7.5"])
        XCTAssertNoThrow(try sd.readInversion(path: path, source: "a red circle", given: .init(steps: 3, guidance: 7.5)))
        XCTAssertThrowsError(try sd.readInversion(path: path, source: "a red circle", given: .init(guidance: 2))) { error in
            XCTAssertEqual(oneLineDescription(of: error), "\(path): made with other settings: guidance 2.0 (the file has 7.5)")
            XCTAssertTrue(oneLineDescription(of: error, naming: { "--" + $0 }).contains("--guidance 2.0"))
        }
    }

    /// The command line turns each rejection into one `pivot: error:` line and exit status 1, and writes nothing.
    func testCommandLineRejectsHostileFilesCleanly() throws {
        let out = NSTemporaryDirectory() + "pivot-hostile-\(UUID().uuidString).png"
        for tensors in [
            tensors(nulls: [steps, 77, 16]), tensors(latents: [steps + 1, 4, 2, 2], nulls: [steps, 77, 32]),
            tensors(nulls: [steps, 77, 32], poison: "latents"),
        ] {
            let path = try write(tensors)
            let r = try pivot([
                "edit", path, "--model", model, "--source", "a red circle", "--target", "a blue circle",
                "-o", out, "--precision", "fp32",
            ])
            XCTAssertEqual(r.status, 1, r.err)
            let lines = r.err.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, r.err)
            XCTAssertTrue(lines.first?.hasPrefix("pivot: error: \(path): ") ?? false, r.err)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        }
    }

    /// A record pivot wrote itself passes the same validation, and a damaged cache entry is recomputed.
    func testRoundTripAndDamagedCacheEntry() throws {
        let sd = try StableDiffusion(model: ModelFolder(path: model))
        let photo = try XCTUnwrap(Bundle.module.path(forResource: "Fixtures/inversion/photo.png", ofType: nil))
        var s = InversionSettings()
        s.method = .ddim
        s.steps = 2
        let cache = InversionCache(directory: NSTemporaryDirectory() + "pivot-cache-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: cache.directory) }
        let (record, cachedAt) = try sd.inversion(photo: photo, prompt: "a red circle", settings: s, cache: cache)
        XCTAssertNil(cachedAt)
        let path = NSTemporaryDirectory() + "pivot-valid-\(UUID().uuidString).safetensors"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        try record.write(to: path)
        XCTAssertNoThrow(try sd.readInversion(path: path, source: "a red circle", given: .init(method: .ddim, steps: 2)))
        // Overwrite the cache entry with latents of the wrong size: the next call inverts again.
        let entry = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: cache.directory).first)
        let damaged = InversionRecord(method: .ddim, latents: (0...2).map { _ in Tensor(zeros: [1, 4, 2, 2]) }, metadata: record.metadata)
        try damaged.write(to: (cache.directory as NSString).appendingPathComponent(entry))
        let again = try sd.inversion(photo: photo, prompt: "a red circle", settings: s, cache: cache)
        XCTAssertNil(again.cachedAt)
        XCTAssertEqual(again.record.latents[0].shape, [1, 4, 16, 16])
    }
}
