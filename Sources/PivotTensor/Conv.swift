import CPivotKernels

/// 2-D convolution (PyTorch's `nn.Conv2d`, groups = 1, dilation = 1) as im2col + sgemm.
/// - x: [B, C, H, W]; weight: [O, C, kh, kw]; bias: [O] or nil. Returns [B, O, Ho, Wo].
/// The im2col buffer is built a band of output rows at a time so it stays within `maxColumnFloats`.
public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0) -> Tensor {
    let (b, c, h, w) = (x.dim(0), x.dim(1), x.dim(2), x.dim(3))
    let (o, kh, kw) = (weight.dim(0), weight.dim(2), weight.dim(3))
    precondition(weight.dim(1) == c, "conv2d: input channels \(c) vs weight \(weight.shape)")
    let ho = (h + 2 * padding - kh) / stride + 1, wo = (w + 2 * padding - kw) / stride + 1
    let y = Tensor(uninitialized: [b, o, ho, wo])
    let hwOut = ho * wo, ckk = c * kh * kw
    let pointwise = kh == 1 && kw == 1 && stride == 1 && padding == 0
    let bandRows = pointwise ? ho : max(1, min(ho, convColumnBudget / max(ckk * wo, 1)))
    let col = pointwise ? nil : Tensor(uninitialized: [ckk * bandRows * wo])
    for n in 0..<b {
        let xn = x.data + n * c * h * w
        let yn = y.data + n * o * hwOut
        var row0 = 0
        while row0 < ho {
            let row1 = min(ho, row0 + bandRows)
            let cols = (row1 - row0) * wo
            let src: UnsafeMutablePointer<Float>
            if let col {
                Profiler.measure("im2col") {
                Parallel.forEach(c, grain: max(1, 65536 / max(cols * kh * kw, 1))) { r in
                    pv_im2col(xn, col.data, c, h, w, kh, kw, stride, padding, wo, row0, row1,
                              r.lowerBound, r.upperBound)
                }
                }
                src = col.data
            } else {
                src = xn
            }
            let dst = yn + row0 * wo
            if let bias {
                for oc in 0..<o { (dst + oc * hwOut).update(repeating: bias.data[oc], count: cols) }
            }
            BLAS.gemm(m: o, n: cols, k: ckk, a: weight.data, lda: ckk, b: src, ldb: cols,
                      beta: bias == nil ? 0 : 1, c: dst, ldc: hwOut)
            row0 = row1
        }
    }
    return y
}

/// Floats allowed in one im2col band (32 MiB).
public let convColumnBudget = 8 << 20

/// Nearest-neighbour ×2 upsampling of x [B, C, H, W] → [B, C, 2H, 2W].
public func upsampleNearest2x(_ x: Tensor) -> Tensor {
    Profiler.measure("upsample") {
    let (b, c, h, w) = (x.dim(0), x.dim(1), x.dim(2), x.dim(3))
    let y = Tensor(uninitialized: [b, c, 2 * h, 2 * w])
    Parallel.forEach(b * c) { r in
        for plane in r {
            let s = x.data + plane * h * w, d = y.data + plane * 4 * h * w
            for i in 0..<h {
                let row = d + 2 * i * 2 * w
                for j in 0..<w { let v = s[i * w + j]; row[2 * j] = v; row[2 * j + 1] = v }
                (row + 2 * w).update(from: row, count: 2 * w)
            }
        }
    }
    return y
}
}
