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
    /// configured prediction type (SPEC §3: v is converted to ε and x0 before any DDIM formula). In fp32 as
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
            return (zipMap(modelOutput, sample) { v, x in sa * v + sb * x },
                    zipMap(sample, modelOutput) { x, v in sa * x - sb * v })
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

/// f applied to every element of x, into a new tensor.
@inline(__always) func mapElements(_ x: Tensor, _ f: (Float) -> Float) -> Tensor {
    let out = Tensor(uninitialized: x.shape)
    let p = x.data, q = out.data
    for i in 0..<x.count { q[i] = f(p[i]) }
    withExtendedLifetime(x) {}
    return out
}

/// f applied to corresponding elements of a and b (same shape), into a new tensor.
@inline(__always) func zipMap(_ a: Tensor, _ b: Tensor, _ f: (Float, Float) -> Float) -> Tensor {
    precondition(a.shape == b.shape, "scheduler: shapes \(a.shape) and \(b.shape) differ")
    let out = Tensor(uninitialized: a.shape)
    let p = a.data, q = b.data, r = out.data
    for i in 0..<a.count { r[i] = f(p[i], q[i]) }
    withExtendedLifetime((a, b)) {}
    return out
}
