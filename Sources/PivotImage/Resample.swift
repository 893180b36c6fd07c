// Resizing with Pillow's BICUBIC filter (`Image.resize(size, Image.Resampling.BICUBIC)`, Pillow's default
// for RGB images, which the reference code uses). The filter is Keys' cubic with a = -0.5 and support 2,
// widened by the downscale factor (anti-aliasing); weights are normalised per output pixel. Like Pillow, the
// resize runs as two passes, each skipped when that dimension does not change: normally horizontal (over the
// rows the vertical pass needs) then vertical; vertical first when the height shrinks by more than twice as
// many pixels as the width does (Pillow 13, python-pillow/Pillow#9549; older Pillow always goes horizontal
// first, so such resizes can differ from it by a level or two). Square-to-square resizes, as in
// `preprocess(_:side:crop:)`, never go vertical first, so they match every Pillow version.
//
// 8-bit images take Pillow's 8-bit path exactly: weights in fixed point with 22 fractional bits, rounding
// offset, clipping to 0...255 after each pass; the result is bit-identical to Pillow. Other images take
// Pillow's float path (double weights and sums) with clamping to 0...1 after each pass.

private let precisionBits = 32 - 8 - 2

/// Pillow's bicubic kernel, with its exact operation order.
@inline(__always)
private func bicubic(_ input: Double) -> Double {
    let a = -0.5
    let x = input < 0 ? -input : input
    if x < 1 { return ((a + 2.0) * x - (a + 3.0)) * x * x + 1 }
    if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
    return 0
}

/// Per-output-pixel source spans and normalised weights (Pillow's `precompute_coeffs`).
private struct Coefficients {
    /// Weights per output pixel, `kernelSize` apart; entries past `count[i]` are zero.
    var weights: [Double]
    /// First source index per output pixel.
    var first: [Int]
    /// Number of source pixels per output pixel.
    var count: [Int]
    let kernelSize: Int

    init(inSize: Int, outSize: Int) {
        let scale = Double(Float(inSize)) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = 2.0 * filterScale
        kernelSize = Int(support.rounded(.up)) * 2 + 1
        weights = [Double](repeating: 0, count: outSize * kernelSize)
        first = [Int](repeating: 0, count: outSize)
        count = [Int](repeating: 0, count: outSize)
        for xx in 0..<outSize {
            let center = (Double(xx) + 0.5) * scale
            let ss = 1.0 / filterScale
            let xmin = max(Int(center - support + 0.5), 0)
            let xmax = min(Int(center + support + 0.5), inSize) - xmin
            var total = 0.0
            let base = xx * kernelSize
            for x in 0..<max(xmax, 0) {
                let w = bicubic((Double(x + xmin) - center + 0.5) * ss)
                weights[base + x] = w
                total += w
            }
            if total != 0 {
                for x in 0..<max(xmax, 0) { weights[base + x] /= total }
            }
            first[xx] = xmin
            count[xx] = max(xmax, 0)
        }
    }

    /// Weights in Pillow's 8-bit fixed point (`normalize_coeffs_8bpc`).
    var fixedPoint: [Int32] {
        weights.map { w in
            let scaled = w * Double(1 << precisionBits)
            return Int32(w < 0 ? -0.5 + scaled : 0.5 + scaled)
        }
    }
}

extension RGBImage {
    /// This image resized to `width` × `height` with Pillow's BICUBIC filter (see the file comment). 8-bit
    /// images stay 8-bit and match Pillow exactly; others come back with `bitDepth` 32.
    public func resized(width outWidth: Int, height outHeight: Int) -> RGBImage {
        precondition(outWidth > 0 && outHeight > 0, "resized: size \(outWidth)x\(outHeight) must be positive")
        if outWidth == width && outHeight == height { return self }
        let horizontal = Coefficients(inSize: width, outSize: outWidth)
        var vertical = Coefficients(inSize: height, outSize: outHeight)
        let needHorizontal = outWidth != width, needVertical = outHeight != height
        let verticalFirst = needHorizontal && outHeight < height && height - outHeight > 2 * (width - outWidth)
        // Rows of the source the vertical pass reads.
        let firstRow = vertical.first[0]
        let lastRow = vertical.first[outHeight - 1] + vertical.count[outHeight - 1]
        if bitDepth == 8 {
            var samples = quantized()
            var w = width, h = height
            if verticalFirst {
                samples = pass8(
                    samples, lineCount: w, lineOffset: 0, inWidth: w, outSize: outHeight,
                    coefficients: vertical, horizontal: false)
                samples = pass8(
                    samples, lineCount: outHeight, lineOffset: 0, inWidth: w, outSize: outWidth,
                    coefficients: horizontal, horizontal: true)
                return RGBImage(width: outWidth, height: outHeight, bytes: samples)
            }
            if needHorizontal {
                samples = pass8(
                    samples, lineCount: lastRow - firstRow, lineOffset: firstRow, inWidth: w,
                    outSize: outWidth, coefficients: horizontal, horizontal: true)
                w = outWidth
                h = lastRow - firstRow
                for i in 0..<outHeight { vertical.first[i] -= firstRow }
            }
            if needVertical {
                samples = pass8(
                    samples, lineCount: w, lineOffset: 0, inWidth: w, outSize: outHeight,
                    coefficients: vertical, horizontal: false)
                h = outHeight
            }
            return RGBImage(width: w, height: h, bytes: samples)
        }
        var samples = pixels
        var w = width, h = height
        if verticalFirst {
            samples = passFloat(
                samples, lineCount: w, lineOffset: 0, inWidth: w, outSize: outHeight,
                coefficients: vertical, horizontal: false)
            samples = passFloat(
                samples, lineCount: outHeight, lineOffset: 0, inWidth: w, outSize: outWidth,
                coefficients: horizontal, horizontal: true)
            return RGBImage(width: outWidth, height: outHeight, pixels: samples, bitDepth: 32)
        }
        if needHorizontal {
            samples = passFloat(
                samples, lineCount: lastRow - firstRow, lineOffset: firstRow, inWidth: w,
                outSize: outWidth, coefficients: horizontal, horizontal: true)
            w = outWidth
            h = lastRow - firstRow
            for i in 0..<outHeight { vertical.first[i] -= firstRow }
        }
        if needVertical {
            samples = passFloat(
                samples, lineCount: w, lineOffset: 0, inWidth: w, outSize: outHeight,
                coefficients: vertical, horizontal: false)
            h = outHeight
        }
        return RGBImage(width: w, height: h, pixels: samples, bitDepth: 32)
    }
}

