import PivotModels
import PivotTensor

/// A discrete-time diffusion schedule over N training timesteps (the shape of apple/ml-stable-diffusion's
/// `Scheduler` protocol): a conforming type provides ᾱ and its inference timesteps; the extension provides
/// the maths that DDIM sampling and DDIM inversion share, so inversion can reuse the same ᾱ lookups and the
/// same conversions of a network output to ε and x0.
///
/// All arithmetic is fp32 with one rounding per operation, in the order diffusers 0.42 writes it for PyTorch
/// (`scheduling_ddim.py`); every formula below names the line it reproduces. Square roots are correctly
/// rounded; PyTorch's (`x ** 0.5` goes to MKL's `vsSqrt` on CPU) are off by one ulp for ~20% of inputs, in a
/// processor-dependent way, so results agree with diffusers to about an ulp (well within 1e-6) rather than
/// bitwise; with PyTorch's roots substituted, the rest of the arithmetic was checked to be bit-identical.
public protocol Scheduler: Sendable {
    /// The schedule's settings.
    var config: SchedulerConfig { get }
    /// ᾱ_t for t in 0..<N, in fp32 (diffusers' `alphas_cumprod`).
    var alphasCumprod: [Float] { get }
    /// ᾱ used for timesteps below 0 (diffusers' `final_alpha_cumprod`): 1, or ᾱ_0 when `set_alpha_to_one` is
    /// false.
    var finalAlphaCumprod: Float { get }
    /// The inference timesteps for `steps` steps, highest first.
    func timesteps(steps: Int) -> [Int]
}

extension Scheduler {
    /// N, the number of training timesteps.
    public var numTrainTimesteps: Int { config.numTrainTimesteps }

    /// ᾱ at `timestep`: `alphasCumprod[timestep]`, or `finalAlphaCumprod` when `timestep < 0` (diffusers'
    /// `alphas_cumprod[t] if t >= 0 else final_alpha_cumprod`). `timestep` must be below N.
    public func alphaCumprod(at timestep: Int) -> Float {
        precondition(timestep < alphasCumprod.count, "alphaCumprod: timestep \(timestep) ≥ \(alphasCumprod.count)")
        return timestep >= 0 ? alphasCumprod[timestep] : finalAlphaCumprod
    }

    /// The timestep a DDIM step from `timestep` lands on: `timestep − N div steps` (diffusers' `prev_timestep`,
    /// whatever the spacing; it is negative on the last "leading" step).
    public func previousTimestep(_ timestep: Int, steps: Int) -> Int {
        timestep - numTrainTimesteps / steps
    }

    /// Throws a one-line `ModelError.invalidInput` unless `steps` lies in 1…N (diffusers raises the same).
    public func checkSteps(_ steps: Int) throws {
        guard (1...numTrainTimesteps).contains(steps) else {
            throw ModelError.invalidInput("the number of steps must lie in 1…\(numTrainTimesteps), not \(steps)")
        }
    }

    /// The noise ε and the clean sample x0 implied by a network output at a level with ᾱ = `alphaProd`, for the
    /// configured prediction type (docs/ALGORITHMS.md §3: v is converted to ε and x0 before any DDIM formula). In fp32 as
    /// diffusers' `step` writes it, with β = 1 − ᾱ:
    /// - epsilon: x0 = (x − √β·out)/√ᾱ, ε = out;
    /// - v_prediction: x0 = √ᾱ·x − √β·out, ε = √ᾱ·out + √β·x;
    /// - sample: x0 = out, ε = (x − √ᾱ·x0)/√β.
    public func predictions(modelOutput: Tensor, sample: Tensor, alphaProd: Float) -> (epsilon: Tensor, original: Tensor) {
        precondition(modelOutput.shape == sample.shape, "predictions: model output \(modelOutput.shape) vs sample \(sample.shape)")
        let sa = alphaProd.squareRoot(), sb = (1 - alphaProd).squareRoot()
        switch config.predictionType {
        case .epsilon:
            return (modelOutput, zipMap(sample, modelOutput) { x, e in (x - sb * e) / sa })
        case .vPrediction:
            return (
                zipMap(modelOutput, sample) { v, x in sa * v + sb * x },
                zipMap(sample, modelOutput) { x, v in sa * x - sb * v }
            )
        case .sample:
            return (epsilonFromOriginal(modelOutput, sample: sample, alphaProd: alphaProd), modelOutput)
        }
    }

    /// ∂ε/∂(network output) at a level with ᾱ = `alphaProd` (ε is affine in the output for every type).
    public func epsilonSlope(alphaProd: Float) -> Float {
        switch config.predictionType {
        case .epsilon: return 1
        case .vPrediction: return alphaProd.squareRoot()
        case .sample: return -alphaProd.squareRoot() / (1 - alphaProd).squareRoot()
        }
    }

