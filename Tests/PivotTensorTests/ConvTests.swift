import Foundation
import PivotTensor
import XCTest

/// conv2d (im2col + sgemm, banded) against a direct double-precision convolution.
final class ConvTests: XCTestCase {
    /// Direct convolution, PyTorch semantics (zero padding, groups 1, dilation 1). Only output rows in
    /// `rows` (all when nil) are computed; the others are left at 0.
    static func reference(
        _ x: Tensor, _ w: Tensor, _ bias: Tensor?, stride: Int, padding: Int,
        rows: [Int]? = nil
    ) -> [Double] {
        let (b, c, h, wd) = (x.dim(0), x.dim(1), x.dim(2), x.dim(3))
        let (o, kh, kw) = (w.dim(0), w.dim(2), w.dim(3))
        let ho = (h + 2 * padding - kh) / stride + 1, wo = (wd + 2 * padding - kw) / stride + 1
        let xs = doubles(x), ws = doubles(w), bs = bias.map(doubles)
        var y = [Double](repeating: 0, count: b * o * ho * wo)
        for n in 0..<b {
            for oc in 0..<o {
                for oy in rows ?? Array(0..<ho) {
                    for ox in 0..<wo {
                        var s = bs?[oc] ?? 0
                        for ic in 0..<c {
                            for ky in 0..<kh {
                                let iy = oy * stride - padding + ky
                                if iy < 0 || iy >= h { continue }
                                for kx in 0..<kw {
                                    let ix = ox * stride - padding + kx
                                    if ix < 0 || ix >= wd { continue }
                                    s += xs[((n * c + ic) * h + iy) * wd + ix] * ws[((oc * c + ic) * kh + ky) * kw + kx]
                                }
                            }
                        }
                        y[((n * o + oc) * ho + oy) * wo + ox] = s
                    }
                }
            }
        }
        return y
    }

    /// Runs one configuration and compares the whole output.
    func check(
        b: Int, c: Int, h: Int, w: Int, o: Int, kh: Int, kw: Int, stride: Int, padding: Int,
        bias: Bool, seed: UInt64, file: StaticString = #filePath, line: UInt = #line
    ) {
        var rng = SplitMix64(seed: seed)
        let x = rng.tensor([b, c, h, w])
        let wt = rng.tensor([o, c, kh, kw], -0.5, 0.5)
        let bt = bias ? rng.tensor([o]) : nil
        let y = conv2d(x, weight: wt, bias: bt, stride: stride, padding: padding)
        let ho = (h + 2 * padding - kh) / stride + 1, wo = (w + 2 * padding - kw) / stride + 1
        let ref = Self.reference(x, wt, bt, stride: stride, padding: padding)
        assertClose(
            y, ref, shape: [b, o, ho, wo],
            "conv2d b\(b) c\(c) \(h)x\(w) o\(o) k\(kh)x\(kw) s\(stride) p\(padding) bias \(bias)",
            file: file, line: line)
    }

    func test3x3Stride1Pad1() {
        check(b: 2, c: 3, h: 7, w: 10, o: 5, kh: 3, kw: 3, stride: 1, padding: 1, bias: true, seed: 1)
        check(b: 2, c: 3, h: 7, w: 10, o: 5, kh: 3, kw: 3, stride: 1, padding: 1, bias: false, seed: 2)
        check(b: 1, c: 16, h: 12, w: 5, o: 8, kh: 3, kw: 3, stride: 1, padding: 1, bias: true, seed: 3)
    }

    func test3x3Stride1Pad0() {
        check(b: 2, c: 4, h: 9, w: 6, o: 3, kh: 3, kw: 3, stride: 1, padding: 0, bias: true, seed: 4)
        check(b: 2, c: 4, h: 9, w: 6, o: 3, kh: 3, kw: 3, stride: 1, padding: 0, bias: false, seed: 5)
        // Output of a single pixel.
        check(b: 2, c: 2, h: 3, w: 3, o: 2, kh: 3, kw: 3, stride: 1, padding: 0, bias: true, seed: 6)
    }