/// One 8-bit pass. Horizontal: `lineCount` output rows from source rows `lineOffset...`, `outSize` columns.
/// Vertical: `outSize` output rows of `inWidth` (= `lineCount`) columns.
private func pass8(
    _ input: [UInt8], lineCount: Int, lineOffset: Int, inWidth: Int, outSize: Int,
    coefficients: Coefficients, horizontal: Bool
) -> [UInt8] {
    let kernel = coefficients.fixedPoint
    let k = coefficients.kernelSize
    let outWidth = horizontal ? outSize : inWidth
    let outHeight = horizontal ? lineCount : outSize
    var output = [UInt8](repeating: 0, count: outWidth * outHeight * 3)
    let half = Int32(1 << (precisionBits - 1))
    @inline(__always) func clip(_ v: Int32) -> UInt8 {
        let shifted = v >> Int32(precisionBits)
        return shifted < 0 ? 0 : shifted > 255 ? 255 : UInt8(shifted)
    }
    input.withUnsafeBufferPointer { src in
        output.withUnsafeMutableBufferPointer { dst in
            kernel.withUnsafeBufferPointer { kk in
                for yy in 0..<outHeight {
                    for xx in 0..<outWidth {
                        let o = horizontal ? xx : yy
                        let start = coefficients.first[o], n = coefficients.count[o], base = o * k
                        var s0 = half, s1 = half, s2 = half
                        for i in 0..<n {
                            let p = horizontal ? ((yy + lineOffset) * inWidth + start + i) * 3 : ((start + i) * inWidth + xx) * 3
                            let w = kk[base + i]
                            s0 &+= Int32(src[p]) &* w
                            s1 &+= Int32(src[p + 1]) &* w
                            s2 &+= Int32(src[p + 2]) &* w
                        }
                        let d = (yy * outWidth + xx) * 3
                        dst[d] = clip(s0)
                        dst[d + 1] = clip(s1)
                        dst[d + 2] = clip(s2)
                    }
                }
            }
        }
    }
    return output
}

/// One float pass (same geometry as `pass8`), with double sums and clamping to 0...1.
private func passFloat(
    _ input: [Float], lineCount: Int, lineOffset: Int, inWidth: Int, outSize: Int,
    coefficients: Coefficients, horizontal: Bool
) -> [Float] {
    let k = coefficients.kernelSize
    let outWidth = horizontal ? outSize : inWidth
    let outHeight = horizontal ? lineCount : outSize
    var output = [Float](repeating: 0, count: outWidth * outHeight * 3)
    input.withUnsafeBufferPointer { src in
        output.withUnsafeMutableBufferPointer { dst in
            coefficients.weights.withUnsafeBufferPointer { kk in
                for yy in 0..<outHeight {
                    for xx in 0..<outWidth {
                        let o = horizontal ? xx : yy
                        let start = coefficients.first[o], n = coefficients.count[o], base = o * k
                        var s0 = 0.0, s1 = 0.0, s2 = 0.0
                        for i in 0..<n {
                            let p = horizontal ? ((yy + lineOffset) * inWidth + start + i) * 3 : ((start + i) * inWidth + xx) * 3
                            let w = kk[base + i]
                            s0 += Double(src[p]) * w
                            s1 += Double(src[p + 1]) * w
                            s2 += Double(src[p + 2]) * w
                        }
                        let d = (yy * outWidth + xx) * 3
                        dst[d] = Float(min(max(s0, 0), 1))
                        dst[d + 1] = Float(min(max(s1, 0), 1))
                        dst[d + 2] = Float(min(max(s2, 0), 1))
                    }
                }
            }
        }
    }
    return output
}
