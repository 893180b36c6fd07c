import PivotModels
import PivotTensor

/// Fixed-point DDIM inversion (docs/ALGORITHMS.md §4b), after Pan et al., "Effective Real Image Editing with
/// Accelerated Iterative Diffusion Inversion" (AIDI, ICCV 2023), and Garibi et al., "ReNoise" (ECCV 2024).
///
/// Plain DDIM inversion evaluates the network at the latent it starts from, z_{t−s}, where the sampling step it
/// should undo evaluates it at z_t, the latent it is looking for; the error of that substitution is what makes
/// guided sampling drift off the photo. Here each inversion step solves
///
///     z_t = F(z_t),   F(x) = DDIM step of z_{t−s} from ᾱ_{t−s} up to ᾱ_t with ε̃(x, t),
///
/// where ε̃ is the classifier-free-guided ε (empty prompt as the unconditional branch, the inversion's
/// guidance), so that one guided DDIM sampling step from z_t lands back on z_{t−s}: the whole trajectory then
/// reconstructs the photo under the guidance an edit samples with, with no UNet backward pass at all. The
/// iteration starts from the plain DDIM guess (ε̃ at z_{t−s}), is accelerated by Anderson mixing (memory 2, as
/// AIDI), stops early when ‖F(x) − x‖/‖x‖ falls below `tolerance` or has not improved by 10% in two refinements
/// (the floor the network's rounding sets), and keeps F of the iterate with the smallest residual (at high
/// guidance the map need not contract).
///
/// Limitations: every iteration costs one guided pair of UNet passes; the labels are those of sampling (the
/// network sees label t at the latent of level t), not the null-text reference's shifted labels.
extension PivotInversion {
    /// What fixed-point inversion found: the trajectory z_0 … z_T, and per step the fixed-point iterations run
    /// (guided pairs after the first guess) and the last relative residual.
    public struct FixedPoint {
        public var latents: [Tensor]
        public var iterations: [Int]
        public var residuals: [Float]
    }

    /// The fixed-point trajectory of `z0` [1, C, h, w] under `cond` (guided against `uncond` with `guidance`),
    /// with at most `iterations` refinements a step. `onStep(step, T, iterations, residual)` after each step.
    public func fixedPointTrajectory(
        z0: Tensor, cond: Tensor, uncond: Tensor, iterations: Int, tolerance: Float = 1e-3,
        onStep: (_ step: Int, _ total: Int, _ iterations: Int, _ residual: Float) throws -> Void = { _, _, _, _ in }
    ) throws -> FixedPoint {
        var result = FixedPoint(latents: [z0], iterations: [], residuals: [])
        var z = z0
        for (i, t) in timesteps.reversed().enumerated() {
            // Sampling from t moves ᾱ_t → ᾱ_{t−s}; its inverse moves z_{t−s} (here z) from `low` up to `high`.
            let (high, low) = scheduler.samplingLevels(t, steps: steps)
            let start = z
            func epsilon(_ x: Tensor, level: Float) throws -> Tensor {
                scheduler.epsilon(try guidedOutput(x, timestep: t, cond: cond, uncond: uncond), sample: x, alphaProd: level)
            }
            func map(_ x: Tensor) throws -> Tensor {
                scheduler.ddimStep(start, epsilon: try epsilon(x, level: high), from: low, to: high)
            }
            var x = scheduler.ddimStep(start, epsilon: try epsilon(start, level: low), from: low, to: high)
            var mixer = AndersonMixer(memory: 2)
            var best: (residual: Float, value: Tensor)? = nil
            var used = 0, stalled = 0
            for _ in 0..<iterations {
                let fx = try map(x)
                used += 1
                let g = zipMap(fx, x) { a, b in a - b }
                let residual = Float((dotProduct(g, g) / max(dotProduct(x, x), 1e-30)).squareRoot())
                if !residual.isFinite { break }
                // Stalled: two refinements in a row that do not beat the best residual by 10% (the floor that the
                // network's own rounding, bf16's above all, sets).
                stalled = best.map { residual > 0.9 * $0.residual } ?? false ? stalled + 1 : 0
                if best == nil || residual < best!.residual { best = (residual, fx) }
                if residual < tolerance || stalled >= 2 { break }
                x = mixer.next(x: x, g: g)
            }
            z = best?.value ?? x
            try requireFinite(z, "fixed-point inversion", step: i + 1, of: steps)
            result.latents.append(z)
            result.iterations.append(used)
            result.residuals.append(best?.residual ?? .nan)
            try onStep(i + 1, steps, used, best?.residual ?? .nan)
        }
        return result
    }

