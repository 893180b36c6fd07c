import CPivotDNNL
import CPivotKernels

/// 2-D convolution (PyTorch's `nn.Conv2d`, groups = 1, dilation = 1).
/// - x: [B, C, H, W]; weight: [O, C, kh, kw]; bias: [O] or nil. Returns [B, O, Ho, Wo].
/// 3×3 stride-1 padding-1 convolutions use Winograd (`conv2dWinograd`) on images of at least
/// `winogradMinPixels` (fp32) or `winogradBF16MinPixels` (bf16); everything else im2col + sgemm.
public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0) -> Tensor {
    let y: Tensor
    if isWinogradShaped(weight, stride: stride, padding: padding) && x.dim(2) * x.dim(3) >= winogradPixels {
        y = conv2dWinograd(x, weight: weight, bias: bias)
    } else {
        y = conv2dIm2col(x, weight: weight, bias: bias, stride: stride, padding: padding)
    }
    if let tape = Tape.active(x) {
        let (xid, xshape) = (x.storage.id, x.shape)
        let precision = Precision.current
        tape.record(y, "∂conv") { [unowned tape] gy in
            tape.accumulate(
                xid,
                Precision.with(precision) {
                    conv2dBackward(gy, weight: weight, inputShape: xshape, stride: stride, padding: padding)
                })
        }
    }
    return y
}

/// VJP of `conv2d` with respect to its input (the transposed convolution of gy). A 1×1 convolution's is
/// Wᵀ·gy; a 3×3 stride-1 "same" one on a large image is the 3×3 convolution of gy with the flipped,
/// transposed kernel, run by Winograd with that kernel transformed straight from the weights; everything else
/// is Wᵀ·gy followed by col2im. No flipped copy of the weights is made.
public func conv2dBackward(_ gy: Tensor, weight: Tensor, inputShape: [Int], stride: Int, padding: Int) -> Tensor {
    let (b, c, h, w) = (inputShape[0], inputShape[1], inputShape[2], inputShape[3])
    let (o, kh, kw) = (weight.dim(0), weight.dim(2), weight.dim(3))
    let ho = gy.dim(2), wo = gy.dim(3), hwOut = ho * wo, ckk = c * kh * kw
    if isWinogradShaped(weight, stride: stride, padding: padding) && h * w >= winogradPixels {
        return winogradConvolution(gy, u: winogradWeights(weight, flipped: true, pixels: h * w), outChannels: c, bias: nil)
    }
    let bf16 = Precision.current == .bf16
    if kh == 1 && kw == 1 && stride == 1 && padding == 0 {
        let gx = Tensor(uninitialized: inputShape)
        if bf16 {
            let wb = weight.bf16Weights, gb = BF16Buffer(gy)  // [O, C], [B, O, H·W]
            for n in 0..<b {
                BLAS.gemmBF16(
                    transA: true, m: c, n: hwOut, k: o, a: wb.pointer, lda: c, b: gb.pointer + n * o * hwOut,
                    ldb: hwOut, c: gx.data + n * c * h * w, ldc: h * w)
            }
            withExtendedLifetime(gb) {}
            return gx
        }
        for n in 0..<b {
            BLAS.gemm(
                transA: true, m: c, n: hwOut, k: o, a: weight.data, lda: c, b: gy.data + n * o * hwOut, ldb: hwOut,
                c: gx.data + n * c * h * w, ldc: h * w)
        }
        return gx
    }
    let gx = Tensor(zeros: inputShape)
    let bandRows = max(1, min(ho, convColumnBudget / max(ckk * wo, 1)))
    let col = Tensor(uninitialized: [ckk * bandRows * wo])
    for n in 0..<b {
        let gyn = gy.data + n * o * hwOut, gxn = gx.data + n * c * h * w
        var row0 = 0
        while row0 < ho {
            let row1 = min(ho, row0 + bandRows), cols = (row1 - row0) * wo
            if bf16 {
                let gb = BF16Buffer(count: o * cols)  // [O, cols]
                pv_f32_to_bf16_2d(gyn + row0 * wo, hwOut, gb.pointer, cols, o, cols)
                BLAS.gemmBF16(
                    transA: true, m: ckk, n: cols, k: o, a: weight.bf16Weights.pointer, lda: ckk, b: gb.pointer,
                    ldb: cols, c: col.data, ldc: cols)
                withExtendedLifetime(gb) {}
            } else {
                BLAS.gemm(
                    transA: true, m: ckk, n: cols, k: o, a: weight.data, lda: ckk, b: gyn + row0 * wo, ldb: hwOut,
                    c: col.data, ldc: cols)
            }
            Parallel.forEach(c) { r in
                pv_col2im(col.data, gxn, c, h, w, kh, kw, stride, padding, wo, row0, row1, r.lowerBound, r.upperBound)
            }
            row0 = row1
        }
    }
    withExtendedLifetime(col) {}
    return gx
}

