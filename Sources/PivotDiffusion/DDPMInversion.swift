import PivotModels
import PivotTensor

/// Edit-friendly DDPM inversion (docs/ALGORITHMS.md §4c): Huberman-Spiegelglas, Kulikov and Michaeli, "An Edit
/// Friendly DDPM Noise Space: Inversion and Manipulations" (CVPR 2024), as their code (and PnPInversion's copy,
/// `models/edit_friendly_ddm/inversion_utils.py`) computes it:
///
/// 1. x_1 … x_T are drawn independently from q(x_t | x_0): x_t = √ᾱ_t·x_0 + √(1 − ᾱ_t)·n_t, n_t ~ N(0, I),
///    lowest t first (`TorchGenerator`, so the numbers are torch's for the same seed);
/// 2. from the highest t down, with the guided prediction at x_t, the DDPM (η = 1) mean μ_t and
///    σ_t = √((1 − ᾱ_prev)/(1 − ᾱ_t)·(1 − ᾱ_t/ᾱ_prev)), the noise map z_t = (x_{t−1} − μ_t)/σ_t, and
///    x_{t−1} := μ_t + σ_t·z_t (the reference's correction, so float error does not accumulate).
///
/// Sampling with η = 1 and these noise maps from x_T under the same prompt and guidance retraces x_{T−1} … x_0
/// exactly; a target prompt changes the means while the noise maps keep the structure. Prompt-to-Prompt runs on
/// top as the authors do.
///
/// Limitations and differences: the reference zeroes the last step's noise map (so its reconstruction ends one
/// small σ away from x_0); pivot keeps it, so the reconstruction is exact. With `set_alpha_to_one` the last
/// step's σ is 0 and its noise map is 0 (the last mean is the result). Edits start from x_T (no T_skip).
extension PivotInversion {
    /// The sampled latents x_0 … x_T (as corrected) and the noise maps, one per sampling step in sampling order
    /// (map i belongs to the step from `timesteps[i]`).
    public struct DDPMNoise {
        public var latents: [Tensor]
        public var noise: [Tensor]
    }

    /// Edit-friendly noise maps of `z0` [1, C, h, w] under `cond` (guided against `uncond` with `guidance`),
    /// with x_1 … x_T drawn from `seed`. `onStep(step, T)` after each of the T guided passes.
    public func ddpmNoise(
        z0: Tensor, cond: Tensor, uncond: Tensor, seed: UInt64,
        onStep: (Int, Int) throws -> Void = { _, _ in }
    ) throws -> DDPMNoise {
        let ts = timesteps
        guard ts.allSatisfy({ $0 >= 0 }) else {
            throw ModelError.invalidInput("DDPM inversion needs every timestep ≥ 0; this schedule lists \(ts.last ?? 0)")
        }
        var generator = TorchGenerator(seed: seed)
        // x[j] sits at timestep ts[T − j]: x[T] at the highest, x[0] the photo's latent.
        var x = [z0]
        for j in 1...steps {
            let noise = generator.randn(z0.shape)
            x.append(scheduler.addNoise(original: z0, noise: noise, timestep: ts[steps - j]))
        }
        var maps: [Tensor] = []
        for (i, t) in ts.enumerated() {
            let current = x[steps - i]
            let out = try guidedOutput(current, timestep: t, cond: cond, uncond: uncond)
            let (alphaProd, alphaProdPrev) = scheduler.samplingLevels(t, steps: steps)
            let sigma = scheduler.variance(alphaProd: alphaProd, alphaProdPrev: alphaProdPrev).squareRoot()
            let mean = scheduler.step(
                modelOutput: out, timestep: t, sample: current, steps: steps, eta: 1,
                varianceNoise: Tensor(zeros: current.shape)
            ).prevSample
            let z = sigma > 0 ? zipMap(x[steps - i - 1], mean) { target, m in (target - m) / sigma } : Tensor(zeros: mean.shape)
            // The corrected x_{t−1}, with the very operations the sampler's step performs.
            x[steps - i - 1] = zipMap(mean, z) { m, n in m + sigma * n }
            try requireFinite(z, "DDPM inversion", step: i + 1, of: steps, tensor: "the noise map")
            maps.append(z)
            try onStep(i + 1, steps)
        }
        return DDPMNoise(latents: x, noise: maps)
    }
}
