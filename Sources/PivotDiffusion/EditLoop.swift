import PivotModels
import PivotTensor

/// The rendering loop of an edit (../shared/SPEC.md §5): B prompts (prompt 0 = source) are denoised together
/// from the inversion's x_T as the batch [uncond × B, cond × B]; at step i every prompt's unconditional
/// half uses `uncond(i)` (∅_i for null-text, the source embedding for negative-prompt inversion, the empty
/// prompt otherwise). With direct-inversion `offsets`, the source branch is pushed back onto the pivot
/// after each step. An attention controller sees every UNet pass; `onStep` may also adjust the latents
/// (local blend) before the next step.
public struct EditLoop {
    public let unet: UNet
    public let scheduler: DDIMScheduler
    public let steps: Int
    public let guidance: Float

    public init(unet: UNet, scheduler: DDIMScheduler, steps: Int, guidance: Float) throws {
        try scheduler.checkSteps(steps)
        self.unet = unet
        self.scheduler = scheduler
        self.steps = steps
        self.guidance = guidance
    }

    /// The final latents [B, C, h, w] for `prompts` (each [1, 77, D]) from `start` ([1, C, h, w]).
    public func run(start: Tensor, prompts: [Tensor], uncond: (Int) -> Tensor, offsets: [Tensor]? = nil,
                    controller: AttentionController? = nil,
                    onStep: (_ step: Int, _ latents: inout Tensor) -> Void = { _, _ in }) throws -> Tensor {
        let b = prompts.count
        precondition(b >= 1 && offsets.map { $0.count == steps } ?? true, "EditLoop: prompts or offsets")
        var z = repeatBatch(start, b)
        let cond = prompts.dropFirst().reduce(prompts[0]) { concatBatch($0, $1) }
        let timesteps = scheduler.timesteps(steps: steps).filter { $0 >= 0 }
        for (i, t) in timesteps.enumerated() {
            let context = concatBatch(repeatBatch(uncond(i), b), cond)
            let input = concatBatch(z, z)
            controller?.beginStep(i)
            let out = try unet(input, timesteps: Array(repeating: Float(t), count: 2 * b), context: context, controller: controller)
            let halves = chunk(out, dim0Parts: 2)
            z = scheduler.step(modelOutput: guide(uncond: halves[0], cond: halves[1], scale: guidance), timestep: t,
                               sample: z, steps: steps).prevSample
            if let offsets {
                let o = offsets[i]
                for k in 0..<o.count { z.data[k] += o.data[k] }   // branch 0 is the first o.count elements
            }
            onStep(i + 1, &z)
        }
        return z
    }
}

/// x [1, …] repeated n times along the batch dimension.
public func repeatBatch(_ x: Tensor, _ n: Int) -> Tensor {
    let y = Tensor(uninitialized: [n * x.dim(0)] + Array(x.shape.dropFirst()))
    for i in 0..<n { (y.data + i * x.count).update(from: x.data, count: x.count) }
    return y
}
