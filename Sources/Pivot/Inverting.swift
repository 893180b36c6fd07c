import Foundation
import PivotIO
import PivotLoading
import PivotDiffusion
import PivotImage
import PivotModels
import PivotTensor

/// Progress of an inversion, for the command line.
public enum InversionEvent {
    /// DDIM inversion step `step` of `total`.
    case trajectory(step: Int, total: Int)
    /// Null-text optimisation: outer step, inner iteration (of at most `innerTotal`), its loss, and whether
    /// it ended the step.
    case nullText(step: Int, total: Int, inner: Int, innerTotal: Int, loss: Float, last: Bool)
    /// Direct inversion's offsets: step `step` of `total`.
    case offsets(step: Int, total: Int)
    /// Fixed-point inversion: step `step` of `total` took `iterations` refinements (of at most
    /// `innerTotal`) and ended at relative residual `residual`.
    case fixedPoint(step: Int, total: Int, iterations: Int, innerTotal: Int, residual: Float)
    /// Edit-friendly DDPM's noise maps: step `step` of `total`.
    case noiseMaps(step: Int, total: Int)
}

/// The seed edit-friendly DDPM inversion draws x_1 … x_T from (fixed, so an inversion is reproducible; recorded
/// in the file as `ddpm_seed`).
public let ddpmInversionSeed: UInt64 = 0

extension StableDiffusion {
    /// Inverts a photo under its source prompt with the chosen method; the result records everything needed
    /// to check, later, that an edit uses the same model, photo and settings.
    public func invert(
        photo: String, prompt: String, settings s: InversionSettings,
        onEvent: (InversionEvent) throws -> Void = { _ in }
    ) throws -> InversionRecord {
        try s.validate(trainTimesteps: scheduler.numTrainTimesteps)
        let z0 = try encodePhoto(photo, crop: s.crop, sizing: s.size)
        let f = vae.config.downsampleFactor
        let cond = try encode(prompt).embedding
        let inversion = try PivotInversion(unet: unet, scheduler: scheduler, steps: s.steps, guidance: s.guidance)
        var extra: [String: String] = [:]
        let latents: [Tensor]
        var noiseMaps: [Tensor]? = nil
        switch s.method {
        case .fixedPoint, .fixedPointDirect:
            // fixed-point+direct inverts the conditional flow (guidance 1); its offsets then fix the guided source.
            let solver =
                s.method == .fixedPoint
                ? inversion : try PivotInversion(unet: unet, scheduler: scheduler, steps: s.steps, guidance: 1)
            let result = try solver.fixedPointTrajectory(
                z0: z0, cond: cond, uncond: try encode("").embedding, iterations: s.innerSteps
            ) { try onEvent(.fixedPoint(step: $0, total: $1, iterations: $2, innerTotal: s.innerSteps, residual: $3)) }
            latents = result.latents
            extra["fixed_point_iterations"] = result.iterations.map(String.init).joined(separator: ",")
            extra["fixed_point_residuals"] = result.residuals.map { String(format: "%.3g", $0) }.joined(separator: ",")
        case .ddpm:
            let result = try inversion.ddpmNoise(
                z0: z0, cond: cond, uncond: try encode("").embedding, seed: ddpmInversionSeed
            ) { try onEvent(.noiseMaps(step: $0, total: $1)) }
            (latents, noiseMaps) = (result.latents, result.noise)
            extra["ddpm_seed"] = String(ddpmInversionSeed)
        case .nullText, .negativePrompt, .direct, .ddim:
            latents = try inversion.trajectory(z0: z0, cond: cond) { try onEvent(.trajectory(step: $0, total: $1)) }
        }
        var record = InversionRecord(
            method: s.method, latents: latents,
            metadata: [
                "prompt": prompt, "embeddings": embeddingsDescription,
                "scheduler": schedulerDescription, "model": model.path, "precision": precision.description,
                "width": String(z0.dim(3) * f), "height": String(z0.dim(2) * f),
            ].merging(s.fields.map { ($0.key, $0.value) }) { $1 }.merging(extra) { $1 })
        record.noiseMaps = noiseMaps
        switch s.method {
        case .nullText:
            let uncond = try encode("").embedding
            let result = try inversion.nullText(latents: latents, cond: cond, uncond: uncond, innerSteps: s.innerSteps) {
                try onEvent(.nullText(step: $0, total: s.steps, inner: $1, innerTotal: s.innerSteps, loss: $2, last: $3))
            }
            record.nullEmbeddings = result.embeddings
            record.metadata["null_text_iterations"] = result.iterations.map(String.init).joined(separator: ",")
        case .direct, .fixedPointDirect:
            let uncond = try encode("").embedding
            record.offsets = try inversion.directOffsets(latents: latents, cond: cond, uncond: uncond) {
                try onEvent(.offsets(step: $0, total: $1))
            }
        case .negativePrompt, .ddim, .fixedPoint, .ddpm:
            break
        }
        return record
    }

    /// The scheduler settings that shape a trajectory, as recorded in inversion files.
    public var schedulerDescription: String {
        let c = scheduler.config
        return "DDIM beta \(c.betaSchedule.rawValue) \(c.betaStart)…\(c.betaEnd), steps_offset \(c.stepsOffset), "
            + "\(c.timestepSpacing.rawValue) spacing, \(c.predictionType.rawValue), set_alpha_to_one \(c.setAlphaToOne)"
    }
}

extension StableDiffusion {
    /// Renders `targets` (prompt 0 is the source) from an inversion, with the unconditional branch each
    /// method calls for; returns the decoded images, source first.
    public func render(
        _ record: InversionRecord, source: String, targets: [String], guidance: Float,
        controller: AttentionController? = nil, blend: LocalBlend? = nil,
        onStep: (Int, Int) throws -> Void = { _, _ in }
    ) throws -> [RGBImage] {
        let z = try editLatents(
            record, source: source, targets: targets, guidance: guidance, controller: controller,
            blend: blend, onStep: onStep)
        let images = try vae.decode(scale(z, Float(1 / vae.config.scalingFactor)))
        try requireFinite(images, "VAE decoding", tensor: "the decoded image")
        return (0..<images.dim(0)).map { fromTensor(images, index: $0) }
    }

    /// The final latents [1 + targets, C, h, w] of an edit, before decoding (see `render`).
    public func editLatents(
        _ record: InversionRecord, source: String, targets: [String], guidance: Float,
        controller: AttentionController? = nil, blend: LocalBlend? = nil,
        onStep: (Int, Int) throws -> Void = { _, _ in }
    ) throws -> Tensor {
        let prompts = try ([source] + targets).map { try encode($0).embedding }
        let empty = try encode("").embedding
        let loop = try DenoisingLoop(unet: unet, scheduler: scheduler, steps: record.steps, guidance: guidance)
        let uncond = { (i: Int) in record.method.unconditional(step: i, nulls: record.nullEmbeddings, source: prompts[0], empty: empty) }
        return try loop.run(
            start: record.latents[record.steps], prompts: prompts, uncond: uncond,
            offsets: record.method.usesOffsets ? record.offsets : nil,
            noise: record.method == .ddpm ? record.noiseMaps : nil, controller: controller
        ) { i, z in
            blend?.apply(&z, afterStep: i - 1)
            try onStep(i, record.steps)
        }
    }
}
