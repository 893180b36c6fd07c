import PivotDiffusion
import PivotTensor
import XCTest

/// `DDIMScheduler` against diffusers 0.42.1 `DDIMScheduler` on PyTorch 2.13 CPU: fixtures from
/// scripts/fixtures/make_scheduler_fixtures.py.
final class DDIMSchedulerTests: XCTestCase {
    struct Fixture: Decodable {
        struct Schedule: Decodable {
            let name: String, config: SchedulerConfig, bitwise: Bool
            let betas_fnv1a64: String, alphas_cumprod_fnv1a64: String, alphas_cumprod_sum: Double
            let index: [Int], alphas_cumprod_bits: [UInt32], final_alpha_cumprod_bits: UInt32
        }
        struct Timesteps: Decodable { let config: SchedulerConfig, full: [String: [Int]], block_hashes: [String] }
        struct Step: Decodable {
            let config: SchedulerConfig, steps: Int, timestep: Int, prev_timestep: Int, eta: Float
            let use_clipped_model_output: Bool, shape: [Int]
            let model_output: [UInt32], sample: [UInt32], prev_sample: [UInt32], pred_original_sample: [UInt32]
            let variance_noise: [UInt32]?
        }
        let schedules: [Schedule], timesteps: [Timesteps], steps: [Step]
    }

    private func fixture() throws -> Fixture { try loadFixture("scheduler.json", as: Fixture.self) }

    func testBetasAndAlphasCumprodAreBitIdentical() throws {
        let f = try fixture()
        XCTAssertEqual(f.schedules.count, 8)
        for s in f.schedules {
            let ddim = try DDIMScheduler(config: s.config)
            if s.bitwise {
                XCTAssertEqual(fnv1a64(ddim.betas.map(\.bitPattern)), s.betas_fnv1a64, "\(s.name): betas")
                XCTAssertEqual(fnv1a64(ddim.alphasCumprod.map(\.bitPattern)), s.alphas_cumprod_fnv1a64, "\(s.name): ᾱ")
            }
            assertWithin(
                s.index.map { ddim.alphasCumprod[$0] }, s.alphas_cumprod_bits.map { Float(bitPattern: $0) },
                "\(s.name): ᾱ subset")
            let sum = ddim.alphasCumprod.reduce(0.0) { $0 + Double($1) }
            XCTAssertEqual(sum, s.alphas_cumprod_sum, accuracy: (s.bitwise ? 1e-9 : 1e-6) * max(1, s.alphas_cumprod_sum), s.name)
            XCTAssertEqual(ddim.finalAlphaCumprod.bitPattern, s.final_alpha_cumprod_bits, "\(s.name): final ᾱ")
        }
    }

    func testTimestepsMatchForEveryStepCount() throws {
        let f = try fixture()
        XCTAssertEqual(f.timesteps.count, 6)
        for table in f.timesteps {
            let ddim = try DDIMScheduler(config: table.config)
            let what = "\(table.config.timestepSpacing) offset \(table.config.stepsOffset)"
            for (steps, expected) in table.full {
                XCTAssertEqual(ddim.timesteps(steps: Int(steps)!), expected, "\(what), T = \(steps)")
            }
            var words: [UInt32] = []
            for steps in 1...1000 {
                let ts = ddim.timesteps(steps: steps)
                words += [UInt32(ts.count)] + ts.map { UInt32(truncatingIfNeeded: $0) }
                if steps % 50 == 0 {
                    XCTAssertEqual(fnv1a64(words), table.block_hashes[steps / 50 - 1], "\(what), T in \(steps - 49)…\(steps)")
                    words = []
                }
            }
        }
    }

