import Foundation
import PivotModels

/// The noise-schedule part of a diffusers `scheduler/scheduler_config.json`, as `DDIMScheduler.from_config`
/// reads it: keys DDIM does not use (`skip_prk_steps`, `_class_name`, …) are ignored, missing keys take
/// diffusers' `DDIMScheduler` defaults, and every value that would change the maths is either honoured or
/// refused by name (`thresholding = true` is the one refusal: it is meant for pixel-space models).
///
/// Fields are `var` so that a caller can override what the model's file says (docs/ALGORITHMS.md §3: the reference
/// notebook uses `steps_offset = 0` where SD 1.5's file says 1); `validate()` checks an edited value.
/// Encoding writes diffusers' key names, so a cache can record exactly which schedule it used.
public struct SchedulerConfig: Codable, Sendable, Equatable {
    /// How the β of the training timesteps are laid out.
    public enum BetaSchedule: String, Codable, Sendable {
        /// β = linspace(β_start, β_end, N) in fp32.
        case linear
        /// β = linspace(√β_start, √β_end, N)² in fp32 (Stable Diffusion).
        case scaledLinear = "scaled_linear"
        /// β from the cosine ᾱ(t) of Nichol & Dhariwal, capped at 0.999, computed in double then rounded.
        case squaredcosCapV2 = "squaredcos_cap_v2"
    }

    /// How inference timesteps are picked among the training ones (Lin et al. 2023, table 2).
    public enum TimestepSpacing: String, Codable, Sendable {
        /// (0, r, 2r, …) · reversed, r = N div T, plus `steps_offset`.
        case leading
        /// round(N, N − N/T, …) − 1 (ends one below N; ignores `steps_offset`).
        case trailing
        /// round(linspace(0, N − 1, T)), reversed (ignores `steps_offset`).
        case linspace
    }

    /// What the network predicts.
    public enum PredictionType: String, Codable, Sendable {
        /// The noise ε (SD 1.x, SD 2 base).
        case epsilon
        /// v = √ᾱ·ε − √(1−ᾱ)·x0 (SD 2.x 768).
        case vPrediction = "v_prediction"
        /// The clean sample x0.
        case sample
    }

    /// N, the number of training timesteps (diffusers' `num_train_timesteps`).
    public var numTrainTimesteps = 1000
    /// `beta_start` (β at t = 0).
    public var betaStart = 0.0001
    /// `beta_end` (β at t = N − 1).
    public var betaEnd = 0.02
    /// `beta_schedule`.
    public var betaSchedule = BetaSchedule.linear
    /// `trained_betas`: explicit β, one per training timestep, replacing the schedule when not nil.
    public var trainedBetas: [Double]? = nil
    /// `set_alpha_to_one`: past the last step ᾱ is 1 (true) or ᾱ[0] (false).
    public var setAlphaToOne = true
    /// `steps_offset`, added to "leading" timesteps.
    public var stepsOffset = 0
    /// `timestep_spacing`.
    public var timestepSpacing = TimestepSpacing.leading
    /// `prediction_type`.
    public var predictionType = PredictionType.epsilon
    /// `clip_sample`: clamp the predicted x0 to ±`clipSampleRange`.
    public var clipSample = true
    /// `clip_sample_range`.
    public var clipSampleRange = 1.0
    /// `rescale_betas_zero_snr`: rescale β so that the last timestep has zero SNR (Lin et al. 2023, alg. 1).
    public var rescaleBetasZeroSNR = false

    /// diffusers' `DDIMScheduler()` defaults (not Stable Diffusion's values: see `stableDiffusion`).
    public init() {}

    /// The values Stable Diffusion 1.x/2.x ship: scaled-linear β from 0.00085 to 0.012 over 1000 steps,
    /// no clipping, `set_alpha_to_one = false`, `steps_offset = 1`, "leading" spacing, ε-prediction.
    public static var stableDiffusion: SchedulerConfig {
        var c = SchedulerConfig()
        c.betaStart = 0.00085
        c.betaEnd = 0.012
        c.betaSchedule = .scaledLinear
        c.setAlphaToOne = false
        c.stepsOffset = 1
        c.clipSample = false
        return c
    }

    /// Parses and validates the JSON of `scheduler/scheduler_config.json`; `file` names it in errors, which are
    /// one-line `ModelError`s.
    public init(json: Data, file: String = "scheduler/scheduler_config.json") throws {
        let raw: RawSchedulerConfig
        do {
            raw = try JSONDecoder().decode(RawSchedulerConfig.self, from: json)
        } catch let error as ModelError {
            throw error
        } catch let DecodingError.typeMismatch(_, ctx), let DecodingError.valueNotFound(_, ctx) {
            let path = Self.path(ctx)
            throw ModelError.invalidConfig(file: file, reason: path.isEmpty ? "not a JSON object" : "field '\(path)' has the wrong type")
        } catch let DecodingError.dataCorrupted(ctx) {
            let path = Self.path(ctx)
            throw ModelError.invalidConfig(file: file, reason: path.isEmpty ? "not valid JSON" : "field '\(path)' is invalid")
        } catch {
            throw ModelError.invalidConfig(file: file, reason: "cannot be read as a config")
        }
        try self.init(raw: raw, file: file)
    }

    /// Decodes diffusers' JSON keys (as `init(json:)`, with errors naming "scheduler_config.json").
    public init(from decoder: Decoder) throws {
        try self.init(raw: RawSchedulerConfig(from: decoder), file: "scheduler_config.json")
    }

