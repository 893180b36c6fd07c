import Foundation
import Pivot
import PivotLoading
import PivotFormats
import PivotTensor
import XCTest

/// Textual-inversion embeddings in every format, against diffusers' `load_textual_inversion` + text encoder
/// (fixtures by scripts/fixtures/make_embedding_fixtures.py), and through the commands.
final class TextualInversionTests: XCTestCase, CLIRunning {
    var model: String { Bundle.module.path(forResource: "Fixtures/sd1-tiny/model", ofType: nil) ?? "missing" }
    var dir: String { Bundle.module.path(forResource: "Fixtures/embeddings", ofType: nil) ?? "missing" }
    var photo: String { Bundle.module.path(forResource: "Fixtures/inversion/photo.png", ofType: nil) ?? "missing" }
    var good: [String] { ["cat-toy.safetensors", "dog-toy.bin", "style.pt", "old-style.pt", "kohya-thing.safetensors"] }

    func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "pivot-ti-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    /// Formats, tokens and vector counts as each format defines them.
    func testReadsEveryFormat() throws {
        let expected: [(String, String, TextualInversionEmbedding.Format, Int)] = [
            ("cat-toy.safetensors", "<cat-toy>", .diffusers, 2), ("dog-toy.bin", "<dog-toy>", .diffusers, 1),
            ("style.pt", "a1-style", .automatic1111, 3), ("old-style.pt", "old-style", .automatic1111, 1),
            ("kohya-thing.safetensors", "kohya-thing", .kohya, 2),
        ]
        for (file, token, format, n) in expected {
            let e = try TextualInversionEmbedding(path: dir + "/" + file)
            XCTAssertEqual(e.token, token, file)
            XCTAssertEqual(e.format, format, file)
            XCTAssertEqual(e.vectors.shape, [n, 32], file)
            XCTAssertEqual(e.tokens.count, n)
            XCTAssertEqual(e.sha256.count, 64)
        }
        XCTAssertEqual(try TextualInversionEmbedding(path: dir + "/style.pt", token: "mine").token, "mine")
        XCTAssertEqual(try TextualInversionEmbedding(path: dir + "/cat-toy.safetensors").tokens, ["<cat-toy>", "<cat-toy>_1"])
    }

    /// `pivot encode` with all five files equals diffusers' conditioning to 1e-5.
    func testEncodeMatchesDiffusers() throws {
        let tmp = try temporaryDirectory()
        let reference = try SafeTensorsFile(path: dir + "/reference.safetensors")
        let prompts = (reference.metadata["prompts"] ?? "").split(separator: "\n").map(String.init)
        XCTAssertEqual(prompts.count, 4)
        // fp32: the reference path that parity is defined on (auto may pick bf16 on this processor)
        let args =
            ["encode", "--model", model, "--out", tmp + "/c.safetensors", "--quiet", "--precision", "fp32"]
            + good.flatMap { ["--embedding", dir + "/" + $0] } + prompts
        let r = try pivot(args)
        XCTAssertEqual(r.status, 0, r.err)
        let ours = try SafeTensorsFile(path: tmp + "/c.safetensors").floatTensor("last_hidden_state")
        let ref = try reference.floatTensor("last_hidden_state")
        XCTAssertEqual(ours.shape, ref.shape)
        var worst: Float = 0
        for i in 0..<ref.count { worst = max(worst, abs(ours.data[i] - ref.data[i])) }
        XCTAssertLessThanOrEqual(worst, 1e-5)
        // The embeddings change the conditioning: without them the first prompt differs.
        let plain = try pivot([
            "encode", "--model", model, "--out", tmp + "/p.safetensors", "--quiet", "--precision", "fp32",
            prompts[0],
        ])
        XCTAssertEqual(plain.status, 0, plain.err)
        let p = try SafeTensorsFile(path: tmp + "/p.safetensors").floatTensor("last_hidden_state")
        var change: Float = 0
        for i in 0..<p.count { change = max(change, abs(p.data[i] - ref.data[i])) }
        XCTAssertGreaterThan(change, 1e-2)
    }

