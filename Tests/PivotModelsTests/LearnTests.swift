import Foundation
import Pivot
import PivotFormats
import PivotImage
import PivotLoading
import PivotTensor
import XCTest

/// `pivot learn` on the sd1-tiny model: resume (also after SIGKILL) ends where an uninterrupted run does,
/// early stopping keeps the best vectors, the files it writes, and bad input as one-line errors with
/// nothing written.
final class LearnTests: XCTestCase, CLIRunning {
    var model: String { Bundle.module.path(forResource: "Fixtures/sd1-tiny/model", ofType: nil) ?? "missing" }
    var photo: String { Bundle.module.path(forResource: "Fixtures/inversion/photo.png", ofType: nil) ?? "missing" }

    func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "pivot-learn-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    /// Two photos: the fixture and its mirror image in another folder (different content, same size).
    func photos(in dir: String) throws -> [String] {
        let second = dir + "/photos/b.png"
        try FileManager.default.createDirectory(atPath: dir + "/photos", withIntermediateDirectories: true)
        try RGBImage(contentsOf: photo).oriented(3).writePNG(second)
        return [photo, second]
    }

    func settings(steps: Int) -> LearnSettings {
        var s = LearnSettings(token: "<toy>", initWord: "red")
        s.vectors = 2
        s.steps = steps
        s.seed = 5
        return s
    }

    func vectors(_ path: String) throws -> [Float] {
        try TextualInversionEmbedding(path: path).vectors.scalars
    }

    /// A run of 6 steps, resumed to 12, ends bit for bit where a run of 12 does; resuming with other
    /// settings is refused by name.
    func testResumeEqualsUninterrupted() throws {
        let dir = try temporaryDirectory()
        let inputs = try photos(in: dir)
        var whole = LearnOutputs(output: dir + "/whole.safetensors")
        whole.lossPlot = false
        let full = try StableDiffusion(model: ModelFolder(path: model))
        let r = try full.learn(photos: inputs, settings: settings(steps: 12), outputs: whole, resume: false)
        XCTAssertEqual(r.steps, 12)
        var parts = LearnOutputs(output: dir + "/parts.safetensors")
        parts.lossPlot = false
        _ = try StableDiffusion(model: ModelFolder(path: model)).learn(photos: inputs, settings: settings(steps: 6), outputs: parts, resume: false)
        XCTAssertNotEqual(try vectors(parts.output), try vectors(whole.output))
        var events: [String] = []
        let resumed = try StableDiffusion(model: ModelFolder(path: model)).learn(
            photos: inputs, settings: settings(steps: 12), outputs: parts, resume: true
        ) { if case .resumed(let step) = $0 { events.append("resumed \(step)") } }
        XCTAssertEqual(events, ["resumed 6"])
        XCTAssertEqual(resumed.steps, 12)
        XCTAssertEqual(try vectors(parts.output), try vectors(whole.output))
        XCTAssertEqual(resumed.smoothedLoss, r.smoothedLoss)

        var other = settings(steps: 12)
        other.learningRate = 1e-3
        XCTAssertThrowsError(
            try StableDiffusion(model: ModelFolder(path: model)).learn(photos: inputs, settings: other, outputs: parts, resume: true)
        ) {
            XCTAssertTrue("\($0)".contains("lr=0.005"), "\($0)")
        }
        XCTAssertThrowsError(
            try StableDiffusion(model: ModelFolder(path: model)).learn(photos: [photo], settings: settings(steps: 12), outputs: parts, resume: true)
        ) {
            XCTAssertTrue("\($0)".contains("other photos"), "\($0)")
        }
    }

