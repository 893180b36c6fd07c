import CPivotKernels

/// y = x · Wᵀ + b over the last dimension (PyTorch's `nn.Linear`).
/// - x: [..., K]; weight: [N, K]; bias: [N] or nil. Returns [..., N].
/// In `bf16` precision x is rounded to bf16 per call and the weight once (`bf16Weights`).
public func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
    let k = weight.dim(1), n = weight.dim(0)
    precondition(x.dim(-1) == k, "linear: input width \(x.dim(-1)) vs weight \(weight.shape)")
    let m = x.count / k
    let y = Tensor(uninitialized: Array(x.shape.dropLast()) + [n])  // [..., N]
    let precision = Precision.current
    Profiler.measure("gemm.linear") {
        switch precision {
        case .bf16:
            let xb = BF16Buffer(x)  // [M, K]
            let wb = weight.bf16Weights  // [N, K]
            BLAS.gemmBF16(
                transB: true, m: m, n: n, k: k, a: xb.pointer, lda: k, b: wb.pointer, ldb: k,
                c: y.data, ldc: n, bias: bias.map { UnsafePointer($0.data) })
            withExtendedLifetime((xb, bias)) {}
        case .fp32:
            if let bias {
                for r in 0..<m { (y.data + r * n).update(from: bias.data, count: n) }
            }
            BLAS.gemm(
                transB: true, m: m, n: n, k: k, a: x.data, lda: k, b: weight.data, ldb: k,
                beta: bias == nil ? 0 : 1, c: y.data, ldc: n)
        }
    }
    if let tape = Tape.active(x) {
        let xid = x.storage.id
        tape.record(y, "∂linear") { [unowned tape] gy in
            tape.accumulate(xid, Precision.with(precision) { linearBackward(gy, weight: weight) })
        }
    }
    return y
}

/// VJP of `linear` with respect to its input: gx [..., K] = gy [..., N] · W [N, K].
public func linearBackward(_ gy: Tensor, weight: Tensor) -> Tensor {
    let k = weight.dim(1), n = weight.dim(0), m = gy.count / n
    let gx = Tensor(uninitialized: Array(gy.shape.dropLast()) + [k])  // [..., K]
    switch Precision.current {
    case .bf16:
        let gb = BF16Buffer(gy)  // [M, N]
        BLAS.gemmBF16(
            m: m, n: k, k: n, a: gb.pointer, lda: n, b: weight.bf16Weights.pointer, ldb: k,
            c: gx.data, ldc: k)
        withExtendedLifetime(gb) {}
    case .fp32:
        BLAS.gemm(m: m, n: k, k: n, a: gy.data, lda: n, b: weight.data, ldb: k, c: gx.data, ldc: k)
    }
    return gx
}