    /// The classifier-free-guided network output at `x` for label `timestep` (only the conditional pass when
    /// guidance ≤ 1), as the denoising loop forms it.
    func guidedOutput(_ x: Tensor, timestep t: Int, cond: Tensor, uncond: Tensor) throws -> Tensor {
        guard guidance > 1 else { return try unet(x, timesteps: [Float(t)], context: cond) }
        let out = try unet(concatBatch(x, x), timesteps: [Float(t), Float(t)], context: concatBatch(uncond, cond))
        let halves = chunk(out, dim0Parts: 2)
        return guide(uncond: halves[0], cond: halves[1], scale: guidance)
    }
}

/// Anderson mixing (type II) for a fixed-point problem x = F(x) with residual g = F(x) − x: the next iterate
/// x + g − (ΔX + ΔG)·γ with γ minimising ‖g − ΔG·γ‖ over the last `memory` differences (a small ridge keeps the
/// normal equations solvable). With no history it is the plain step x + g.
struct AndersonMixer {
    let memory: Int
    private var lastX: Tensor?
    private var lastG: Tensor?
    private var dX: [Tensor] = []
    private var dG: [Tensor] = []

    init(memory: Int) { self.memory = memory }

    mutating func next(x: Tensor, g: Tensor) -> Tensor {
        if let px = lastX, let pg = lastG {
            dX.append(zipMap(x, px) { a, b in a - b })
            dG.append(zipMap(g, pg) { a, b in a - b })
            if dX.count > memory {
                dX.removeFirst()
                dG.removeFirst()
            }
        }
        lastX = x
        lastG = g
        var out = zipMap(x, g) { a, b in a + b }
        let m = dG.count
        guard m > 0 else { return out }
        // Normal equations (ΔGᵀΔG + λI) γ = ΔGᵀ g, m ≤ 2: solved directly in fp64.
        var a = [[Double]](repeating: [Double](repeating: 0, count: m), count: m)
        var b = [Double](repeating: 0, count: m)
        for i in 0..<m {
            b[i] = dotProduct(dG[i], g)
            for j in 0..<m { a[i][j] = dotProduct(dG[i], dG[j]) }
        }
        let ridge = 1e-10 * max((0..<m).map { a[$0][$0] }.max() ?? 0, 1e-30)
        for i in 0..<m { a[i][i] += ridge }
        guard let gamma = Self.solve(a, b), gamma.allSatisfy({ $0.isFinite }) else { return out }
        for i in 0..<m {
            let c = Float(gamma[i])
            out = zipMap(out, zipMap(dX[i], dG[i]) { p, q in p + q }) { o, d in o - c * d }
        }
        return out
    }

    /// Gaussian elimination with partial pivoting for a tiny dense system; nil when singular.
    static func solve(_ matrix: [[Double]], _ rhs: [Double]) -> [Double]? {
        var a = matrix, b = rhs
        let n = b.count
        for col in 0..<n {
            guard let pivot = (col..<n).max(by: { abs(a[$0][col]) < abs(a[$1][col]) }), abs(a[pivot][col]) > 0 else { return nil }
            a.swapAt(col, pivot)
            b.swapAt(col, pivot)
            for row in (col + 1)..<n {
                let f = a[row][col] / a[col][col]
                for k in col..<n { a[row][k] -= f * a[col][k] }
                b[row] -= f * b[col]
            }
        }
        var x = [Double](repeating: 0, count: n)
        for row in stride(from: n - 1, through: 0, by: -1) {
            var s = b[row]
            for k in (row + 1)..<n { s -= a[row][k] * x[k] }
            x[row] = s / a[row][row]
        }
        return x
    }
}