/// In fp32, images with fewer pixels than this use im2col for 3×3 convolutions: fp32 weights are transformed
/// on every call, which below 32² costs more than the cheaper products save.
public let winogradMinPixels = 1024

/// In bf16, every 3×3 stride-1 padding-1 convolution uses Winograd F(2×2, 3×3) (a threshold of one pixel):
/// its transformed weights are made once per weight and kept, so nothing but the input and output transforms
/// offsets the 2.25× fewer products, and its kernel then needs no other bf16 form (`WeightRelease` keeps only
/// the transform). Measured at SD 1.5 size (Zen 4, 2 threads): Winograd at 16² and 8² as well as from 32²
/// took the bf16 UNet from 2.05 to 1.82 s.
public let winogradBF16MinPixels = 1

/// The Winograd threshold of the current precision.
var winogradPixels: Int { Precision.current == .bf16 ? winogradBF16MinPixels : winogradMinPixels }

/// Whether a convolution with this kernel [O, C, kh, kw], stride and padding is of the kind Winograd runs
/// (3×3, stride 1, padding 1): in bf16 every such convolution does, whatever the image size.
public func isWinogradShaped(_ weight: Tensor, stride: Int, padding: Int) -> Bool {
    weight.rank == 4 && weight.dim(2) == 3 && weight.dim(3) == 3 && stride == 1 && padding == 1
}

/// Convolution as im2col + sgemm. The im2col buffer is built a band of output rows at a time so it stays
/// within `convColumnBudget` floats.
public func conv2dIm2col(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0) -> Tensor {
    let (b, c, h, w) = (x.dim(0), x.dim(1), x.dim(2), x.dim(3))
    let (o, kh, kw) = (weight.dim(0), weight.dim(2), weight.dim(3))
    precondition(weight.dim(1) == c, "conv2d: input channels \(c) vs weight \(weight.shape)")
    let ho = (h + 2 * padding - kh) / stride + 1, wo = (w + 2 * padding - kw) / stride + 1
    let y = Tensor(uninitialized: [b, o, ho, wo])
    let hwOut = ho * wo, ckk = c * kh * kw
    let pointwise = kh == 1 && kw == 1 && stride == 1 && padding == 0
    let bf16 = Precision.current == .bf16
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
                        pv_im2col(
                            xn, col.data, c, h, w, kh, kw, stride, padding, wo, row0, row1,
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
            Profiler.measure(pointwise ? "gemm.conv1x1" : "gemm.conv") {
                if bf16 {
                    let sb = BF16Buffer(src, count: ckk * cols)  // [C·k·k, cols]
                    BLAS.gemmBF16(
                        m: o, n: cols, k: ckk, a: weight.bf16Weights.pointer, lda: ckk, b: sb.pointer, ldb: cols,
                        beta: bias == nil ? 0 : 1, c: dst, ldc: hwOut)
                    withExtendedLifetime(sb) {}
                } else {
                    BLAS.gemm(
                        m: o, n: cols, k: ckk, a: weight.data, lda: ckk, b: src, ldb: cols,
                        beta: bias == nil ? 0 : 1, c: dst, ldc: hwOut)
                }
            }
            row0 = row1
        }
    }
    withExtendedLifetime(col) {}  // the buffer is used through raw pointers until here
    return y
}

/// Floats allowed in one im2col band (32 MiB).
public let convColumnBudget = 8 << 20

