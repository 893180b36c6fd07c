import CPivotKernels

/// Group normalisation of x [B, C, H, W] (or [B, C, N]) with per-channel affine, optionally fused with SiLU.
public func groupNorm(_ x: Tensor, groups: Int, weight: Tensor, bias: Tensor, eps: Float,
                      silu: Bool = false) -> Tensor {
    let b = x.dim(0), c = x.dim(1)
    let hw = x.count / (b * c)
    let y = Tensor(uninitialized: x.shape)
    let cpg = c / groups
    // Parallel over (sample, group) pairs: each is a contiguous slab.
    Profiler.measure("groupnorm") {
    Parallel.forEach(b * groups) { r in
        for i in r {
            let n = i / groups, g = i % groups
            let off = (n * c + g * cpg) * hw
            pv_group_norm(x.data + off, y.data + off, cpg, hw, 1, weight.data + g * cpg, bias.data + g * cpg,
                          eps, silu ? 1 : 0, nil, nil)
        }
    }
    }
    return y
}

/// Layer normalisation over the last dimension of x [..., D].
public func layerNorm(_ x: Tensor, weight: Tensor, bias: Tensor, eps: Float) -> Tensor {
    let d = x.dim(-1), rows = x.count / d
    let y = Tensor(uninitialized: x.shape)
    Profiler.measure("layernorm") {
    Parallel.forEach(rows, grain: max(1, 16384 / d)) { r in
        pv_layer_norm(x.data + r.lowerBound * d, y.data + r.lowerBound * d, r.count, d, weight.data, bias.data,
                      eps, nil, nil)
    }
    }
    return y
}
