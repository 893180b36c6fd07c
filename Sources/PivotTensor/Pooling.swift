/// 2-D max pooling (PyTorch's `nn.MaxPool2d(kernel, stride, padding=0, dilation=1, ceil_mode)`), forward only.
/// - x: [B, C, H, W]. Returns [B, C, Ho, Wo] with Ho = ⌊(H − kernel) / stride⌋ + 1, or with `ceilMode`
///   ⌈(H − kernel) / stride⌉ + 1 less one when the last window would start past the input (PyTorch's rule);
///   windows that run past the bottom or right edge take the maximum of the pixels inside. NaN propagates, as in
///   PyTorch.
public func maxPool2d(_ x: Tensor, kernel: Int, stride: Int, ceilMode: Bool = false) -> Tensor {
    precondition(x.rank == 4 && kernel > 0 && stride > 0, "maxPool2d: needs [B, C, H, W], kernel and stride > 0")
    let (b, c, h, w) = (x.dim(0), x.dim(1), x.dim(2), x.dim(3))
    let ho = maxPoolOutputSize(h, kernel: kernel, stride: stride, ceilMode: ceilMode)
    let wo = maxPoolOutputSize(w, kernel: kernel, stride: stride, ceilMode: ceilMode)
    precondition(ho >= 1 && wo >= 1, "maxPool2d: \(h)x\(w) is too small for the \(kernel)x\(kernel) window")
    let y = Tensor(uninitialized: [b, c, ho, wo])
    let (src, dst) = (x.data, y.data)
    Parallel.forEach(b * c, grain: max(1, (1 << 14) / max(1, ho * wo * kernel * kernel))) { planes in
        for plane in planes {
            let s = src + plane * h * w
            let d = dst + plane * ho * wo
            for oy in 0..<ho {
                let y0 = oy * stride
                let y1 = min(y0 + kernel, h)
                for ox in 0..<wo {
                    let x0 = ox * stride
                    let x1 = min(x0 + kernel, w)
                    var m = -Float.infinity
                    for iy in y0..<y1 {
                        for ix in x0..<x1 {
                            let v = s[iy * w + ix]
                            if v > m || v.isNaN { m = v }
                            if m.isNaN { break }
                        }
                    }
                    d[oy * wo + ox] = m
                }
            }
        }
    }
    return y
}

/// The output length of `maxPool2d` along an axis of `size` elements (padding 0, dilation 1), as PyTorch's
/// `pooling_output_shape` (division rounding down; with `ceilMode` an input shorter than the window still
/// gives one output when it holds more than `kernel − stride` elements). Below 1 means too small.
public func maxPoolOutputSize(_ size: Int, kernel: Int, stride: Int, ceilMode: Bool) -> Int {
    let numerator = size - kernel + (ceilMode ? stride - 1 : 0)
    let floorDiv = numerator >= 0 ? numerator / stride : -((-numerator + stride - 1) / stride)
    var out = floorDiv + 1
    if ceilMode && (out - 1) * stride >= size { out -= 1 }
    return out
}
