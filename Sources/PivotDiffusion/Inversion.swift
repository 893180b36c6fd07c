import PivotModels
import PivotTensor

/// DDIM inversion and null-text optimisation (Mokady et al. 2022), as docs/ALGORITHMS.md §4 and the
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
    public func trajectory(z0: Tensor, cond: Tensor, onStep: (Int, Int) throws -> Void = { _, _ in }) throws -> [Tensor] {
        var latents = [z0]
        var z = z0
        for (i, t) in timesteps.reversed().enumerated() {
            let (a, b) = scheduler.inversionLevels(t, steps: steps)
            let eps = scheduler.epsilon(try unet(z, timesteps: [Float(t)], context: cond), sample: z, alphaProd: a)
            z = scheduler.ddimStep(z, epsilon: eps, from: a, to: b)
            try requireFinite(z, "DDIM inversion", step: i + 1, of: steps)
            latents.append(z)
            try onStep(i + 1, steps)
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
    public typealias NullTextProgress = (_ step: Int, _ inner: Int, _ loss: Float, _ last: Bool) throws -> Void

    /// Null-text optimisation over the pivot `latents` (from `trajectory`): for step i a fresh Adam with
    /// lr 1e-2·(1 − i/100) tunes the unconditional embedding (warm-started from step i − 1) for up to
    /// `innerSteps` iterations so that one guided DDIM step from the running latent lands on z*_{T−i−1};
    /// it stops early when the loss falls below `epsilon` + i·2e-5. The gradient flows through every
    /// cross-attention K/V projection of the UNet.
    public func nullText(
        latents: [Tensor], cond: Tensor, uncond: Tensor, innerSteps: Int = 10, epsilon: Float = 1e-5,
        onInner: NullTextProgress = { _, _, _, _ in }
    ) throws -> NullText {
        precondition(latents.count == steps + 1, "nullText: \(latents.count) latents for \(steps) steps")
        var result = NullText(embeddings: [], iterations: [], losses: [])
        var z = latents[steps]
        let u = uncond.copy()
        for (i, t) in timesteps.enumerated() {
            var adam = Adam(count: u.count, learningRate: Float(1e-2 * (1 - Double(i) / 100)))
            let target = latents[steps - i - 1]
            let (a, aPrev) = scheduler.samplingLevels(t, steps: steps)
            let epsCond = try unet(z, timesteps: [Float(t)], context: cond)
            // prev(ε) = √a_p·(z − √(1−a)·ε)/√a + √(1−a_p)·ε is affine in ε with slope c.
            // ε is affine in the network output too (slope 1 for ε-, √a for v-prediction).
            let c =
                ((1 - aPrev).squareRoot() - aPrev.squareRoot() * (1 - a).squareRoot() / a.squareRoot())
                * scheduler.epsilonSlope(alphaProd: a)
            var losses: [Float] = []
            for j in 0..<innerSteps {
                var loss: Float = 0
                let (_, grad) = try unet.vjp(z, timesteps: [Float(t)], context: u) { epsUncond in
                    let prev = self.guidedStep(z, uncond: epsUncond, cond: epsCond, from: a, to: aPrev)
                    let n = Float(prev.count), w = guidance
                    loss = Float(sumOfSquaredDifferences(prev, target) / Double(prev.count))
                    return zipMap(prev, target) { p, q in 2 * (p - q) / n * c * (1 - w) }  // ∂loss/∂ε_u
                }
                adam.update(u, gradient: grad)
                losses.append(loss)
                let converged = loss < epsilon + Float(i) * 2e-5
                try onInner(i + 1, j + 1, loss, converged || j == innerSteps - 1)
                if converged { break }
            }
            result.iterations.append(losses.count)
            result.losses.append(losses)
            try requireFinite(u, "null-text optimisation", step: i + 1, of: steps, tensor: "the null-text embedding")
            result.embeddings.append(u.copy())
            z = guidedStep(z, uncond: try unet(z, timesteps: [Float(t)], context: u), cond: epsCond, from: a, to: aPrev)
            try requireFinite(z, "null-text optimisation", step: i + 1, of: steps)
        }
        return result
    }

    /// One classifier-free-guided DDIM step of `z` from level `a` to level `b`, from the network outputs of
    /// the unconditional and conditional branches (guided, then converted to ε at z's level).
    public func guidedStep(_ z: Tensor, uncond: Tensor, cond: Tensor, from a: Float, to b: Float) -> Tensor {
        let eps = scheduler.epsilon(guide(uncond: uncond, cond: cond, scale: guidance), sample: z, alphaProd: a)
        return scheduler.ddimStep(z, epsilon: eps, from: a, to: b)
    }
}

extension PivotInversion {
    /// Direct inversion's offsets (Ju et al. 2024): for each step, z*_{t−1} − prev(guided ε at z*_t), with the
    /// empty prompt as the unconditional branch; adding them after each source-branch step keeps it on the
    /// pivot.
    public func directOffsets(
        latents: [Tensor], cond: Tensor, uncond: Tensor,
        onStep: (Int, Int) throws -> Void = { _, _ in }
    ) throws -> [Tensor] {
        var offsets: [Tensor] = []
        for (i, t) in timesteps.enumerated() {
            let z = latents[steps - i]
            let epsC = try unet(z, timesteps: [Float(t)], context: cond)
            let epsU = try unet(z, timesteps: [Float(t)], context: uncond)
            let (a, b) = scheduler.samplingLevels(t, steps: steps)
            let prev = guidedStep(z, uncond: epsU, cond: epsC, from: a, to: b)
            offsets.append(zipMap(latents[steps - i - 1], prev) { target, p in target - p })
            try onStep(i + 1, steps)
        }
        return offsets
    }
}

/// How a photo is inverted (docs/ALGORITHMS.md §4).
public enum InversionMethod: String, CaseIterable, Sendable {
    /// Per-step unconditional embeddings optimised so guided DDIM retraces the pivot (the default).
    case nullText = "null-text"
    /// ∅_i := the source prompt's embedding; no optimisation (Miyake et al. 2023).
    case negativePrompt = "negative-prompt"
    /// The source branch is pushed back onto the pivot after each step by stored offsets (Ju et al. 2024).
    case direct
    /// Plain DDIM inversion, guidance on the raw trajectory (the baseline that fails).
    case ddim
    /// Each inversion step solved as a fixed point of the guided DDIM step (Pan et al. 2023): forward passes
    /// only, the guided sampler retraces the trajectory.
    case fixedPoint = "fixed-point"
    /// Edit-friendly DDPM noise maps (Huberman-Spiegelglas et al. 2024): η = 1 sampling with stored noise
    /// reconstructs exactly.
    case ddpm
    /// The conditional flow inverted exactly by fixed-point iteration (guidance 1), then direct inversion's
    /// offsets on that trajectory for the guided source branch.
    case fixedPointDirect = "fixed-point+direct"
}

extension InversionMethod {
    /// Whether the inner-steps setting shapes this method's inversion (null-text's optimisation iterations,
    /// fixed-point's refinements per step).
    public var usesInnerSteps: Bool { self == .nullText || self == .fixedPoint || self == .fixedPointDirect }

    /// Whether the edit pushes the source branch back onto the pivot with stored offsets.
    public var usesOffsets: Bool { self == .direct || self == .fixedPointDirect }

    /// Whether the inversion runs gradient passes (null-text's optimisation); the others run forwards only.
    public var usesGradients: Bool { self == .nullText }

    /// The unconditional embedding the edit's step `step` (0-based) runs under, by method: ∅_step for
    /// null-text (`nulls`, the last one past the end), the source prompt's embedding for negative-prompt
    /// inversion, the empty prompt's otherwise.
    public func unconditional(step: Int, nulls: [Tensor]?, source: Tensor, empty: Tensor) -> Tensor {
        switch self {
        case .nullText:
            guard let nulls, !nulls.isEmpty else { return empty }
            return nulls[min(step, nulls.count - 1)]
        case .negativePrompt: return source
        case .direct, .ddim, .fixedPoint, .ddpm, .fixedPointDirect: return empty
        }
    }
}
