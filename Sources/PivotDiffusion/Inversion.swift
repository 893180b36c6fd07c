import PivotModels
import PivotTensor

/// DDIM inversion and null-text optimisation (Mokady et al. 2022), as ../shared/SPEC.md §4 and the
/// reference port in scripts/reference/null_text.py define them.
///
/// Limitations, kept on purpose to match the reference: during inversion the UNet sees label t while the
/// latent sits at level t − 1000/T; the running latent of null-text optimisation is not snapped back to
/// the pivot. For v- (or x0-) prediction models every network output is converted to ε at the level the
/// latent sits at (as diffusers' `DDIMInverseScheduler` does) before any DDIM formula.
public struct PivotInversion {
    public let unet: UNet
    public let scheduler: DDIMScheduler
    public let steps: Int
    public let guidance: Float

    /// Throws when `steps` is outside 1…num_train_timesteps.
    public init(unet: UNet, scheduler: DDIMScheduler, steps: Int, guidance: Float = 7.5) throws {
        try scheduler.checkSteps(steps)
        self.unet = unet
        self.scheduler = scheduler
        self.steps = steps
        self.guidance = guidance
    }

    /// Distance between consecutive inference timesteps (1000 / T, integer division).
    public var stride: Int { scheduler.numTrainTimesteps / steps }

    /// The inference timesteps, highest first.
    public var timesteps: [Int] { scheduler.timesteps(steps: steps) }

    /// The pivot trajectory z*_0 … z*_T (T + 1 latents) of `z0` [1, C, h, w] under the source prompt's
    /// embedding `cond`, without guidance. `onStep(i, T)` after each of the T UNet calls.
    public func trajectory(z0: Tensor, cond: Tensor, onStep: (Int, Int) -> Void = { _, _ in }) throws -> [Tensor] {
        var latents = [z0]
        var z = z0
        for (i, t) in timesteps.reversed().enumerated() {
            let a = scheduler.alphaCumprod(at: min(t - stride, scheduler.numTrainTimesteps - 1))
            let eps = epsilon(try unet(z, timesteps: [Float(t)], context: cond), at: z, alpha: a)
            z = move(z, eps: eps, from: a, to: scheduler.alphaCumprod(at: t))
            latents.append(z)
            onStep(i + 1, steps)
        }
        return latents
    }

    /// What null-text optimisation found: one unconditional embedding per step, and per step the inner
    /// iterations run and their losses.
    public struct NullText {
        public var embeddings: [Tensor]
        public var iterations: [Int]
        public var losses: [[Float]]
    }

    /// Progress of null-text optimisation: outer step (1-based), inner iteration, its loss, and whether it
    /// was the step's last iteration.
    public typealias NullTextProgress = (_ step: Int, _ inner: Int, _ loss: Float, _ last: Bool) -> Void

    /// Null-text optimisation over the pivot `latents` (from `trajectory`): for step i a fresh Adam with
    /// lr 1e-2·(1 − i/100) tunes the unconditional embedding (warm-started from step i − 1) for up to
    /// `innerSteps` iterations so that one guided DDIM step from the running latent lands on z*_{T−i−1};
    /// it stops early when the loss falls below `epsilon` + i·2e-5. The gradient flows through every
    /// cross-attention K/V projection of the UNet.
    public func nullText(latents: [Tensor], cond: Tensor, uncond: Tensor, innerSteps: Int = 10, epsilon: Float = 1e-5,
                         onInner: NullTextProgress = { _, _, _, _ in }) throws -> NullText {
        precondition(latents.count == steps + 1, "nullText: \(latents.count) latents for \(steps) steps")
        var result = NullText(embeddings: [], iterations: [], losses: [])
        var z = latents[steps]
        let u = uncond.copy()
        for (i, t) in timesteps.enumerated() {
            var adam = Adam(count: u.count, learningRate: Float(1e-2 * (1 - Double(i) / 100)))
            let target = latents[steps - i - 1]
            let a = scheduler.alphaCumprod(at: t), aPrev = scheduler.alphaCumprod(at: t - stride)
            let epsCond = try unet(z, timesteps: [Float(t)], context: cond)
            // prev(ε) = √a_p·(z − √(1−a)·ε)/√a + √(1−a_p)·ε is affine in ε with slope c.
            // ε is affine in the network output too (slope 1 for ε-, √a for v-prediction).
            let c = ((1 - aPrev).squareRoot() - aPrev.squareRoot() * (1 - a).squareRoot() / a.squareRoot())
                * scheduler.epsilonSlope(alphaProd: a)
            var losses: [Float] = []
            for j in 0..<innerSteps {
                var loss: Float = 0
                let (_, grad) = try unet.vjp(z, timesteps: [Float(t)], context: u) { epsUncond in
                    let eps = self.epsilon(guide(uncond: epsUncond, cond: epsCond, scale: guidance), at: z, alpha: a)
                    let prev = move(z, eps: eps, from: a, to: aPrev)
                    let n = Float(prev.count)
                    let g = Tensor(uninitialized: prev.shape)
                    var sum: Double = 0
                    for k in 0..<prev.count {
                        let d = prev.data[k] - target.data[k]
                        sum += Double(d) * Double(d)
                        g.data[k] = 2 * d / n * c * (1 - guidance)   // ∂loss/∂ε_u
                    }
                    loss = Float(sum / Double(prev.count))
                    return g
                }
                adam.update(u, gradient: grad)
                losses.append(loss)
                let converged = loss < epsilon + Float(i) * 2e-5
                onInner(i + 1, j + 1, loss, converged || j == innerSteps - 1)
                if converged { break }
            }
            result.iterations.append(losses.count)
            result.losses.append(losses)
            result.embeddings.append(u.copy())
            let epsUncond = try unet(z, timesteps: [Float(t)], context: u)
            z = move(z, eps: self.epsilon(guide(uncond: epsUncond, cond: epsCond, scale: guidance), at: z, alpha: a), from: a, to: aPrev)
        }
        return result
    }

    /// ε from a network output at latent `z` sitting at level ᾱ = `alpha` (the output itself for ε-prediction).
    public func epsilon(_ output: Tensor, at z: Tensor, alpha: Float) -> Tensor {
        scheduler.config.predictionType == .epsilon ? output : scheduler.predictions(modelOutput: output, sample: z, alphaProd: alpha).epsilon
    }

    /// √ā_to · x0 + √(1 − ā_to) · ε with x0 = (z − √(1 − ā_from) · ε) / √ā_from (deterministic DDIM move).
    public func move(_ z: Tensor, eps: Tensor, from a: Float, to b: Float) -> Tensor {
        let sa = a.squareRoot(), s1a = (1 - a).squareRoot(), sb = b.squareRoot(), s1b = (1 - b).squareRoot()
        let y = Tensor(uninitialized: z.shape)
        for i in 0..<z.count {
            let x0 = (z.data[i] - s1a * eps.data[i]) / sa
            y.data[i] = sb * x0 + s1b * eps.data[i]
        }
        return y
    }
}
