import PivotModels
import PivotTensor

/// diffusers' `DDIMScheduler` (Song et al. 2021), for sampling and as the ᾱ table of DDIM inversion.
///
/// Matches diffusers 0.42.1 on PyTorch 2.13 CPU in fp32: β, ᾱ and `final_alpha_cumprod` bit for bit (see
/// `NoiseSchedule`; zero-SNR rescaling to about an ulp), `set_timesteps` exactly, and `step` with the same fp32
/// operations in the same order (to about an ulp: PyTorch's square roots are not correctly rounded, see
/// `Scheduler`).
/// Limitations: `thresholding` is refused by `SchedulerConfig`; η > 0 needs the caller's noise (diffusers would
/// draw it with `randn_tensor`; use `TorchGenerator` for torch's numbers).
public struct DDIMScheduler: Scheduler {
    /// The schedule's settings (already validated).
    public let config: SchedulerConfig
    /// β for every training timestep, in fp32.
    public let betas: [Float]
    /// ᾱ_t for t in 0..<N, in fp32.
    public let alphasCumprod: [Float]
    /// ᾱ for timesteps below 0: 1 when `set_alpha_to_one`, else ᾱ_0.
    public let finalAlphaCumprod: Float

    /// The scheduler for `config`; throws a one-line `ModelError` for values `validate()` refuses.
    public init(config: SchedulerConfig) throws {
        try config.validate()
        self.config = config
        betas = NoiseSchedule.betas(config)
        alphasCumprod = NoiseSchedule.alphasCumprod(betas: betas)
        finalAlphaCumprod = config.setAlphaToOne ? 1 : alphasCumprod[0]
    }

    /// diffusers' `set_timesteps(steps)`: the inference timesteps, highest first (`steps` in 1…N; see
    /// `checkSteps`). With SD's "leading" spacing and T = 50: 981, 961, …, 1 for `steps_offset` 1 and
    /// 980, …, 0 for 0.
    public func timesteps(steps: Int) -> [Int] {
        NoiseSchedule.timesteps(config, steps: steps)
    }

    /// One DDIM step from `timestep` to `previousTimestep(timestep, steps:)` (diffusers' `step`):
    /// 1. ᾱ_t, ᾱ_prev (`finalAlphaCumprod` when prev < 0);
    /// 2. ε and x0 from the model output for the prediction type (`predictions`), x0 clipped when
    ///    `clip_sample`;
    /// 3. σ = η·√variance; with `useClippedModelOutput` ε is recomputed from the clipped x0;
    /// 4. x_prev = √ᾱ_prev·x0 + √(1 − ᾱ_prev − σ²)·ε, plus σ·`varianceNoise` when η > 0.
    ///
    /// `timestep` must lie in 0..<N (not the −1 that "trailing" spacing can list) and `steps` in 1…N; `varianceNoise` (same shape as `sample`) is required
    /// when `eta > 0`. Returns the previous sample and the (clipped) predicted x0.
    public func step(
        modelOutput: Tensor, timestep: Int, sample: Tensor, steps: Int, eta: Float = 0,
        useClippedModelOutput: Bool = false,
        varianceNoise: Tensor? = nil
    ) -> (prevSample: Tensor, predictedOriginal: Tensor) {
        precondition((0..<numTrainTimesteps).contains(timestep), "DDIM step: timestep \(timestep) out of range")
        precondition((1...numTrainTimesteps).contains(steps), "DDIM step: \(steps) steps")
        precondition(eta <= 0 || varianceNoise?.shape == sample.shape, "DDIM step: η > 0 needs variance noise of the sample's shape")
        let (alphaProd, alphaProdPrev) = samplingLevels(timestep, steps: steps)

        var (epsilon, original) = predictions(modelOutput: modelOutput, sample: sample, alphaProd: alphaProd)
        original = clippedOriginal(original)
        let sigma = eta * variance(alphaProd: alphaProd, alphaProdPrev: alphaProdPrev).squareRoot()
        if useClippedModelOutput {
            epsilon = epsilonFromOriginal(original, sample: sample, alphaProd: alphaProd)
        }
        var prevSample = ddimMove(original: original, epsilon: epsilon, alphaProd: alphaProdPrev, sigma: sigma)
        if eta > 0, let noise = varianceNoise {
            prevSample = zipMap(prevSample, noise) { x, n in x + sigma * n }
        }
        return (prevSample, original)
    }
}
