import CPivotKernels

/// Group normalisation of x [B, C, H, W] (or [B, C, N]) with per-channel affine, optionally fused with SiLU.
public func groupNorm(
    _ x: Tensor, groups: Int, weight: Tensor, bias: Tensor, eps: Float,
    silu: Bool = false
) -> Tensor {
    let b = x.dim(0), c = x.dim(1)
    let hw = x.count / (b * c)
    let y = Tensor(uninitialized: x.shape)
    let cpg = c / groups
    Profiler.measure("groupnorm") {
        // Parallel over (sample, group) pairs: each is a contiguous slab.
        Parallel.forEach(b * groups) { r in
            for i in r {
                let n = i / groups, g = i % groups
                let off = (n * c + g * cpg) * hw
                pv_group_norm(
                    x.data + off, y.data + off, cpg, hw, 1, weight.data + g * cpg, bias.data + g * cpg,
                    eps, silu ? 1 : 0)
            }
        }
    }
    if let tape = Tape.active(x) {
        tape.record(y, "∂groupnorm") { [unowned tape] gy in
            tape.accumulate(x.storage.id, groupNormBackward(x, gy, groups: groups, weight: weight, bias: bias, eps: eps, silu: silu))
        }
    }
    return y
}

/// VJP of `groupNorm` with respect to x (statistics recomputed from x).
public func groupNormBackward(
    _ x: Tensor, _ gy: Tensor, groups: Int, weight: Tensor, bias: Tensor, eps: Float,
    silu: Bool
) -> Tensor {
    let b = x.dim(0), c = x.dim(1), hw = x.count / (b * c), cpg = c / groups
    let gx = Tensor(uninitialized: x.shape)
    Parallel.forEach(b * groups) { r in
        for i in r {
            let n = i / groups, g = i % groups
            let off = (n * c + g * cpg) * hw
            pv_group_norm_backward(
                x.data + off, gy.data + off, gx.data + off, cpg, hw, 1, weight.data + g * cpg,
                bias.data + g * cpg, eps, silu ? 1 : 0)
        }
    }
    return gx
}

/// Layer normalisation over the last dimension of x [..., D].
public func layerNorm(_ x: Tensor, weight: Tensor, bias: Tensor, eps: Float) -> Tensor {
    let d = x.dim(-1), rows = x.count / d
    let y = Tensor(uninitialized: x.shape)
    Profiler.measure("layernorm") {
        Parallel.forEach(rows, grain: max(1, 16384 / d)) { r in
            pv_layer_norm(
                x.data + r.lowerBound * d, y.data + r.lowerBound * d, r.count, d, weight.data, bias.data,
                eps)
        }
    }
    if let tape = Tape.active(x) {
        tape.record(y, "∂layernorm") { [unowned tape] gy in tape.accumulate(x.storage.id, layerNormBackward(x, gy, weight: weight, eps: eps)) }
    }
    return y
}

/// VJP of `layerNorm` with respect to x (statistics recomputed from x).
public func layerNormBackward(_ x: Tensor, _ gy: Tensor, weight: Tensor, eps: Float) -> Tensor {
    let d = x.dim(-1), rows = x.count / d
    let gx = Tensor(uninitialized: x.shape)
    Parallel.forEach(rows, grain: max(1, 16384 / d)) { r in
        pv_layer_norm_backward(
            x.data + r.lowerBound * d, gy.data + r.lowerBound * d, gx.data + r.lowerBound * d,
            r.count, d, weight.data, eps)
    }
    return gx
}