/// 3×3 convolution, stride 1, padding 1, by Winograd (Lavin & Gray 2016): F(4×4, 3×3) in fp32 on images of
/// at least `winograd4MinPixels` (2.25 multiplications per output against im2col's 9), F(2×2, 3×3) on smaller
/// ones and in bf16 (4 per output; F(4×4)'s larger transform coefficients would amplify bf16 rounding). In fp32
/// weights are transformed on each call (no extra resident memory), in bf16 once per weight
/// (`winogradWeights`); input tiles are processed a band of tile rows at a time within `convColumnBudget`.
/// Differs from direct convolution by rounding only (fp32: relative error ~1e-6).
public func conv2dWinograd(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
    let c = x.dim(1), o = weight.dim(0)
    precondition(weight.shape == [o, c, 3, 3], "conv2dWinograd: input channels \(c) vs weight \(weight.shape)")
    return winogradConvolution(x, u: winogradWeights(weight, flipped: false, pixels: x.dim(2) * x.dim(3)), outChannels: o, bias: bias)
}

/// fp32 3×3 convolutions on images of at least this many pixels use F(4×4, 3×3), smaller ones F(2×2, 3×3):
/// F(4×4)'s weight transform writes 36 planes per call (2.25× F(2×2)'s), which at 32² costs as much as its
/// cheaper products save (measured on SD 1.5's 640-channel convolutions), while at 64² it wins by a third.
public let winograd4MinPixels = 4096

/// Transformed Winograd weights: fp32 [planes, O, C] (made per call) with their output tile side (4 for
/// F(4×4, 3×3), 2 for F(2×2, 3×3)), or bf16 F(2×2, 3×3) [16, O, C] (made once per weight and kept). With
/// `flipped`, the bf16 planes are the forward kernel's, read as the flipped, transposed kernel's: plane k of
/// that is plane `winogradFlippedPlane[k]` of the forward's, transposed (see `pv_winograd_weights_flipped`),
/// so the input gradient needs no second copy.
enum WinogradWeights {
    case fp32(Tensor, tile: Int)
    case bf16(BF16Buffer, flipped: Bool)

    /// Output tile side: 4 for F(4×4, 3×3), 2 for F(2×2, 3×3).
    var tile: Int {
        switch self {
        case .fp32(_, let tile): return tile
        case .bf16: return 2
        }
    }

    /// Transform planes: (tile + 2)².
    var planes: Int { (tile + 2) * (tile + 2) }
}

/// The Winograd transform of a 3×3 kernel [O, C, 3, 3]: [planes, O, C], or with `flipped` that of its
/// flipped, transposed kernel [planes, C, O] (for the input gradient), for a convolution over `pixels`
/// pixels. fp32 transforms are made per call (no resident memory); bf16 ones (F(2×2)) once per weight, kept
/// with it (0.89× the fp32 kernel's bytes), and shared by the forward and the input gradient.
func winogradWeights(_ weight: Tensor, flipped: Bool, pixels: Int) -> WinogradWeights {
    let o = weight.dim(0), c = weight.dim(1), rows = flipped ? c : o
    if Precision.current == .bf16 { return .bf16(weight.winogradBF16, flipped: flipped) }
    let tile = pixels >= winograd4MinPixels ? 4 : 2
    let u = Profiler.measure("winograd.u") { () -> Tensor in
        let u = Tensor(uninitialized: [(tile + 2) * (tile + 2), rows, flipped ? o : c])
        Parallel.forEach(rows) { r in
            switch (tile, flipped) {
            case (4, true): pv_winograd4_weights_flipped(weight.data, u.data, o, c, r.lowerBound, r.upperBound)
            case (4, false): pv_winograd4_weights(weight.data, u.data, o, c, r.lowerBound, r.upperBound)
            case (_, true): pv_winograd_weights_flipped(weight.data, u.data, o, c, r.lowerBound, r.upperBound)
            case (_, false): pv_winograd_weights(weight.data, u.data, o, c, r.lowerBound, r.upperBound)
            }
        }
        return u
    }
    return .fp32(u, tile: tile)
}

/// Plane k of the flipped kernel's F(2×2, 3×3) transform is plane `winogradFlippedPlane[k]` of the
/// original's, transposed: flipping swaps tile rows and columns 0 and 3 (G J = P G; `kernels.c`).
let winogradFlippedPlane: [Int] = (0..<16).map { k in
    func swap03(_ i: Int) -> Int { i == 0 ? 3 : i == 3 ? 0 : i }
    return swap03(k / 4) * 4 + swap03(k % 4)
}

