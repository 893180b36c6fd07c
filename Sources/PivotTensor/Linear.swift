import CPivotKernels

/// y = x · Wᵀ + b over the last dimension (PyTorch's `nn.Linear`).
/// - x: [..., K]; weight: [N, K]; bias: [N] or nil. Returns [..., N].
public func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
    let k = weight.dim(1), n = weight.dim(0)
    precondition(x.dim(-1) == k, "linear: input width \(x.dim(-1)) vs weight \(weight.shape)")
    let m = x.count / k
    let y = Tensor(uninitialized: Array(x.shape.dropLast()) + [n])
    if let bias {
        for r in 0..<m { (y.data + r * n).update(from: bias.data, count: n) }
    }
    Profiler.measure("gemm.linear") {
        BLAS.gemm(transB: true, m: m, n: n, k: k, a: x.data, lda: k, b: weight.data, ldb: k,
                  beta: bias == nil ? 0 : 1, c: y.data, ldc: n)
    }
    if let tape = Tape.active(x) {
        let xid = x.storage.id
        tape.record(y, "∂linear") { [unowned tape] gy in tape.accumulate(xid, linearBackward(gy, weight: weight)) }
    }
    return y
}

/// VJP of `linear` with respect to its input: gx [..., K] = gy [..., N] · W [N, K].
public func linearBackward(_ gy: Tensor, weight: Tensor) -> Tensor {
    let k = weight.dim(1), n = weight.dim(0), m = gy.count / n
    let gx = Tensor(uninitialized: Array(gy.shape.dropLast()) + [k])
    BLAS.gemm(m: m, n: k, k: n, a: gy.data, lda: n, b: weight.data, ldb: k, c: gx.data, ldc: k)
    return gx
}
