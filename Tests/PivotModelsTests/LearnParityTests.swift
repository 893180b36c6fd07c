import Foundation
import Pivot
import PivotDiffusion
import PivotFormats
import PivotLoading
import PivotTensor
import XCTest

/// Textual inversion's loss, gradient and AdamW steps against the math of diffusers'
/// `examples/textual_inversion/textual_inversion.py` on the sd1-tiny model (fixtures by
/// scripts/fixtures/make_learn_fixtures.py): a fixed batch of two rows, two steps, ε and v prediction.
final class LearnParityTests: XCTestCase {
    var model: String { Bundle.module.path(forResource: "Fixtures/sd1-tiny/model", ofType: nil) ?? "missing" }
    var photo: String { Bundle.module.path(forResource: "Fixtures/inversion/photo.png", ofType: nil) ?? "missing" }

    func fixture(_ name: String) throws -> SafeTensorsFile {
        try SafeTensorsFile(path: Bundle.module.path(forResource: "Fixtures/learn/\(name).safetensors", ofType: nil) ?? "missing")
    }

    /// The largest |a − b| over the largest |b|.
    func relativeError(_ a: Tensor, _ b: Tensor) -> Float {
        XCTAssertEqual(a.shape, b.shape)
        var worst: Float = 0, scale: Float = 0
        for i in 0..<min(a.count, b.count) {
            worst = max(worst, abs(a.data[i] - b.data[i]))
            scale = max(scale, abs(b.data[i]))
        }
        return worst / max(scale, 1e-30)
    }

    func learner(prediction: SchedulerConfig.PredictionType) throws -> TokenLearner {
        let folder = try ModelFolder(path: model)
        var scheduler = try folder.schedulerConfig()
        scheduler.predictionType = prediction
        let sd = try StableDiffusion(model: folder, scheduler: scheduler)
        var settings = LearnSettings(token: "<toy>", initWord: "red")
        settings.vectors = 2
        return try TokenLearner(sd: sd, photos: [photo], settings: settings)
    }

    func check(_ name: String, prediction: SchedulerConfig.PredictionType) throws {
        let f = try fixture(name)
        let learner = try self.learner(prediction: prediction)
        let table = (0..<learner.sd.textEncoder.tokenCount).filter { !learner.tokenIds.contains($0) }
        let before = try table.map { try learner.sd.textEncoder.tokenEmbedding(row: $0).scalars }
        XCTAssertLessThanOrEqual(relativeError(learner.vectors, try f.floatTensor("vectors_0")), 1e-6, "initialisation")

        let latents = try f.floatTensor("latents"), noise = try f.floatTensor("noise")  // [2, 4, 32, 32]
        let timesteps = try f.floatTensor("timesteps").scalars.map { Int($0) }
        let prompts = (f.metadata["prompts"] ?? "").split(separator: "\n").map(String.init)
        XCTAssertEqual(prompts.count, 2)
        for k in 1...2 {
            var loss: Float = 0
            let gradient = Tensor(zeros: learner.vectors.shape)
            for row in 0..<2 {
                let s = LearnSample(
                    latents: batchSlice(latents, row..<row + 1), noise: batchSlice(noise, row..<row + 1),
                    timestep: timesteps[row], prompt: prompts[row])
                let (l, g) = try learner.lossAndGradient(s)
                loss += l / 2
                for i in 0..<g.count { gradient.data[i] += g.data[i] / 2 }
            }
            let refLoss = try f.floatTensor("loss_\(k)").scalars[0]
            XCTAssertLessThanOrEqual(abs(loss - refLoss) / refLoss, 1e-4, "\(name) loss \(k): \(loss) vs \(refLoss)")
            let gradError = relativeError(gradient, try f.floatTensor("grad_\(k)"))
            XCTAssertLessThanOrEqual(gradError, 1e-4, "\(name) gradient \(k)")
            learner.update(gradient: gradient)
            let vectorError = relativeError(learner.vectors, try f.floatTensor("vectors_\(k)"))
            XCTAssertLessThanOrEqual(vectorError, 1e-4, "\(name) vectors after step \(k)")
            print("learn parity \(name) step \(k): loss \(loss) (ref \(refLoss)), gradient rel \(gradError), vectors rel \(vectorError)")
        }
        // Every other row of the table is bit-identical.
        let after = try table.map { try learner.sd.textEncoder.tokenEmbedding(row: $0).scalars }
        XCTAssertEqual(before, after)
        XCTAssertEqual(learner.step, 2)
    }