    /// ε = (x − √ᾱ·x0)/√(1 − ᾱ) (diffusers' `sample` branch and `use_clipped_model_output`).
    public func epsilonFromOriginal(_ original: Tensor, sample: Tensor, alphaProd: Float) -> Tensor {
        let sa = alphaProd.squareRoot(), sb = (1 - alphaProd).squareRoot()
        return zipMap(sample, original) { x, x0 in (x - sa * x0) / sb }
    }

    /// x0 clamped to ±`clip_sample_range` when `clip_sample` is set (diffusers' `clamp`; NaN stays NaN), else x0.
    public func clippedOriginal(_ original: Tensor) -> Tensor {
        guard config.clipSample else { return original }
        let r = Float(config.clipSampleRange)
        return mapElements(original) { $0.isNaN ? $0 : Swift.min(Swift.max($0, -r), r) }
    }

    /// The deterministic DDIM move to the level ᾱ = `alphaProd`: √ᾱ·x0 + √(1 − ᾱ − σ²)·ε (diffusers'
    /// `alpha_prod_t_prev ** 0.5 * pred_original_sample + pred_sample_direction`; σ = 0 for η = 0). Inversion
    /// uses it with the next-higher level.
    public func ddimMove(original: Tensor, epsilon: Tensor, alphaProd: Float, sigma: Float = 0) -> Tensor {
        let sa = alphaProd.squareRoot(), sd = (1 - alphaProd - sigma * sigma).squareRoot()
        return zipMap(original, epsilon) { x0, e in sa * x0 + sd * e }
    }

    /// x0 = (x − √(1 − ᾱ)·ε)/√ᾱ: the clean sample implied by ε at a level with ᾱ = `alphaProd`.
    public func originalFromEpsilon(_ epsilon: Tensor, sample: Tensor, alphaProd: Float) -> Tensor {
        let sa = alphaProd.squareRoot(), sb = (1 - alphaProd).squareRoot()
        return zipMap(sample, epsilon) { x, e in (x - sb * e) / sa }
    }

    /// The deterministic DDIM step of a sample at level ᾱ = `from` with noise ε to level ᾱ = `to`:
    /// √ā_to·x0 + √(1 − ā_to)·ε with x0 = (x − √(1 − ā_from)·ε)/√ā_from (docs/ALGORITHMS.md §3–§4). The one
    /// step every loop takes: sampling and editing move down (`DDIMScheduler.step`, which starts from the
    /// network output), inversion moves up, null-text and direct offsets take the guided step of sampling.
    public func ddimStep(_ sample: Tensor, epsilon: Tensor, from: Float, to: Float) -> Tensor {
        ddimMove(original: originalFromEpsilon(epsilon, sample: sample, alphaProd: from), epsilon: epsilon, alphaProd: to)
    }

    /// ε from a network output at a sample sitting at level ᾱ = `alphaProd` (the output itself for
    /// ε-prediction; v and x0 predictions are converted, as diffusers' `DDIMInverseScheduler` does).
    public func epsilon(_ modelOutput: Tensor, sample: Tensor, alphaProd: Float) -> Tensor {
        config.predictionType == .epsilon ? modelOutput : predictions(modelOutput: modelOutput, sample: sample, alphaProd: alphaProd).epsilon
    }

    /// The levels of sampling step `timestep` (T steps): from ᾱ_t to ᾱ_{t − N/T} (`finalAlphaCumprod`
    /// below 0); the UNet sees label t.
    public func samplingLevels(_ timestep: Int, steps: Int) -> (from: Float, to: Float) {
        (alphaCumprod(at: timestep), alphaCumprod(at: previousTimestep(timestep, steps: steps)))
    }

    /// The levels of inversion step `timestep` (T steps), as the null-text reference labels them: the UNet
    /// sees label t while the latent sits at level t − N/T (clamped to N − 1), and the step lands on ᾱ_t.
    public func inversionLevels(_ timestep: Int, steps: Int) -> (from: Float, to: Float) {
        (alphaCumprod(at: min(previousTimestep(timestep, steps: steps), numTrainTimesteps - 1)), alphaCumprod(at: timestep))
    }

    /// DDIM's σ²: (1 − ᾱ_prev)/(1 − ᾱ_t) · (1 − ᾱ_t/ᾱ_prev) (diffusers' `_get_variance`).
    public func variance(alphaProd: Float, alphaProdPrev: Float) -> Float {
        ((1 - alphaProdPrev) / (1 - alphaProd)) * (1 - alphaProd / alphaProdPrev)
    }

    /// The forward process at `timestep`: √ᾱ·x0 + √(1 − ᾱ)·noise (diffusers' `add_noise`).
    public func addNoise(original: Tensor, noise: Tensor, timestep: Int) -> Tensor {
        precondition(timestep >= 0, "addNoise: negative timestep \(timestep)")
        let a = alphaCumprod(at: timestep)
        let sa = a.squareRoot(), sb = (1 - a).squareRoot()
        return zipMap(original, noise) { x0, n in sa * x0 + sb * n }
    }
}
