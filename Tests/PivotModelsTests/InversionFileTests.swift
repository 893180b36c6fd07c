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
    var root: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }
    var model: String { root + "/samples/models/tiny-random" }
    var photo: String { Bundle.module.path(forResource: "Fixtures/inversion/photo.png", ofType: nil) ?? "missing" }
    let steps = 3

    /// The model, and what it needs of an inversion (tiny-random: latents [T+1, 4, 16, 16], null
    /// embeddings [T, 77, 32]).
    func load() throws -> (StableDiffusion, InversionShape) {
        let sd = try StableDiffusion(model: ModelFolder(path: model))
        return (sd, sd.inversionShape())
    }

    /// The tensors of a hand-made file: `latents` (the model's shape unless given) and, where given,
    /// `null_embeddings` and `offsets`; `poison` gets one `value` in the middle.
    func tensors(
        _ need: InversionShape, latents: [Int]? = nil, nulls: [Int]? = nil, offsets: [Int]? = nil, poison: String? = nil,
        value: Float = .nan
    ) -> [(name: String, tensor: Tensor)] {
        func filled(_ shape: [Int], _ name: String) -> Tensor {
            let n = Tensor.elementCount(shape)
            var v = (0..<n).map { Float($0 % 7) * 0.1 }
            if poison == name, n > 0 { v[n / 2] = value }
            return Tensor(shape: shape, values: v)
        }
        var out = [("latents", filled(latents ?? [steps + 1, need.channels, need.height, need.width], "latents"))]
        if let nulls { out.append(("null_embeddings", filled(nulls, "null_embeddings"))) }
        if let offsets { out.append(("offsets", filled(offsets, "offsets"))) }
        return out
    }

    func write(
        _ tensors: [(name: String, tensor: Tensor)], int64: [(name: String, shape: [Int], values: [Int64])] = [],
        method: String = "null-text", extra: [String: String] = [:]
    ) throws -> String {
        let path = NSTemporaryDirectory() + "pivot-hostile-\(UUID().uuidString).safetensors"
        let metadata = ["format": "pivot-inversion-1", "method": method, "prompt": "a red circle"].merging(extra) { $1 }
        try SafeTensorsWriter.write(tensors, int64: int64, metadata: metadata, to: path)
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
            XCTAssertTrue(message.hasPrefix(path + ": "), message, file: file, line: line)
            return message
        }
    }

    func testHostileFilesAreRejectedWithTheTensorAndBothShapes() throws {
        let (sd, need) = try load()
        let (c, h, w, d) = (need.channels, need.height, need.width, need.textWidth)
        XCTAssertEqual([c, h, w, need.tokens, d], [4, 16, 16, 77, 32], "tiny-random's shapes changed")
        let nulls = [steps, 77, d]
        let latentsOK = "[\(steps + 1), \(c), \(h), \(w)]"
        let cases: [(String, [(name: String, tensor: Tensor)], String, [String])] = [
            (
                "narrow null embeddings", tensors(need, nulls: [steps, 77, d / 2]), "null-text",
                ["null_embeddings is [3, 77, 16]", "[3, 77, 32] (steps, tokens, text width)"]
            ),
            (
                "short null embeddings", tensors(need, nulls: [steps - 1, 77, d]), "null-text",
                ["null_embeddings is [2, 77, 32]", "[3, 77, 32] (the latents' 3 steps, tokens, text width)"]
            ),
            (
                "null embeddings of the wrong rank", tensors(need, nulls: [steps, 77 * d]), "null-text",
                ["null_embeddings is [3, 2464]", "[3, tokens, width]"]
            ),
            (
                "null embeddings with a huge first dimension", tensors(need, nulls: [100_000, 1, 1]), "null-text",
                ["null_embeddings is [100000, 1, 1]", "it must be [3, "]
            ),
            (
                "77 tokens missing", tensors(need, nulls: [steps, 76, d]), "null-text",
                ["null_embeddings is [3, 76, 32]", "[3, 77, 32]"]
            ),
            (
                "2×2 latents", tensors(need, latents: [steps + 1, c, 2, 2], nulls: nulls), "null-text",
                ["latents is [4, 4, 2, 2]", latentsOK + " (steps + 1, latent channels, latent height, latent width)"]
            ),
            (
                "wrong channels", tensors(need, latents: [steps + 1, c - 1, h, w], nulls: nulls), "null-text",
                ["latents is [4, 3, 16, 16]", latentsOK]
            ),
            ("rank-2 latents", tensors(need, latents: [steps + 1, 1024]), "ddim", ["latents is [4, 1024]", "[T+1, C, h, w]"]),
            ("rank-5 latents", tensors(need, latents: [steps + 1, 1, c, h, w]), "ddim", ["latents is [4, 1, 4, 16, 16]", "[T+1, C, h, w]"]),
            ("zero steps", tensors(need, latents: [1, c, h, w]), "ddim", ["latents is [1, 4, 16, 16]", "between 1 and 1000"]),
            ("empty latents", tensors(need, latents: [0, c, h, w]), "ddim", ["latents is [0, 4, 16, 16]", "every side positive"]),
            ("zero-sized side", tensors(need, latents: [steps + 1, c, 0, w]), "ddim", ["latents is [4, 4, 0, 16]", "every side positive"]),
            ("more than 1000 steps", tensors(need, latents: [1002, c, 1, 1]), "ddim", ["latents is [1002, 4, 1, 1]", "between 1 and 1000"]),
            (
                "misshaped offsets", tensors(need, offsets: [steps, c, h / 2, w / 2]), "direct",
                ["offsets is [3, 4, 8, 8]", "[3, 4, 16, 16] (steps, then the latent's shape)"]
            ),
            ("short offsets", tensors(need, offsets: [steps - 1, c, h, w]), "direct", ["offsets is [2, 4, 16, 16]", "[3, 4, 16, 16]"]),
            ("offsets of the wrong rank", tensors(need, offsets: [steps, c * h * w]), "direct", ["offsets is [3, 1024]", "[3, 4, 16, 16]"]),
            ("NaN latents", tensors(need, nulls: nulls, poison: "latents"), "null-text", ["latents [4, 4, 16, 16]", "not finite", "nan"]),
            (
                "−∞ latents", tensors(need, latents: [steps + 1, c, h, w], poison: "latents", value: -.infinity), "ddim",
                ["latents [4, 4, 16, 16]", "not finite", "-inf"]
            ),
            (
                "infinite null embeddings", tensors(need, nulls: nulls, poison: "null_embeddings", value: .infinity), "null-text",
                ["null_embeddings [3, 77, 32]", "not finite", "inf"]
            ),
            ("NaN offsets", tensors(need, offsets: [steps, c, h, w], poison: "offsets"), "direct", ["offsets [3, 4, 16, 16]", "not finite"]),
            ("null-text without embeddings", tensors(need), "null-text", ["null_embeddings is missing", "null-text", "[3, tokens, width]"]),
            ("direct without offsets", tensors(need), "direct", ["offsets is missing", "direct", "[3, 4, 16, 16]"]),
        ]
        for (name, tensors, method, expected) in cases {
            let message = rejection(try write(tensors, method: method), sd)
            for part in expected { XCTAssertTrue(message.contains(part), "\(name): '\(part)' not in: \(message)") }
        }
        // The recorded steps disagree with the latents.
        let disagreeing = rejection(try write(tensors(need, nulls: nulls), extra: ["steps": "5"]), sd)
        XCTAssertTrue(disagreeing.contains("latents is \(latentsOK)"), disagreeing)
        XCTAssertTrue(disagreeing.contains("[6, 4, 16, 16] (the recorded steps 5 + 1"), disagreeing)
        // Integer tensors are refused, not reinterpreted.
        let integers = try write(
            [], int64: [("latents", [steps + 1, c, h, w], [Int64](repeating: 1, count: (steps + 1) * c * h * w))], method: "ddim")
        let refused = rejection(integers, sd)
        XCTAssertTrue(refused.contains("latents [4, 4, 16, 16] is stored as I64"), refused)
    }

    /// `validate` checks a record made in memory too, with the bound the scheduler sets on the steps.
    func testValidateChecksRecordsInMemory() throws {
        let need = InversionShape(channels: 4, height: 2, width: 2, tokens: 77, textWidth: 8, maxSteps: 10)
        let latent = { Tensor(zeros: [1, 4, 2, 2]) }
        let many = InversionRecord(method: .ddim, latents: (0...11).map { _ in latent() }, metadata: [:])
        XCTAssertThrowsError(try many.validate(against: need, file: "x")) {
            XCTAssertEqual("\($0)", "x: latents is [12, 4, 2, 2]; it must be [T+1, 4, 2, 2] with T (the steps) between 1 and 10")
        }
        let empty = InversionRecord(method: .ddim, latents: [], metadata: [:])
        XCTAssertThrowsError(try empty.validate(against: need, file: "x")) { XCTAssertTrue("\($0)".contains("latents is [0]"), "\($0)") }
        let nulls = InversionRecord(
            method: .nullText, latents: (0...2).map { _ in latent() }, nullEmbeddings: [Tensor(zeros: [1, 77, 8]), Tensor(zeros: [1, 77, 4])],
            metadata: [:])
        XCTAssertThrowsError(try nulls.validate(against: need, file: "x")) {
            XCTAssertEqual("\($0)", "x: null_embeddings is [2, 77, 4]; it must be [2, 77, 8] (steps, tokens, text width) for this model")
        }
        let fine = InversionRecord(method: .ddim, latents: (0...2).map { _ in latent() }, metadata: [:])
        XCTAssertNoThrow(try fine.validate(against: need, file: "x"))
        XCTAssertEqual(unstackBatch(Tensor(zeros: [0, 4])).count, 0)
    }

    /// A given setting that disagrees with the file names the setting by key in the library and as a flag
    /// on the command line.
    func testSettingConflictsNameTheSetting() throws {
        let (sd, need) = try load()
        let path = try write(tensors(need, nulls: [steps, 77, need.textWidth]), extra: ["steps": "3", "guidance": "7.5", "inner_steps": "10"])
        XCTAssertNoThrow(try sd.readInversion(path: path, source: "a red circle", given: .init(steps: 3, guidance: 7.5)))
        XCTAssertThrowsError(try sd.readInversion(path: path, source: "a red circle", given: .init(guidance: 2))) { error in
            XCTAssertTrue(error is SettingsNamingError)
            XCTAssertEqual(oneLineDescription(of: error), "\(path): made with other settings: guidance 2.0 (the file has 7.5)")
        }
        XCTAssertThrowsError(try sd.readInversion(path: path, source: "a red circle", given: .init(innerSteps: 4))) { error in
            let flags = oneLineDescription(of: error, naming: { "--" + $0.replacingOccurrences(of: "_", with: "-") })
            XCTAssertTrue(flags.contains("--inner-steps 4"), flags)
            XCTAssertTrue(oneLineDescription(of: error).contains("inner_steps 4"))
        }
    }

    /// The command line turns each rejection into one `pivot: error:` line and exit status 1 (no signal, no
    /// backtrace), and writes nothing.
    func testCommandLineRejectsHostileFilesCleanly() throws {
        let (_, need) = try load()
        let (c, d) = (need.channels, need.textWidth)
        let out = NSTemporaryDirectory() + "pivot-hostile-\(UUID().uuidString).png"
        for (tensors, method, says) in [
            (tensors(need, nulls: [steps, 77, d / 2]), "null-text", "null_embeddings is [3, 77, 16]"),
            (tensors(need, nulls: [steps - 1, 77, d]), "null-text", "null_embeddings is [2, 77, 32]"),
            (tensors(need, latents: [steps + 1, c, 2, 2], nulls: [steps, 77, d]), "null-text", "latents is [4, 4, 2, 2]"),
            (tensors(need, nulls: [steps, 77, d], poison: "latents"), "null-text", "not finite"),
            (tensors(need, latents: [steps + 1, 1024]), "ddim", "latents is [4, 1024]"),
            (tensors(need, offsets: [steps, c, 8, 8]), "direct", "offsets is [3, 4, 8, 8]"),
        ] {
            let path = try write(tensors, method: method)
            let r = try pivot([
                "edit", path, "--model", model, "--source", "a red circle", "--target", "a blue circle", "-o", out,
            ])
            XCTAssertEqual(r.status, 1, r.err)
            let lines = r.err.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, r.err)
            XCTAssertTrue(lines.first?.hasPrefix("pivot: error: \(path): ") ?? false, r.err)
            XCTAssertTrue(r.err.contains(says), r.err)
            XCTAssertFalse(r.err.contains("Fatal error") || r.err.contains("backtrace") || r.err.contains("Stack dump"), r.err)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        }
    }

    /// A file `pivot invert` wrote passes the same validation and edits; a flag that disagrees with it is
    /// named as a flag.
    func testRoundTripThroughTheCommandLine() throws {
        let (sd, _) = try load()
        let dir = NSTemporaryDirectory() + "pivot-valid-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/photo.safetensors", out = dir + "/out.png"
        let invert = try pivot([
            "invert", photo, "--model", model, "--prompt", "a red circle", "--steps", "2", "--method", "ddim", "-o", path, "--quiet",
        ])
        XCTAssertEqual(invert.status, 0, invert.err)
        let record = try sd.readInversion(path: path, source: "a red circle", given: .init(method: .ddim, steps: 2))
        XCTAssertEqual(record.steps, 2)
        XCTAssertNoThrow(try record.validate(against: sd.inversionShape(), file: path))
        let edit = try pivot(["edit", path, "--model", model, "--source", "a red circle", "--target", "a blue circle", "-o", out, "--quiet"])
        XCTAssertEqual(edit.status, 0, edit.err)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out))
        let conflict = try pivot([
            "edit", path, "--model", model, "--source", "a red circle", "--target", "a blue circle", "-o", dir + "/no.png", "--steps", "3",
        ])
        XCTAssertEqual(conflict.status, 1, conflict.err)
        XCTAssertEqual(conflict.err, "pivot: error: \(path): made with other settings: --steps 3 (the file has 2)\n")
    }

    /// A damaged cache entry counts as absent: the next call inverts again.
    func testDamagedCacheEntryIsRecomputed() throws {
        let (sd, need) = try load()
        var s = InversionSettings()
        s.method = .ddim
        s.steps = 2
        let cache = InversionCache(directory: NSTemporaryDirectory() + "pivot-cache-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: cache.directory) }
        let (record, cachedAt) = try sd.inversion(photo: photo, prompt: "a red circle", settings: s, cache: cache)
        XCTAssertNil(cachedAt)
        XCTAssertNoThrow(try record.validate(against: need, file: "cached"))
        // Overwrite the cache entry with latents of the wrong size.
        let entry = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: cache.directory).first { $0.hasSuffix(".safetensors") })
        let damaged = InversionRecord(method: .ddim, latents: (0...2).map { _ in Tensor(zeros: [1, 4, 2, 2]) }, metadata: record.metadata)
        try damaged.write(to: (cache.directory as NSString).appendingPathComponent(entry))
        let again = try sd.inversion(photo: photo, prompt: "a red circle", settings: s, cache: cache)
        XCTAssertNil(again.cachedAt)
        XCTAssertEqual(again.record.latents[0].shape, [1, need.channels, need.height, need.width])
    }

    /// A cache entry with one flipped bit in its tensors still parses and fits the model, but its content no
    /// longer matches the hash it was stored with: it is reported damaged, never used, and recomputed.
    func testFlippedBitInCacheEntryIsDetectedAndRecomputed() throws {
        let (sd, _) = try load()
        var s = InversionSettings()
        s.method = .ddim
        s.steps = 2
        let cache = InversionCache(directory: NSTemporaryDirectory() + "pivot-cache-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: cache.directory) }
        let first = try sd.inversion(photo: photo, prompt: "a red circle", settings: s, cache: cache)
        XCTAssertNil(first.cachedAt)
        let entry = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: cache.directory).first { $0.hasSuffix(".safetensors") })
        let path = (cache.directory as NSString).appendingPathComponent(entry)
        let hit = try sd.inversion(photo: photo, prompt: "a red circle", settings: s, cache: cache)
        XCTAssertEqual(hit.cachedAt, path)
        // Flip the lowest bit of the last byte (a latent value's mantissa).
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count - 1] ^= 1
        try bytes.write(to: URL(fileURLWithPath: path))
        XCTAssertNoThrow(try InversionRecord(path: path), "the damage is invisible to the format checks")
        var warnings: [String] = []
        let again = try sd.inversion(photo: photo, prompt: "a red circle", settings: s, cache: cache, warn: { warnings.append($0) })
        XCTAssertNil(again.cachedAt, "a damaged entry must not be used")
        XCTAssertEqual(warnings.count, 1)
        XCTAssertTrue(warnings.first?.contains("does not match its hash") ?? false, "\(warnings)")
        XCTAssertEqual(again.record.latents.map(\.scalars), first.record.latents.map(\.scalars))
        // The recomputed entry replaced it and is trusted again.
        XCTAssertEqual(try sd.inversion(photo: photo, prompt: "a red circle", settings: s, cache: cache).cachedAt, path)
    }
}
