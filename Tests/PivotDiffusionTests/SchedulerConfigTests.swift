import Foundation
import PivotDiffusion
import PivotModels
import XCTest

final class SchedulerConfigTests: XCTestCase {
    private func parse(_ json: String) throws -> SchedulerConfig {
        try SchedulerConfig(json: Data(json.utf8))
    }

    private func assertRefused(_ json: String, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try parse(json), file: file, line: line) { error in
            XCTAssertEqual("\(error)", message, file: file, line: line)
        }
    }

    func testStableDiffusionFile() throws {
        let c = try parse(
            """
            {"_class_name": "DDIMScheduler", "_diffusers_version": "0.42.1", "beta_end": 0.012,
             "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": false, "clip_sample_range": 1.0,
             "dynamic_thresholding_ratio": 0.995, "num_train_timesteps": 1000, "prediction_type": "epsilon",
             "rescale_betas_zero_snr": false, "sample_max_value": 1.0, "set_alpha_to_one": false, "steps_offset": 1,
             "thresholding": false, "timestep_spacing": "leading", "trained_betas": null}
            """)
        XCTAssertEqual(c, SchedulerConfig.stableDiffusion)
    }

    func testPNDMFileTakesDDIMDefaultsForMissingKeys() throws {
        // SD 1.x ships a PNDMScheduler config; DDIMScheduler.from_config ignores skip_prk_steps and fills the rest.
        let c = try parse(
            """
            {"_class_name": "PNDMScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
             "num_train_timesteps": 1000, "set_alpha_to_one": false, "skip_prk_steps": true, "steps_offset": 1,
             "trained_betas": null}
            """)
        XCTAssertEqual(c.betaSchedule, .scaledLinear)
        XCTAssertTrue(c.clipSample)  // DDIMScheduler's default, as from_config gives
        XCTAssertEqual(c.predictionType, .epsilon)
        XCTAssertEqual(c.timestepSpacing, .leading)
        XCTAssertEqual(try parse("{}"), SchedulerConfig())
    }

    func testV2AndOverrides() throws {
        let c = try parse(
            """
            {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "prediction_type": "v_prediction",
             "timestep_spacing": "trailing", "rescale_betas_zero_snr": true, "steps_offset": 1}
            """)
        XCTAssertEqual(c.predictionType, .vPrediction)
        XCTAssertEqual(c.timestepSpacing, .trailing)
        XCTAssertTrue(c.rescaleBetasZeroSNR)
        let o = c.overriding(stepsOffset: 0, predictionType: .epsilon)
        XCTAssertEqual(o.stepsOffset, 0)
        XCTAssertEqual(o.predictionType, .epsilon)
        XCTAssertEqual(o.timestepSpacing, .trailing)
    }

    func testRefusalsAreOneLineAndNamed() {
        let file = "scheduler/scheduler_config.json"
        assertRefused(#"{"thresholding": true}"#, "\(file): thresholding = true is not supported by pivot")
        assertRefused(#"{"timestep_spacing": "karras"}"#, "\(file): timestep_spacing = karras is not supported by pivot")
        assertRefused(#"{"prediction_type": "flow"}"#, "\(file): prediction_type = flow is not supported by pivot")
        assertRefused(#"{"beta_schedule": "sigmoid"}"#, "\(file): beta_schedule = sigmoid is not supported by pivot")
        assertRefused(#"{"num_train_timesteps": "1000"}"#, "\(file): field 'num_train_timesteps' has the wrong type")
        assertRefused(#"{"num_train_timesteps": 0}"#, "\(file): num_train_timesteps = 0 is out of range")
        assertRefused(#"{"steps_offset": 1000}"#, "\(file): steps_offset = 1000 is out of range")
        assertRefused(#"{"trained_betas": [0.1, 0.2]}"#, "\(file): trained_betas has 2 values for num_train_timesteps = 1000")
        assertRefused(#"{"beta_end": 1.5}"#, "\(file): beta_end = 1.5 must lie in [0, 1)")
        assertRefused("{", "\(file): not valid JSON")
        assertRefused("[]", "\(file): not a JSON object")
    }

    func testEncodesDiffusersKeysAndRoundTrips() throws {
        let c = SchedulerConfig.stableDiffusion.overriding(stepsOffset: 0)
        let data = try JSONEncoder().encode(c)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertEqual(object["steps_offset"] as? Int, 0)
        XCTAssertEqual(object["beta_schedule"] as? String, "scaled_linear")
        XCTAssertEqual(try JSONDecoder().decode(SchedulerConfig.self, from: data), c)
        XCTAssertEqual(try SchedulerConfig(json: data), c)
    }

    func testSchedulerRefusesAnEditedInvalidConfig() {
        var c = SchedulerConfig.stableDiffusion
        c.stepsOffset = -1
        XCTAssertThrowsError(try DDIMScheduler(config: c)) { error in
            XCTAssertEqual(
                error as? ModelError,
                .invalidConfig(
                    file: "scheduler/scheduler_config.json",
                    reason: "steps_offset = -1 is out of range"))
        }
    }
}