    func test3x3Stride2() {
        // Even and odd sizes, padding 0 and 1 (the UNet/VAE downsamplers use stride 2).
        check(b: 2, c: 3, h: 8, w: 11, o: 4, kh: 3, kw: 3, stride: 2, padding: 1, bias: true, seed: 7)
        check(b: 2, c: 3, h: 9, w: 6, o: 4, kh: 3, kw: 3, stride: 2, padding: 1, bias: false, seed: 8)
        check(b: 2, c: 3, h: 8, w: 11, o: 4, kh: 3, kw: 3, stride: 2, padding: 0, bias: true, seed: 9)
        check(b: 2, c: 5, h: 13, w: 10, o: 2, kh: 3, kw: 3, stride: 2, padding: 0, bias: false, seed: 10)
    }

    func test1x1Pointwise() {
        // stride 1, padding 0: the direct GEMM path without im2col.
        check(b: 2, c: 6, h: 5, w: 7, o: 4, kh: 1, kw: 1, stride: 1, padding: 0, bias: true, seed: 11)
        check(b: 2, c: 6, h: 5, w: 7, o: 4, kh: 1, kw: 1, stride: 1, padding: 0, bias: false, seed: 12)
    }

    func test1x1StridedOrPadded() {
        // 1×1 kernels that are not pointwise go through im2col.
        check(b: 2, c: 3, h: 7, w: 6, o: 4, kh: 1, kw: 1, stride: 2, padding: 0, bias: true, seed: 13)
        check(b: 2, c: 3, h: 5, w: 4, o: 2, kh: 1, kw: 1, stride: 1, padding: 1, bias: false, seed: 14)
        check(b: 2, c: 3, h: 5, w: 4, o: 2, kh: 1, kw: 1, stride: 2, padding: 1, bias: true, seed: 15)
    }

    func testOddShapes() {
        // Non-square kernels, a kernel wider than the input (padding covers it), one-pixel inputs.
        check(b: 2, c: 2, h: 6, w: 9, o: 3, kh: 1, kw: 3, stride: 1, padding: 1, bias: true, seed: 16)
        check(b: 1, c: 2, h: 6, w: 9, o: 3, kh: 3, kw: 1, stride: 2, padding: 0, bias: false, seed: 17)
        check(b: 2, c: 3, h: 4, w: 1, o: 2, kh: 5, kw: 5, stride: 1, padding: 2, bias: true, seed: 18)
        check(b: 2, c: 3, h: 1, w: 1, o: 2, kh: 3, kw: 3, stride: 1, padding: 1, bias: true, seed: 19)
        check(b: 1, c: 2, h: 1, w: 7, o: 2, kh: 3, kw: 3, stride: 2, padding: 1, bias: false, seed: 20)
    }

    /// Large enough that c·9·wo·ho > convColumnBudget, so im2col is built in several bands of rows.
    /// The reference is computed only on rows around band boundaries plus a few others.
    func testSeveralIm2colBands() {
        let (b, c, h, w, o) = (2, 128, 80, 96, 3)
        let ckk = c * 9
        XCTAssertGreaterThan(ckk * h * w, convColumnBudget, "case must exceed the im2col budget")
        let bandRows = convColumnBudget / (ckk * w)
        XCTAssertLessThan(bandRows, h, "at least two bands")
        var rng = SplitMix64(seed: 21)
        let x = rng.tensor([b, c, h, w])
        let wt = rng.tensor([o, c, 3, 3], -0.1, 0.1)
        let bt = rng.tensor([o])
        let start = Date()
        let y = conv2d(x, weight: wt, bias: bt, stride: 1, padding: 1)
        let elapsed = Date().timeIntervalSince(start)
        // About 0.4 s in a debug build on 2 shared cores; the bound only catches gross regressions.
        XCTAssertLessThan(elapsed, 5.0, "banded conv2d took \(elapsed) s")
        XCTAssertEqual(y.shape, [b, o, h, w])
        let rows = Array(
            Set(
                [0, 1, bandRows - 1, bandRows, bandRows + 1, h - 2, h - 1, h / 3]
                    .filter { $0 >= 0 && $0 < h })
        ).sorted()
        let ref = Self.reference(x, wt, bt, stride: 1, padding: 1, rows: rows)
        var got: [Float] = [], want: [Double] = []
        let ys = y.scalars
        for n in 0..<b {
            for oc in 0..<o {
                for oy in rows {
                    for ox in 0..<w {
                        let i = ((n * o + oc) * h + oy) * w + ox
                        got.append(ys[i])
                        want.append(ref[i])
                    }
                }
            }
        }
        assertClose(got, want, "banded conv2d rows \(rows)")
        // Every output element is finite (uninitialised memory would likely show up here or above).
        XCTAssertTrue(ys.allSatisfy { $0.isFinite })
    }
}