/// A 3×3 kernel's F(2×2, 3×3) transform in bf16, [16, O, C]: what bf16 convolutions read, forward and
/// input gradient. It can give the kernel back (`FP32Restoring`): G has the left inverse
/// L = [[1,0,0,0], [0,1,−1,0], [0,0,0,1]], so g = L·U·Lᵀ, exact but for U's bf16 rounding (the restored
/// kernel's error is about twice bf16's).
final class WinogradBF16Kernel: FP32Restoring, @unchecked Sendable {
    let u: BF16Buffer  // [16, O, C]
    let outChannels: Int, inChannels: Int

    /// The transform of `weight` [O, C, 3, 3].
    init(_ weight: Tensor) {
        let o = weight.dim(0), c = weight.dim(1)
        let t = Tensor(uninitialized: [16, o, c])
        Parallel.forEach(o) { r in pv_winograd_weights(weight.data, t.data, o, c, r.lowerBound, r.upperBound) }
        u = BF16Buffer(t)
        (outChannels, inChannels) = (o, c)
    }

    func restore(into values: UnsafeMutablePointer<Float>, count: Int) {
        let plane = outChannels * inChannels
        precondition(count == plane * 9, "WinogradBF16Kernel.restore: \(count) values for [\(outChannels), \(inChannels), 3, 3]")
        let u = u.pointer
        Parallel.forEach(plane) { r in
            for j in r {
                // t[a][b] = U[4a + b] of this (o, c) pair; g = L·t·Lᵀ
                @inline(__always) func t(_ a: Int, _ b: Int) -> Float {
                    Float(bitPattern: UInt32(u[(4 * a + b) * plane + j]) << 16)
                }
                @inline(__always) func lt(_ row: Int, _ b: Int) -> Float {  // (L·t)[row][b]
                    row == 0 ? t(0, b) : row == 1 ? t(1, b) - t(2, b) : t(3, b)
                }
                let g = values + j * 9
                for row in 0..<3 {
                    g[row * 3] = lt(row, 0)
                    g[row * 3 + 1] = lt(row, 1) - lt(row, 2)
                    g[row * 3 + 2] = lt(row, 3)
                }
            }
        }
    }
}

extension Tensor {
    /// This 3×3 kernel's F(2×2, 3×3) transform [16, O, C] in bf16, made once and kept with the weight.
    var winogradBF16: BF16Buffer {
        storage.derived("winograd.bf16") { WinogradBF16Kernel(self) }.u
    }

    /// For a 3×3 kernel [O, C, 3, 3] that only stride-1, padding-1 convolutions use: releases its fp32 values
    /// (`TensorStorage.releaseFP32`) keeping only its bf16 Winograd transform, the one form a bf16
    /// convolution of it reads (forward and input gradient), 16/9 of a bf16 copy's size instead of a bf16
    /// copy and the transform side by side. Returns the bytes released.
    @discardableResult
    public func releaseFP32KeepingWinogradBF16(minimumBytes: Int = BufferPool.shared.largeBytes) -> Int {
        precondition(rank == 4 && dim(2) == 3 && dim(3) == 3, "releaseFP32KeepingWinogradBF16: kernel \(shape)")
        return storage.releaseFP32(minimumBytes: minimumBytes, keeping: "winograd.bf16") { WinogradBF16Kernel(self) }
    }
}