    func testEpsilonMatchesReference() throws { try check("epsilon", prediction: .epsilon) }

    func testVPredictionMatchesReference() throws { try check("v_prediction", prediction: .vPrediction) }

    /// diffusers' constant schedule with warm-up (lr·k/W for the k-th step while k < W, from 0) and `--scale-lr`.
    func testLearningRateSchedule() throws {
        var s = LearnSettings(token: "<t>", initWord: "a")
        XCTAssertEqual(s.learningRate(afterSteps: 0), 5e-3)
        s.warmupSteps = 4
        XCTAssertEqual([0, 1, 2, 3, 4, 100].map { s.learningRate(afterSteps: $0) }, [0, 1.25e-3, 2.5e-3, 3.75e-3, 5e-3, 5e-3])
        (s.batch, s.accumulate, s.scaleLearningRate, s.warmupSteps) = (2, 3, true, 0)
        XCTAssertEqual(s.learningRate(afterSteps: 7), 3e-2, accuracy: 1e-9)
        s.patience = 3
        s.steps = 50
        XCTAssertEqual(s.validationInterval, 5, "a tenth of a short run")
        s.validateEvery = 7
        XCTAssertEqual(s.validationInterval, 7)
    }

    /// Template files: one a line with {}, comments and blank lines skipped; a line without {} is refused by number.
    func testTemplateFiles() throws {
        let path = NSTemporaryDirectory() + "pivot-templates-\(UUID().uuidString).txt"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data("# mine\n\na {} on a gray background\n  a small {}  \n".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(try LearnTemplates.file(path), .custom(["a {} on a gray background", "a small {}"]))
        try Data("a {}\nno token here\n".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try LearnTemplates.file(path)) { XCTAssertTrue("\($0)".contains("line 2 has no {}"), "\($0)") }
        try Data("# only comments\n".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try LearnTemplates.file(path)) { XCTAssertTrue("\($0)".contains("holds no templates"), "\($0)") }
        XCTAssertEqual(LearnTemplates.object.templates.count, 27)
        XCTAssertTrue(LearnTemplates.style.templates.allSatisfy { $0.contains("{}") })
    }

    /// AdamW's weight decay: p·(1 − lr·λ) before the Adam step (λ = 0 is plain Adam).
    func testAdamWDecay() {
        let p = Tensor(shape: [2], values: [1, -2]), q = Tensor(shape: [2], values: [1, -2])
        var plain = Adam(count: 2, learningRate: 0.1), decayed = Adam(count: 2, learningRate: 0.1, weightDecay: 0.5)
        let g = Tensor(shape: [2], values: [0.3, -0.4])
        plain.update(p, gradient: g)
        decayed.update(q, gradient: g)
        // First step: p − lr·sign(g) (m/√v = ±1), after the decay by (1 − 0.05).
        XCTAssertEqual(p.scalars[0], 0.9, accuracy: 1e-6)
        XCTAssertEqual(q.scalars[0], 0.95 - 0.1, accuracy: 1e-6)
        XCTAssertEqual(q.scalars[1], -1.9 + 0.1, accuracy: 1e-6)
        var restored = Adam(count: 2, learningRate: 0.1, weightDecay: 0.5)
        XCTAssertFalse(restored.restore(m: [0], v: [0, 0], steps: 1))
        XCTAssertTrue(restored.restore(m: decayed.state.m, v: decayed.state.v, steps: decayed.state.steps))
        let r = q.copy()
        restored.update(r, gradient: g)
        decayed.update(q, gradient: g)
        XCTAssertEqual(r.scalars, q.scalars)
    }
}
