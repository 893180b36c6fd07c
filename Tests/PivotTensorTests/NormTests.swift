import Foundation
import PivotTensor
import XCTest

/// groupNorm (optionally fused with SiLU) and layerNorm against double-precision references.
final class NormTests: XCTestCase {
    static func silu(_ v: Double) -> Double { v / (1 + exp(-v)) }

    /// Group norm of x [B, C, ...] in double: biased variance, per-channel affine, optional SiLU.
    static func groupNormReference(
        _ x: Tensor, groups: Int, gamma: Tensor, beta: Tensor, eps: Double,
        silu: Bool
    ) -> [Double] {
        let b = x.dim(0), c = x.dim(1), hw = x.count / (b * c), cpg = c / groups
        let xs = doubles(x), gs = doubles(gamma), bs = doubles(beta)
        var y = [Double](repeating: 0, count: xs.count)
        for n in 0..<b {
            for g in 0..<groups {
                let lo = (n * c + g * cpg) * hw, hi = lo + cpg * hw
                var mean = 0.0
                for i in lo..<hi { mean += xs[i] }
                mean /= Double(cpg * hw)
                var v = 0.0
                for i in lo..<hi { v += (xs[i] - mean) * (xs[i] - mean) }
                v /= Double(cpg * hw)
                let rstd = 1 / (v + eps).squareRoot()
                for i in lo..<hi {
                    let ch = (i / hw) % c
                    let t = (xs[i] - mean) * rstd * gs[ch] + bs[ch]
                    y[i] = silu ? Self.silu(t) : t
                }
            }
        }
        return y
    }

    /// Layer norm over the last dimension in double.
    static func layerNormReference(_ x: Tensor, gamma: Tensor, beta: Tensor, eps: Double) -> [Double] {
        let d = x.dim(-1), rows = x.count / d
        let xs = doubles(x), gs = doubles(gamma), bs = doubles(beta)
        var y = [Double](repeating: 0, count: xs.count)
        for r in 0..<rows {
            let row = xs[(r * d)..<((r + 1) * d)]
            let mean = row.reduce(0, +) / Double(d)
            let v = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(d)
            let rstd = 1 / (v + eps).squareRoot()
            for i in 0..<d { y[r * d + i] = (xs[r * d + i] - mean) * rstd * gs[i] + bs[i] }
        }
        return y
    }

    /// Extra absolute error of the kernel's fused affine y = x·a + b, a = rstd·γ, b = β − mean·a: both terms
    /// are about |mean|·rstd·|γ| and cancel, leaving a rounding error of about one ulp of that size (the same
    /// formulation as PyTorch's CPU group norm). Negligible unless |mean| ≫ std.
    static func fusedAffineSlack(_ x: Tensor, groups: Int, gamma: Tensor, eps: Double) -> Double {
        let b = x.dim(0), c = x.dim(1), hw = x.count / (b * c), cpg = c / groups
        let xs = doubles(x), gmax = doubles(gamma).map(abs).max() ?? 0
        var worst = 0.0
        for s in 0..<(b * groups) {
            let slab = xs[(s * cpg * hw)..<((s + 1) * cpg * hw)]
            let mean = slab.reduce(0, +) / Double(slab.count)
            let v = slab.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(slab.count)
            worst = max(worst, abs(mean) / (v + eps).squareRoot() * gmax)
        }
        return 2 * 0x1p-24 * worst
    }

    func checkGroupNorm(
        _ shape: [Int], groups: Int, silu: Bool, eps: Float = 1e-5, lo: Double = -1,
        hi: Double = 1, affineSlack: Bool = false, seed: UInt64,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        var rng = SplitMix64(seed: seed)
        let x = rng.tensor(shape, lo, hi)
        let gamma = rng.tensor([shape[1]], 0.5, 1.5)
        let beta = rng.tensor([shape[1]], -0.5, 0.5)
        checkGroupNorm(
            x, groups: groups, gamma: gamma, beta: beta, eps: eps, silu: silu, affineSlack: affineSlack,
            file: file, line: line)
    }

    func checkGroupNorm(
        _ x: Tensor, groups: Int, gamma: Tensor, beta: Tensor, eps: Float, silu: Bool,
        affineSlack: Bool, file: StaticString = #filePath, line: UInt = #line
    ) {
        let y = groupNorm(x, groups: groups, weight: gamma, bias: beta, eps: eps, silu: silu)
        let ref = Self.groupNormReference(x, groups: groups, gamma: gamma, beta: beta, eps: Double(eps), silu: silu)
        let scale = max(1, ref.map(abs).max() ?? 0)
        let slack = affineSlack ? Self.fusedAffineSlack(x, groups: groups, gamma: gamma, eps: Double(eps)) : 0
        assertClose(
            y, ref, shape: x.shape, tol: 1e-5 + slack / scale,
            "groupNorm \(x.shape) groups \(groups) silu \(silu) slack \(slack)", file: file, line: line)
    }

