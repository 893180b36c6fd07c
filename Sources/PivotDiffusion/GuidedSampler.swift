import PivotModels
import PivotTensor

/// Classifier-free-guided DDIM sampling, as diffusers' `StableDiffusionPipeline` denoises: at each step the
/// UNet sees the batch [uncond, cond] (skipped when guidance ≤ 1), ε = ε_u + w·(ε_c − ε_u), then one DDIM
/// step. The loop is caller-visible through `onStep`, the place later attention controllers hook in.
public struct GuidedSampler {
    public let unet: UNet
    public let scheduler: DDIMScheduler

    public init(unet: UNet, scheduler: DDIMScheduler) {
        self.unet = unet
        self.scheduler = scheduler
    }

    /// Denoises `latents` [1, C, h, w] over `steps` DDIM steps with conditioning `cond` and, when
    /// `guidance > 1`, unconditional embedding `uncond` (both [1, 77, D]). `onStep(i, steps)` runs after
    /// each step. Throws on a step count outside 1…num_train_timesteps.
    public func sample(latents: Tensor, cond: Tensor, uncond: Tensor, guidance: Float, steps: Int,
                       onStep: (Int, Int) -> Void = { _, _ in }) throws -> Tensor {
        try scheduler.checkSteps(steps)
        let guided = guidance > 1
        let context = guided ? concatBatch(uncond, cond) : cond
        var z = latents
        let timesteps = scheduler.timesteps(steps: steps).filter { $0 >= 0 }
        for (i, t) in timesteps.enumerated() {
            let input = guided ? concatBatch(z, z) : z
            let out = try Profiler.measure("network") {
                try unet(input, timesteps: Array(repeating: Float(t), count: input.dim(0)), context: context)
            }
            let eps: Tensor
            if guided {
                let halves = chunk(out, dim0Parts: 2)
                eps = guide(uncond: halves[0], cond: halves[1], scale: guidance)
            } else {
                eps = out
            }
            z = scheduler.step(modelOutput: eps, timestep: t, sample: z, steps: steps).prevSample
            onStep(i + 1, timesteps.count)
        }
        return z
    }
}

/// ε_u + w·(ε_c − ε_u), elementwise in fp32 in that order (as diffusers computes it).
public func guide(uncond: Tensor, cond: Tensor, scale w: Float) -> Tensor {
    let y = Tensor(uninitialized: cond.shape)
    for i in 0..<y.count { y.data[i] = uncond.data[i] + w * (cond.data[i] - uncond.data[i]) }
    return y
}

/// Concatenation along dimension 0 of two tensors of the same trailing shape.
public func concatBatch(_ a: Tensor, _ b: Tensor) -> Tensor {
    let y = Tensor(uninitialized: [a.dim(0) + b.dim(0)] + Array(a.shape.dropFirst()))
    y.data.update(from: a.data, count: a.count)
    (y.data + a.count).update(from: b.data, count: b.count)
    return y
}