    /// --embeddings DIR loads each file under its own token.
    func testDirectory() throws {
        let tmp = try temporaryDirectory()
        for f in good { try FileManager.default.copyItem(atPath: dir + "/" + f, toPath: tmp + "/" + f) }
        let all = try TextualInversionEmbedding.directory(tmp)
        XCTAssertEqual(Set(all.map(\.token)), ["<cat-toy>", "<dog-toy>", "a1-style", "old-style", "kohya-thing"])
        let r = try pivot([
            "encode", "--model", model, "--embeddings", tmp, "--out", tmp + "/c.safetensors",
            "<dog-toy> and <cat-toy> in a1-style",
        ])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.err.contains("embedding a1-style (automatic1111, 3 vectors)"), r.err)
    }

    /// Refused with one line: a token in the vocabulary, a width of another model, a file in no format, a
    /// token given twice, a missing file.
    func testRefusals() throws {
        let tmp = try temporaryDirectory()
        let cases: [([String], String)] = [
            (["--embedding", dir + "/cat-toy.safetensors=c"], "'c' is already in the vocabulary"),
            (["--embedding", dir + "/wide.safetensors"], "width 768"),
            (["--embedding", dir + "/two-keys.safetensors"], "not a textual-inversion embedding"),
            (["--embedding", dir + "/cat-toy.safetensors", "--embedding", dir + "/dog-toy.bin=<cat-toy>"], "already in the vocabulary"),
            (["--embedding", dir + "/missing.pt"], "missing.pt"),
            (["--embedding", dir + "/reference.safetensors"], "not a textual-inversion embedding"),
        ]
        for (extra, expected) in cases {
            let r = try pivot(["encode", "--model", model, "--out", tmp + "/x.safetensors", "a"] + extra)
            XCTAssertEqual(r.status, 1, "\(extra)")
            XCTAssertEqual(r.err.split(separator: "\n").filter { $0.hasPrefix("pivot: error: ") }.count, 1, r.err)
            XCTAssertTrue(r.err.contains(expected), "expected '\(expected)' in: \(r.err)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: tmp + "/x.safetensors"))
        }
    }

    /// Edits use the tokens in both prompts; the inversion cache and inversion files tell embeddings apart
    /// by content, so a changed file never reuses a stale inversion.
    func testEditWithEmbeddingsAndCacheKeys() throws {
        let tmp = try temporaryDirectory()
        let env = ["PIVOT_CACHE_DIR": tmp + "/cache"]
        try FileManager.default.copyItem(atPath: dir + "/cat-toy.safetensors", toPath: tmp + "/toy.safetensors")
        let args = [
            "edit", photo, "--model", model, "--source", "a <cat-toy> on a red circle",
            "--target", "a <cat-toy> on a blue circle", "--steps", "2", "--inner-steps", "1", "-o", tmp + "/out.png",
            "--embedding", tmp + "/toy.safetensors", "--reweight", "<cat-toy>=2",
        ]
        let first = try pivot(args, environment: env)
        XCTAssertEqual(first.status, 0, first.err)
        let again = try pivot(args, environment: env)
        XCTAssertTrue(again.err.contains("using the cached inversion"), again.err)
        // Same token, other vectors: another cache entry.
        try FileManager.default.removeItem(atPath: tmp + "/toy.safetensors")
        try FileManager.default.copyItem(atPath: dir + "/kohya-thing.safetensors", toPath: tmp + "/toy.safetensors")
        let changed = try pivot(args.dropLast(4) + ["--embedding", tmp + "/toy.safetensors=<cat-toy>"], environment: env)
        XCTAssertEqual(changed.status, 0, changed.err)
        XCTAssertFalse(changed.err.contains("using the cached inversion"), changed.err)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp + "/cache").filter { $0.hasSuffix(".safetensors") }.count, 2)
        // An inversion file made without embeddings is refused by an edit that loads some.
        let inv = tmp + "/plain.safetensors"
        XCTAssertEqual(
            try pivot([
                "invert", photo, "--model", model, "--prompt", "a red circle", "--steps", "2",
                "--inner-steps", "1", "-o", inv, "--quiet",
            ]).status, 0)
        let refused = try pivot([
            "edit", inv, "--model", model, "--source", "a red circle", "--target", "a blue circle",
            "-o", tmp + "/x.png", "--embedding", tmp + "/toy.safetensors=<cat-toy>",
        ])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.err.contains("textual-inversion embeddings"), refused.err)
    }
}