    func testStepMatchesDiffusers() throws {
        let f = try fixture()
        XCTAssertEqual(f.steps.count, 30)
        var identical = 0, total = 0, sawLastStep = false
        for (k, s) in f.steps.enumerated() {
            let ddim = try DDIMScheduler(config: s.config)
            let what = "step \(k): \(s.config.predictionType) clip \(s.config.clipSample) t \(s.timestep) T \(s.steps) η \(s.eta)"
            XCTAssertEqual(ddim.previousTimestep(s.timestep, steps: s.steps), s.prev_timestep, what)
            sawLastStep = sawLastStep || s.prev_timestep < 0
            let out = ddim.step(
                modelOutput: tensor(s.shape, bits: s.model_output), timestep: s.timestep,
                sample: tensor(s.shape, bits: s.sample), steps: s.steps, eta: s.eta,
                useClippedModelOutput: s.use_clipped_model_output,
                varianceNoise: s.variance_noise.map { tensor(s.shape, bits: $0) })
            XCTAssertEqual(out.prevSample.shape, s.shape, what)
            identical += assertWithin(out.prevSample.scalars, s.prev_sample.map { Float(bitPattern: $0) }, "\(what): prev")
            identical += assertWithin(
                out.predictedOriginal.scalars, s.pred_original_sample.map { Float(bitPattern: $0) },
                "\(what): x0")
            total += 2 * s.prev_sample.count
        }
        XCTAssertTrue(sawLastStep, "the fixtures include a last step")
        // The arithmetic is diffusers' own, op for op in fp32; only PyTorch's square roots (MKL, within 1 ulp,
        // processor-dependent) differ from the correctly rounded ones used here, so many outputs are
        // bit-identical and the rest are within an ulp or two.
        XCTAssertGreaterThan(identical, 0, "bit-identical outputs (\(identical) of \(total))")
    }

    func testStableDiffusionSchedule() throws {
        let sd = try DDIMScheduler(config: .stableDiffusion)
        let ts = sd.timesteps(steps: 50)
        XCTAssertEqual(ts.first, 981)
        XCTAssertEqual(ts.last, 1)
        XCTAssertEqual(
            try DDIMScheduler(config: SchedulerConfig.stableDiffusion.overriding(stepsOffset: 0))
                .timesteps(steps: 50), ts.map { $0 - 1 })
        XCTAssertEqual(sd.previousTimestep(1, steps: 50), -19)
        XCTAssertEqual(sd.alphaCumprod(at: -19), sd.alphasCumprod[0])
        XCTAssertEqual(sd.finalAlphaCumprod, sd.alphasCumprod[0])
        XCTAssertThrowsError(try sd.checkSteps(0))
        XCTAssertThrowsError(try sd.checkSteps(1001))
        XCTAssertNoThrow(try sd.checkSteps(1000))
        // diffusers' "trailing" quirk, reproduced: 61 steps list 62 timesteps, the last being −1.
        let trailing = try DDIMScheduler(config: SchedulerConfig.stableDiffusion.overriding(timestepSpacing: .trailing))
        XCTAssertEqual(trailing.timesteps(steps: 61).count, 62)
        XCTAssertEqual(trailing.timesteps(steps: 61).last, -1)
        XCTAssertEqual(trailing.timesteps(steps: 50).first, 999)
    }

    func testVPredictionConvertsToEpsilonAndOriginal() throws {
        // With v = √ᾱ·ε − √(1−ᾱ)·x0 and x = √ᾱ·x0 + √(1−ᾱ)·ε, the conversion recovers ε and x0.
        let v2 = try DDIMScheduler(config: SchedulerConfig.stableDiffusion.overriding(predictionType: .vPrediction))
        let a = v2.alphaCumprod(at: 501)
        let sa = a.squareRoot(), sb = (1 - a).squareRoot()
        let eps: [Float] = [0.3, -1.2, 0.8, 2.0], x0: [Float] = [0.5, 0.1, -0.7, 0.0]
        let x = zip(x0, eps).map { sa * $0 + sb * $1 }, v = zip(eps, x0).map { sa * $0 - sb * $1 }
        let (e, o) = v2.predictions(
            modelOutput: Tensor(shape: [4], values: v), sample: Tensor(shape: [4], values: x),
            alphaProd: a)
        for i in 0..<4 {
            XCTAssertEqual(e.scalars[i], eps[i], accuracy: 1e-6)
            XCTAssertEqual(o.scalars[i], x0[i], accuracy: 1e-6)
        }
    }
}