    /// `pivot learn` killed with SIGKILL after its first checkpoint, then run again with `--resume`, writes
    /// the same token file as an uninterrupted run.
    func testResumeAfterSIGKILL() throws {
        let dir = try temporaryDirectory()
        let inputs = try photos(in: dir)
        func args(_ out: String) -> [String] {
            ["learn"] + inputs + [
                "--model", model, "--token", "<toy>", "--init", "red", "--vectors", "2", "--steps", "16", "--save-every", "4",
                "--seed", "3", "--threads", "1", "--quiet", "--no-loss-plot", "-o", out,
            ]
        }
        XCTAssertEqual(try pivot(args(dir + "/whole.safetensors")).status, 0)

        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = args(dir + "/killed.safetensors")
        p.standardError = FileHandle.nullDevice
        try p.run()
        let state = dir + "/killed.learn-state.safetensors"
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: state) && p.isRunning && Date() < deadline { usleep(2_000) }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .uncaughtSignal, "the run ended before it could be killed; the test proves nothing")
        let checkpoint = try SafeTensorsFile(path: state).int64Values("counters").values[0]
        XCTAssertLessThan(checkpoint, 16)

        let r = try pivot(args(dir + "/killed.safetensors") + ["--resume", "--json"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("\"kind\":\"embedding\""), r.out)
        XCTAssertEqual(try vectors(dir + "/killed.safetensors"), try vectors(dir + "/whole.safetensors"))
    }

    /// With patience, training stops once the validation loss stops improving and the token file holds the
    /// best validation's vectors; previews and the loss plot are written beside the token.
    func testEarlyStoppingKeepsBestAndWritesPictures() throws {
        let dir = try temporaryDirectory()
        var s = settings(steps: 200)
        s.learningRate = 0.05  // big steps: the validation loss soon stops improving
        s.validateEvery = 1
        s.patience = 2
        var out = LearnOutputs(output: dir + "/t.pt")
        out.format = .a1111
        out.previewEvery = 3
        out.previewSeeds = [0, 1]
        out.previewSteps = 2
        var validations = 0
        let r = try StableDiffusion(model: ModelFolder(path: model)).learn(photos: [photo], settings: s, outputs: out, resume: false) {
            if case .validation = $0 { validations += 1 }
        }
        XCTAssertTrue(r.stoppedEarly)
        XCTAssertLessThan(r.steps, 200)
        XCTAssertEqual(validations, r.steps)
        XCTAssertEqual(r.steps - r.vectorsFromStep, 2, "stops 2 validations after the best")
        let token = try TextualInversionEmbedding(path: out.output)
        XCTAssertEqual(token.format, .automatic1111)
        XCTAssertEqual(token.token, "<toy>")
        let state = try SafeTensorsFile(path: out.statePath)
        XCTAssertEqual(token.vectors.scalars, try state.floatTensor("best_vectors").scalars)
        XCTAssertNotEqual(token.vectors.scalars, try state.floatTensor("vectors").scalars)
        let plot = try RGBImage(contentsOf: out.lossPlotPath)
        XCTAssertEqual([plot.width, plot.height], [800, 480])
        let previews = try FileManager.default.contentsOfDirectory(atPath: out.previewDirectory).sorted()
        XCTAssertEqual(previews.first, "step-000003.png")
        XCTAssertTrue(previews.contains(String(format: "step-%06d.png", r.steps)), "\(previews)")
        XCTAssertGreaterThan(try RGBImage(contentsOf: out.previewDirectory + "/" + previews[0]).width, 2 * 32)
    }

    /// The learnt file works where any token file does: `generate --embedding`.
    func testLearntTokenGenerates() throws {
        let dir = try temporaryDirectory()
        let r = try pivot([
            "learn", photo, "--model", model, "--token", "<toy>", "--init", "red", "--steps", "3", "--quiet", "-o", dir + "/toy.safetensors",
        ])
        XCTAssertEqual(r.status, 0, r.err)
        let g = try pivot([
            "generate", "--model", model, "--embedding", dir + "/toy.safetensors", "--steps", "2", "--quiet", "-o", dir + "/g.png",
            "a photo of a <toy>",
        ])
        XCTAssertEqual(g.status, 0, g.err)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/g.png"))
    }

    /// Bad input: one line on standard error, a non-zero exit, nothing written, the photo untouched.
    func testBadInputIsOneLineAndWritesNothing() throws {
        let dir = try temporaryDirectory()
        let bogus = dir + "/bogus.png"
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: bogus))
        let templates = dir + "/templates.txt"
        try Data("a photo of a thing\n".utf8).write(to: URL(fileURLWithPath: templates))
        let wide = dir + "/wide.learn-state.safetensors"
        try SafeTensorsWriter.write(
            [("vectors", Tensor(zeros: [1, 16])), ("adam_m", Tensor(zeros: [1, 16])), ("adam_v", Tensor(zeros: [1, 16]))],
            int64: [("counters", [3], [0, 0, -1])], metadata: ["format": "pivot-learn-state-1"], to: wide)
        let photoBytes = try Data(contentsOf: URL(fileURLWithPath: photo))
        let out = dir + "/out.safetensors"
        let base = ["learn", "--model", model, "--init", "red", "--steps", "2", "--quiet"]
        let cases: [([String], String)] = [
            (base + [photo, "--token", "red", "-o", out], "already in the model's vocabulary"),
            (base + [photo, "--token", "<|endoftext|>", "-o", out], "already in the model's vocabulary"),
            (["learn", "--model", model, "--init", "circle", "--steps", "2", "--quiet", photo, "--token", "<t>", "-o", out], "is 4 tokens"),
            (base + [bogus, "--token", "<t>", "-o", out], "no readable photo"),
            (base + [dir, "--token", "<t>", "-o", dir + "/sub/x.safetensors"], "no readable photo"),
            (base + [photo, "--token", "<t>", "-o", photo], "--output and --format disagree"),
            (base + [photo, "--token", "<t>", "--format", "a1111", "-o", out], "--output and --format disagree"),
            (base + [photo, "--token", "<t>", "--templates", templates, "-o", out], "has no {} where the token goes"),
            (base + [photo, "--token", "<t>", "--lr", "0", "-o", out], "--lr must be a positive number"),
            (base + [photo, "--token", "<t>", "--resume", "-o", dir + "/wide.safetensors"], "16 wide, but this model's text encoder takes 32"),
        ]
        for (args, expected) in cases {
            let r = try pivot(args)
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssertTrue(r.err.contains(expected), "\(args): \(r.err)")
            XCTAssertFalse(r.err.contains("Fatal error"), r.err)
            let lines = r.err.split(separator: "\n").filter { !$0.hasPrefix("Usage:") && !$0.hasPrefix("  See '") && !$0.isEmpty }
            XCTAssertEqual(lines.count, 1, "\(args): \(r.err)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "\(args) wrote \(out)")
        }
        // An output equal to a photo (with the extension the format wants) is refused before any work.
        let png = dir + "/p.safetensors"
        try photoBytes.write(to: URL(fileURLWithPath: png))
        let r = try pivot(base + [png, "--token", "<t>", "-o", png])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("would overwrite an input"), r.err)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: png)), photoBytes)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: photo)), photoBytes)
    }
}
