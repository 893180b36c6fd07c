import PivotModels
import PivotTensor

/// The one denoising loop of pivot (docs/ALGORITHMS.md §3 and §5): classifier-free-guided DDIM sampling as
/// diffusers' `StableDiffusionPipeline` denoises, for B prompts at once, with an attention controller and
/// per-step hooks plugged in. Generation runs it with one prompt; editing with the source and its targets
/// (prompt 0 = source), from an inversion's x_T.
///
/// At step i the UNet sees the batch [uncond(i) × B, cond_1 … cond_B] (only the conditional half when
/// guidance ≤ 1), ε = ε_u + w·(ε_c − ε_u), then one `DDIMScheduler.step`. `uncond(i)` is the negative prompt
/// for generation, ∅_i for null-text, the source embedding for negative-prompt inversion and the empty
/// prompt otherwise. With direct-inversion `offsets`, the source branch is pushed back onto the pivot after
/// each step. The controller sees every UNet pass (`beginStep` first); `afterStep` may adjust the latents
/// (local blend) before the next step.
///
/// Limitations: η = 0 (deterministic DDIM) unless noise maps are given; timesteps below 0 (a "trailing" schedule's −1) are skipped,
/// as diffusers does.
public struct DenoisingLoop {
    public let unet: UNet
    public let scheduler: DDIMScheduler
    public let steps: Int
    public let guidance: Float

    /// Throws on a step count outside 1…num_train_timesteps.
    public init(unet: UNet, scheduler: DDIMScheduler, steps: Int, guidance: Float) throws {
        try scheduler.checkSteps(steps)
        self.unet = unet
        self.scheduler = scheduler
        self.steps = steps
        self.guidance = guidance
    }

    /// Whether the unconditional branch runs (guidance > 1).
    public var guided: Bool { guidance > 1 }

    /// The timesteps the loop runs, highest first (the schedule's, without a "trailing" schedule's −1).
    public var timesteps: [Int] { scheduler.timesteps(steps: steps).filter { $0 >= 0 } }

    /// The final latents [B, C, h, w] for `prompts` (each [1, M, D]) from `start` [1, C, h, w].
    /// `offsets` (one [1, C, h, w] per step) are added to branch 0 after each step. With `noise` (one
    /// [1, C, h, w] per step, edit-friendly DDPM's maps) every step is a DDPM step (η = 1) that adds σ_t times
    /// the step's map to every branch.
    public func run(
        start: Tensor, prompts: [Tensor], uncond: (Int) -> Tensor, offsets: [Tensor]? = nil,
        noise: [Tensor]? = nil, controller: AttentionController? = nil,
        afterStep: (_ step: Int, _ latents: inout Tensor) throws -> Void = { _, _ in }
    ) throws -> Tensor {
        let b = prompts.count
        precondition(b >= 1 && start.rank == 4 && start.dim(0) == 1, "DenoisingLoop: \(b) prompts from \(start.shape)")
        precondition(
            offsets.map { $0.count == steps && $0.allSatisfy { $0.shape == start.shape } } ?? true,
            "DenoisingLoop: offsets must be one \(start.shape) per step")
        precondition(
            noise.map { $0.count == steps && $0.allSatisfy { $0.shape == start.shape } } ?? true,
            "DenoisingLoop: noise maps must be one \(start.shape) per step")
        var z = repeatBatch(start, b)
        let cond = concatBatch(prompts)
        for (i, t) in timesteps.enumerated() {
            let context = guided ? concatBatch(repeatBatch(uncond(i), b), cond) : cond
            let input = guided ? concatBatch(z, z) : z
            controller?.beginStep(i)
            let out = try Profiler.measure("network") {
                try unet(input, timesteps: Array(repeating: Float(t), count: input.dim(0)), context: context, controller: controller)
            }
            let eps: Tensor
            if guided {
                let halves = chunk(out, dim0Parts: 2)
                eps = guide(uncond: halves[0], cond: halves[1], scale: guidance)
            } else {
                eps = out
            }
            if let noise {
                z =
                    scheduler.step(modelOutput: eps, timestep: t, sample: z, steps: steps, eta: 1, varianceNoise: repeatBatch(noise[i], b))
                    .prevSample
            } else {
                z = scheduler.step(modelOutput: eps, timestep: t, sample: z, steps: steps).prevSample
            }
            if let offsets { addToLeadingRows(z, offsets[i]) }
            try requireFinite(z, "denoising", step: i + 1, of: steps)
            try afterStep(i + 1, &z)
        }
        return z
    }
}