/// The Winograd convolution of x [B, C, H, W] with transformed weights u [planes, O, C]. With bf16 weights the
/// transformed input tiles are rounded to bf16 and the products run on oneDNN.
func winogradConvolution(_ x: Tensor, u: WinogradWeights, outChannels o: Int, bias: Tensor?) -> Tensor {
    let (b, c, h, w) = (x.dim(0), x.dim(1), x.dim(2), x.dim(3))
    let y = Tensor(uninitialized: [b, o, h, w])
    let flops0 = BLAS.flops
    let tile = u.tile, planes = u.planes
    let th = (h + tile - 1) / tile, tw = (w + tile - 1) / tile
    let rowsPerBand = max(1, min(th, convColumnBudget / (planes * max(c, o) * tw)))
    let v = Tensor(uninitialized: [planes * c * rowsPerBand * tw])  // [planes, C, P]
    let m = Tensor(uninitialized: [planes * o * rowsPerBand * tw])  // [planes, O, P]
    for n in 0..<b {
        let xn = x.data + n * c * h * w, yn = y.data + n * o * h * w
        var ty0 = 0
        while ty0 < th {
            let ty1 = min(th, ty0 + rowsPerBand), p = (ty1 - ty0) * tw
            Profiler.measure("winograd.in") {
                Parallel.forEach(c) { r in
                    if tile == 4 {
                        pv_winograd4_input(xn, v.data, c, h, w, ty0, ty1, r.lowerBound, r.upperBound)
                    } else {
                        pv_winograd_input(xn, v.data, c, h, w, ty0, ty1, r.lowerBound, r.upperBound)
                    }
                }
            }
            Profiler.measure("winograd.gemm") {
                switch u {
                case .fp32(let u, _):
                    BLAS.singleThreaded {
                        Parallel.forEach(planes) { ks in
                            for k in ks {
                                BLAS.gemm(
                                    m: o, n: p, k: c, a: u.data + k * o * c, lda: c, b: v.data + k * c * p, ldb: p,
                                    c: m.data + k * o * p, ldc: p)
                            }
                        }
                    }
                case .bf16(let ub, let flipped):
                    let vb = BF16Buffer(v.data, count: planes * c * p)  // [planes, C, P]
                    Parallel.forEach(planes) { ks in
                        for k in ks {
                            // forward: U[k] [O, C]; flipped: U[k'] is [C, O] (this call's O and C), read transposed
                            let a = ub.pointer + (flipped ? winogradFlippedPlane[k] : k) * o * c
                            BLAS.gemmBF16(
                                transA: flipped, m: o, n: p, k: c, a: a, lda: flipped ? o : c,
                                b: vb.pointer + k * c * p, ldb: p, c: m.data + k * o * p, ldc: p, singleThread: true)
                        }
                    }
                    withExtendedLifetime(vb) {}
                }
            }
            Profiler.measure("winograd.out") {
                Parallel.forEach(o) { r in
                    if tile == 4 {
                        pv_winograd4_output(m.data, yn, bias?.data, o, h, w, ty0, ty1, r.lowerBound, r.upperBound)
                    } else {
                        pv_winograd_output(m.data, yn, bias?.data, o, h, w, ty0, ty1, r.lowerBound, r.upperBound)
                    }
                }
            }
            ty0 = ty1
        }
    }
    withExtendedLifetime((u, v, m)) {}  // used through raw pointers until here
    BLAS.flops = flops0 &+ 2 &* b &* o &* c &* 9 &* h &* w  // count the direct convolution's work
    return y
}

/// Nearest-neighbour ×2 upsampling of x [B, C, H, W] → [B, C, 2H, 2W].
public func upsampleNearest2x(_ x: Tensor) -> Tensor {
    let y = upsampleNearest2xForward(x)
    if let tape = Tape.active(x) {
        let xid = x.storage.id
        tape.record(y, "∂upsample") { [unowned tape] gy in tape.accumulate(xid, upsampleNearest2xBackward(gy)) }
    }
    return y
}

/// VJP of `upsampleNearest2x`: each input pixel receives the sum of its 2×2 block.
public func upsampleNearest2xBackward(_ gy: Tensor) -> Tensor {
    let (b, c, h2, w2) = (gy.dim(0), gy.dim(1), gy.dim(2), gy.dim(3))
    let h = h2 / 2, w = w2 / 2
    let gx = Tensor(uninitialized: [b, c, h, w])
    Parallel.forEach(b * c) { r in
        for plane in r {
            let s = gy.data + plane * h2 * w2, d = gx.data + plane * h * w
            for i in 0..<h {
                let r0 = s + 2 * i * w2, r1 = r0 + w2
                for j in 0..<w { d[i * w + j] = r0[2 * j] + r0[2 * j + 1] + r1[2 * j] + r1[2 * j + 1] }
            }
        }
    }
    return gx
}

func upsampleNearest2xForward(_ x: Tensor) -> Tensor {
    Profiler.measure("upsample") {
        let (b, c, h, w) = (x.dim(0), x.dim(1), x.dim(2), x.dim(3))
        let y = Tensor(uninitialized: [b, c, 2 * h, 2 * w])
        Parallel.forEach(b * c) { r in
            for plane in r {
                let s = x.data + plane * h * w, d = y.data + plane * 4 * h * w
                for i in 0..<h {
                    let row = d + 2 * i * 2 * w
                    for j in 0..<w {
                        let v = s[i * w + j]
                        row[2 * j] = v
                        row[2 * j + 1] = v
                    }
                    (row + 2 * w).update(from: row, count: 2 * w)
                }
            }
        }
        return y
    }
}