    /// Writes diffusers' JSON keys.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: RawSchedulerConfig.CodingKeys.self)
        try c.encode(numTrainTimesteps, forKey: .num_train_timesteps)
        try c.encode(betaStart, forKey: .beta_start)
        try c.encode(betaEnd, forKey: .beta_end)
        try c.encode(betaSchedule.rawValue, forKey: .beta_schedule)
        try c.encode(trainedBetas, forKey: .trained_betas)
        try c.encode(setAlphaToOne, forKey: .set_alpha_to_one)
        try c.encode(stepsOffset, forKey: .steps_offset)
        try c.encode(timestepSpacing.rawValue, forKey: .timestep_spacing)
        try c.encode(predictionType.rawValue, forKey: .prediction_type)
        try c.encode(clipSample, forKey: .clip_sample)
        try c.encode(clipSampleRange, forKey: .clip_sample_range)
        try c.encode(false, forKey: .thresholding)
        try c.encode(rescaleBetasZeroSNR, forKey: .rescale_betas_zero_snr)
    }

    /// This configuration with some values replaced (nil keeps the current one).
    public func overriding(
        stepsOffset: Int? = nil, predictionType: PredictionType? = nil,
        timestepSpacing: TimestepSpacing? = nil, setAlphaToOne: Bool? = nil,
        clipSample: Bool? = nil
    ) -> SchedulerConfig {
        var c = self
        if let v = stepsOffset { c.stepsOffset = v }
        if let v = predictionType { c.predictionType = v }
        if let v = timestepSpacing { c.timestepSpacing = v }
        if let v = setAlphaToOne { c.setAlphaToOne = v }
        if let v = clipSample { c.clipSample = v }
        return c
    }

    /// Throws a one-line `ModelError.invalidConfig` for values no schedule can use.
    public func validate(file: String = "scheduler/scheduler_config.json") throws {
        func invalid(_ reason: String) -> ModelError { .invalidConfig(file: file, reason: reason) }
        guard (1...100_000).contains(numTrainTimesteps) else {
            throw invalid("num_train_timesteps = \(numTrainTimesteps) is out of range")
        }
        if let betas = trainedBetas {
            guard betas.count == numTrainTimesteps else {
                throw invalid("trained_betas has \(betas.count) values for num_train_timesteps = \(numTrainTimesteps)")
            }
            guard betas.allSatisfy({ $0.isFinite && $0 >= 0 && $0 <= 1 }) else {
                throw invalid("trained_betas must lie in [0, 1]")
            }
        } else if betaSchedule != .squaredcosCapV2 {
            for (field, v) in [("beta_start", betaStart), ("beta_end", betaEnd)] where !(v.isFinite && v >= 0 && v < 1) {
                throw invalid("\(field) = \(v) must lie in [0, 1)")
            }
        }
        guard (0..<numTrainTimesteps).contains(stepsOffset) else {
            throw invalid("steps_offset = \(stepsOffset) is out of range")
        }
        guard !clipSample || (clipSampleRange.isFinite && clipSampleRange > 0) else {
            throw invalid("clip_sample_range = \(clipSampleRange) must be positive")
        }
    }

    private init(raw: RawSchedulerConfig, file: String) throws {
        func choice<T: RawRepresentable>(_ value: String?, _ field: String, default d: T) throws -> T where T.RawValue == String {
            guard let v = value else { return d }
            guard let parsed = T(rawValue: v) else { throw ModelError.unsupportedConfig(file: file, field: field, value: v) }
            return parsed
        }
        numTrainTimesteps = raw.num_train_timesteps ?? 1000
        betaStart = raw.beta_start ?? 0.0001
        betaEnd = raw.beta_end ?? 0.02
        betaSchedule = try choice(raw.beta_schedule, "beta_schedule", default: .linear)
        trainedBetas = raw.trained_betas
        setAlphaToOne = raw.set_alpha_to_one ?? true
        stepsOffset = raw.steps_offset ?? 0
        timestepSpacing = try choice(raw.timestep_spacing, "timestep_spacing", default: .leading)
        predictionType = try choice(raw.prediction_type, "prediction_type", default: .epsilon)
        clipSample = raw.clip_sample ?? true
        clipSampleRange = raw.clip_sample_range ?? 1.0
        rescaleBetasZeroSNR = raw.rescale_betas_zero_snr ?? false
        if raw.thresholding == true {
            throw ModelError.unsupportedConfig(file: file, field: "thresholding", value: "true")
        }
        try validate(file: file)
    }

    private static func path(_ ctx: DecodingError.Context) -> String {
        ctx.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
    }
}

/// The JSON as diffusers writes it.
private struct RawSchedulerConfig: Decodable {
    var num_train_timesteps: Int?
    var beta_start: Double?, beta_end: Double?, beta_schedule: String?
    var trained_betas: [Double]?
    var set_alpha_to_one: Bool?, steps_offset: Int?, timestep_spacing: String?, prediction_type: String?
    var clip_sample: Bool?, clip_sample_range: Double?, thresholding: Bool?, rescale_betas_zero_snr: Bool?

    enum CodingKeys: String, CodingKey {
        case num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas, set_alpha_to_one
        case steps_offset, timestep_spacing, prediction_type, clip_sample, clip_sample_range, thresholding
        case rescale_betas_zero_snr
    }
}
