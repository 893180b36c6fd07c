import PivotTensor
import XCTest

/// Winograd in fp32 — F(2×2, 3×3) below `winograd4MinPixels`, F(4×4, 3×3) from there — against im2col
/// convolution (itself checked against a naive reference); the bf16 path's F(2×2, 3×3) is checked by BF16Tests.
final class WinogradTests: XCTestCase {
    func check(batch: Int, c: Int, o: Int, h: Int, w: Int, bias: Bool, seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let x = rng.tensor([batch, c, h, w])
        let weight = rng.tensor([o, c, 3, 3])
        let b: Tensor? = bias ? rng.tensor([o]) : nil
        let ref = conv2dIm2col(x, weight: weight, bias: b, stride: 1, padding: 1)
        let got = conv2dWinograd(x, weight: weight, bias: b)
        assertClose(got, doubles(ref), shape: ref.shape, tol: 1e-5, "winograd \(batch)x\(c)x\(h)x\(w) -> \(o)")
    }

    func testEvenAndOddSizes() {
        check(batch: 2, c: 3, o: 5, h: 8, w: 8, bias: true, seed: 1)
        check(batch: 1, c: 4, o: 2, h: 7, w: 9, bias: false, seed: 2)
        check(batch: 1, c: 1, o: 1, h: 1, w: 1, bias: true, seed: 3)
        check(batch: 1, c: 2, o: 3, h: 1, w: 6, bias: true, seed: 4)
        check(batch: 1, c: 5, o: 4, h: 33, w: 17, bias: true, seed: 5)
    }

    /// F(4×4, 3×3): every remainder of the 4×4 tiles, images of at least `winograd4MinPixels`.
    func testLargeImagesUseFourByFourTiles() {
        XCTAssertGreaterThanOrEqual(64 * 64, winograd4MinPixels)
        XCTAssertLessThan(32 * 32, winograd4MinPixels)
        check(batch: 2, c: 3, o: 5, h: 64, w: 64, bias: true, seed: 8)
        check(batch: 1, c: 4, o: 2, h: 65, w: 66, bias: false, seed: 9)
        check(batch: 1, c: 2, o: 3, h: 67, w: 63, bias: true, seed: 10)
        check(batch: 1, c: 70, o: 3, h: 5, w: 1000, bias: true, seed: 11)
    }

    /// Enough channels and pixels that the tiles are processed in several bands.
    func testSeveralBands() {
        // 16 · 64 channels · 64 tiles a row = 65536 floats a tile row: 8M / 65536 = 128 rows a band < 160.
        check(batch: 1, c: 64, o: 8, h: 320, w: 128, bias: true, seed: 6)
    }

    /// conv2d chooses Winograd for large 3×3 stride-1 convolutions and im2col otherwise; both agree.
    func testDispatch() {
        var rng = SplitMix64(seed: 7)
        let x = rng.tensor([1, 4, 40, 40])
        let weight = rng.tensor([6, 4, 3, 3])
        let viaDispatch = conv2d(x, weight: weight, bias: nil, stride: 1, padding: 1)
        let direct = conv2dIm2col(x, weight: weight, bias: nil, stride: 1, padding: 1)
        XCTAssertGreaterThanOrEqual(40 * 40, winogradMinPixels)
        assertClose(viaDispatch, doubles(direct), shape: direct.shape, tol: 1e-5, "dispatch")
    }
}
