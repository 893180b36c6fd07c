import Foundation

/// The training-time noise schedule (β, ᾱ) and the inference timesteps, computed with the same arithmetic as
/// diffusers 0.42 on PyTorch 2.13 / NumPy, so that the numbers agree bit for bit rather than "to float precision"
/// (the exception is noted under `rescale_betas_zero_snr`):
///
/// - `torch.linspace(a, b, n, dtype=float32)` on CPU: step = (b − a)/(n − 1) in fp32; element i is
///   a + step·i for i < n/2 and b − step·(n − 1 − i) after, each with one rounding (torch's AVX2 build fuses the
///   multiply-add). `scaled_linear` squares that elementwise in fp32; √β_start and √β_end are Python's
///   `x ** 0.5` (the C library's `pow`).
/// - `squaredcos_cap_v2`: Python doubles (`math.cos`, `** 2`), capped at 0.999, then rounded to fp32.
/// - `rescale_betas_zero_snr`: diffusers' `rescale_zero_terminal_snr`, op by op in fp32, with correctly rounded
///   square roots. PyTorch's CPU `sqrt` for fp32 is MKL's `vsSqrt` (an rsqrt estimate refined with FMAs): within
///   1 ulp, but not correctly rounded for ~20% of inputs and dependent on the processor's estimate, so these β
///   agree with diffusers to about an ulp, not bitwise.
/// - α = 1 − β in fp32; ᾱ = `torch.cumprod` in fp32, which accumulates in double and rounds each output.
/// - timesteps: NumPy's `arange`/`linspace` in double and `round` (half to even).
public enum NoiseSchedule {
    /// β for every training timestep, in fp32.
    public static func betas(_ config: SchedulerConfig) -> [Float] {
        let n = config.numTrainTimesteps
        var betas: [Float]
        if let trained = config.trainedBetas {
            betas = trained.map { Float($0) }
        } else {
            switch config.betaSchedule {
            case .linear:
                betas = torchLinspace(Float(config.betaStart), Float(config.betaEnd), n)
            case .scaledLinear:
                betas = torchLinspace(Float(pow(config.betaStart, 0.5)), Float(pow(config.betaEnd, 0.5)), n).map { $0 * $0 }
            case .squaredcosCapV2:
                func alphaBar(_ t: Double) -> Double { pow(cos((t + 0.008) / 1.008 * Double.pi / 2), 2) }
                betas = (0..<n).map { i in
                    let t1 = Double(i) / Double(n), t2 = Double(i + 1) / Double(n)
                    return Float(min(1 - alphaBar(t2) / alphaBar(t1), 0.999))
                }
            }
        }
        if config.rescaleBetasZeroSNR { betas = rescaledToZeroTerminalSNR(betas) }
        return betas
    }

    /// ᾱ_t = ∏_{s ≤ t} (1 − β_s), as `torch.cumprod(1.0 - betas)` computes it in fp32.
    public static func alphasCumprod(betas: [Float]) -> [Float] {
        var product = 1.0
        return betas.map { beta in
            product *= Double(1 - beta)
            return Float(product)
        }
    }

    /// `torch.linspace(start, end, count, dtype=torch.float32)` on CPU, bit for bit.
    public static func torchLinspace(_ start: Float, _ end: Float, _ count: Int) -> [Float] {
        guard count > 1 else { return count == 1 ? [start] : [] }
        let step = (end - start) / Float(count - 1)
        let halfway = count / 2
        return (0..<count).map { i in
            i < halfway ? start.addingProduct(step, Float(i)) : end.addingProduct(-step, Float(count - 1 - i))
        }
    }

    /// diffusers' `rescale_zero_terminal_snr` (Lin et al. 2023, algorithm 1) in fp32: shifts and scales √ᾱ so that
    /// the last is exactly 0 and the first unchanged, then converts back to β.
    static func rescaledToZeroTerminalSNR(_ betas: [Float]) -> [Float] {
        var roots = alphasCumprod(betas: betas).map { $0.squareRoot() }
        guard let first = roots.first, let last = roots.last else { return betas }
        let factor = first / (first - last)
        roots = roots.map { ($0 - last) * factor }
        let bars = roots.map { $0 * $0 }
        var alphas = [bars[0]]
        for i in 1..<bars.count { alphas.append(bars[i] / bars[i - 1]) }
        return alphas.map { 1 - $0 }
    }

    /// The inference timesteps of diffusers' `DDIMScheduler.set_timesteps(steps)`, highest first.
    /// `steps` must lie in 1…`numTrainTimesteps`.
    ///
    /// Faithful to a diffusers quirk: with "trailing" spacing, NumPy's float `arange` sometimes yields one value
    /// too many, so the list has `steps + 1` entries and ends in −1 (62 step counts ≤ 1000 for N = 1000, among
    /// them 61 and 103). diffusers would then index ᾱ[−1] (the last); callers should stop before a
    /// negative timestep, which `DDIMScheduler.step` refuses.
    public static func timesteps(_ config: SchedulerConfig, steps: Int) -> [Int] {
        let n = config.numTrainTimesteps
        precondition((1...n).contains(steps), "timesteps: \(steps) steps for \(n) training timesteps")
        switch config.timestepSpacing {
        case .leading:
            let ratio = n / steps
            return (0..<steps).reversed().map { $0 * ratio + config.stepsOffset }
        case .trailing:
            // np.round(np.arange(n, 0, -n / steps)) - 1
            return numpyArange(Double(n), 0, -Double(n) / Double(steps)).map { Int($0.rounded(.toNearestOrEven)) - 1 }
        case .linspace:
            // np.linspace(0, n - 1, steps).round()[::-1]
            guard steps > 1 else { return [0] }
            let step = Double(n - 1) / Double(steps - 1)
            var values = (0..<steps).map { Double($0) * step }
            values[steps - 1] = Double(n - 1)
            return values.reversed().map { Int($0.rounded(.toNearestOrEven)) }
        }
    }

    /// NumPy's float `arange(start, stop, step)`: ⌈(stop − start)/step⌉ values, the first two computed directly
    /// and the rest as start + i·(second − start).
    static func numpyArange(_ start: Double, _ stop: Double, _ step: Double) -> [Double] {
        let count = max(0, Int(((stop - start) / step).rounded(.up)))
        guard count > 0 else { return [] }
        var values = [start]
        guard count > 1 else { return values }
        let second = start + step
        values.append(second)
        let delta = second - start
        for i in 2..<count { values.append(start + Double(i) * delta) }
        return values
    }
}