    func testGroupNormGroupCounts() {
        // C = 8 split into 1, 2, 4 and 8 groups; spatial sizes multiple of 16 and not.
        var seed: UInt64 = 100
        for groups in [1, 2, 4, 8] {
            for shape in [[2, 8, 4, 8], [2, 8, 5, 7], [1, 8, 1, 1], [2, 8, 3, 17]] {
                seed += 1
                checkGroupNorm(shape, groups: groups, silu: false, seed: seed)
            }
        }
    }

    func testGroupNormFusedSiLU() {
        var seed: UInt64 = 200
        for groups in [1, 2, 4, 8] {
            for shape in [[2, 8, 4, 8], [2, 8, 5, 7], [2, 8, 3, 17]] {
                seed += 1
                checkGroupNorm(shape, groups: groups, silu: true, seed: seed)
            }
        }
    }

    func testGroupNormStableDiffusionShapes() {
        // 32 groups as in the UNet/VAE, eps 1e-5 and 1e-6, 3-D input [B, C, N] too.
        checkGroupNorm([2, 64, 16, 16], groups: 32, silu: true, seed: 301)
        checkGroupNorm([2, 64, 16, 16], groups: 32, silu: false, eps: 1e-6, seed: 302)
        checkGroupNorm([2, 96, 77], groups: 32, silu: false, eps: 1e-6, seed: 303)
        // A moderate offset and spread (non-zero mean, std ≠ 1).
        checkGroupNorm([2, 32, 9, 9], groups: 8, silu: true, lo: 1, hi: 5, seed: 304)
        checkGroupNorm([1, 32, 9, 9], groups: 4, silu: false, lo: -40, hi: 30, seed: 305)
        // Long groups (16 384 elements, as in the UNet at 64×64), offset data: the blocked sums stay accurate.
        checkGroupNorm([1, 128, 64, 64], groups: 32, silu: true, lo: 2, hi: 4, seed: 308)
    }

    func testGroupNormConstantInput() {
        // Zero variance: the output is β (rstd = 1/√eps times 0), no NaN. Here the fused affine's slack is
        // large (|mean|·rstd·|γ| = 2.5·316·4): the kernel gives β to about 5e-5.
        let x = Tensor(shape: [1, 4, 3, 5], values: [Float](repeating: 2.5, count: 60))
        let gamma = Tensor(shape: [4], values: [1, 2, 3, 4])
        let beta = Tensor(shape: [4], values: [0.1, -0.2, 0.3, -4])
        for silu in [false, true] {
            checkGroupNorm(x, groups: 2, gamma: gamma, beta: beta, eps: 1e-5, silu: silu, affineSlack: true)
        }
        // Constant zero input: exact β.
        let z = groupNorm(Tensor(zeros: [1, 4, 2, 2]), groups: 4, weight: gamma, bias: beta, eps: 1e-5)
        XCTAssertEqual(z.scalars, [Float]([0.1, -0.2, 0.3, -4]).flatMap { [Float](repeating: $0, count: 4) })
    }

    func testGroupNormLargeMean() {
        // |mean| ≈ 100·std: within 1e-5 plus the fused-affine slack (≈ 3e-5 here).
        checkGroupNorm([2, 16, 6, 7], groups: 4, silu: false, lo: 99, hi: 101, affineSlack: true, seed: 306)
        checkGroupNorm([2, 16, 6, 7], groups: 4, silu: true, lo: -101, hi: -99, affineSlack: true, seed: 307)
    }

    func checkLayerNorm(
        _ shape: [Int], eps: Float = 1e-5, lo: Double = -1, hi: Double = 1, seed: UInt64,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        var rng = SplitMix64(seed: seed)
        let d = shape.last!
        let x = rng.tensor(shape, lo, hi)
        let gamma = rng.tensor([d], 0.5, 1.5)
        let beta = rng.tensor([d], -0.5, 0.5)
        let y = layerNorm(x, weight: gamma, bias: beta, eps: eps)
        let ref = Self.layerNormReference(x, gamma: gamma, beta: beta, eps: Double(eps))
        assertClose(y, ref, shape: shape, "layerNorm \(shape)", file: file, line: line)
    }

    func testLayerNorm() {
        checkLayerNorm([2, 5, 77], seed: 401)
        checkLayerNorm([2, 77, 64], seed: 402)
        checkLayerNorm([3, 17], seed: 403)
        checkLayerNorm([4, 16], seed: 404)
        checkLayerNorm([2, 3, 1], seed: 405)
        checkLayerNorm([2, 9, 320], eps: 1e-6, lo: -3, hi: 5, seed: 406)
        // Many rows, so the rows are split over threads.
        checkLayerNorm([2, 1024, 40], seed: 407)
        checkLayerNorm([1, 77, 768], lo: -2, hi: 6, seed: 408)  // CLIP width
        checkLayerNorm([1, 3, 5000], seed: 409)  // rows longer than the kernel's 1024-element blocks
    }
}
