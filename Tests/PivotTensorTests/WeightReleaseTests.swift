import PivotTensor
import XCTest

/// `TensorStorage.releaseFP32`: a weight keeps only its bf16 copy; bf16 products and Winograd transforms made
/// after the release never bring the fp32 values back, and an fp32 read gets the bf16-rounded values.
final class WeightReleaseTests: XCTestCase {
    func requireBF16() throws {
        guard BF16Support.usable else {
            throw XCTSkip("bf16 kernels not run: oneDNN has no bf16 kernels on this processor (it needs AVX-512)")
        }
    }

    func testReleasedValuesComeBackRoundedToBF16() {
        var rng = SplitMix64(seed: 11)
        let w = rng.tensor([1024, 512])  // 2 MiB: a pooled buffer
        let rounded = BF16Buffer(w).floats
        let restoredBefore = TensorStorage.restoredCount
        let released = w.storage.releaseFP32()
        XCTAssertGreaterThanOrEqual(released, 1024 * 512 * 4 - 2 * 4096)
        XCTAssertTrue(w.storage.fp32Released)
        XCTAssertEqual(w.storage.releaseFP32(), 0, "a second release has nothing to release")
        XCTAssertEqual(w.bf16Weights.floats, rounded, "the bf16 copy is kept")
        XCTAssertEqual(w.scalars, rounded, "an fp32 read gets the bf16-rounded values")
        XCTAssertFalse(w.storage.fp32Released)
        XCTAssertEqual(TensorStorage.restoredCount, restoredBefore + 1)
    }

    func testSmallStoragesAreKept() {
        var rng = SplitMix64(seed: 12)
        let w = rng.tensor([10, 10])
        let values = w.scalars
        XCTAssertEqual(w.storage.releaseFP32(), 0)
        XCTAssertFalse(w.storage.fp32Released)
        XCTAssertEqual(w.scalars, values, "a storage below the minimum keeps its exact values")
    }

    func testBF16LinearReadsOnlyTheBF16Copy() throws {
        try requireBF16()
        var rng = SplitMix64(seed: 13)
        let w = rng.tensor([640, 512]), b = rng.tensor([640]), x = rng.tensor([3, 7, 512])  // w: 1.25 MiB
        let before = Precision.with(.bf16) { linear(x, weight: w, bias: b) }
        let restoredBefore = TensorStorage.restoredCount
        XCTAssertGreaterThan(w.storage.releaseFP32(), 0)
        let after = Precision.with(.bf16) { linear(x, weight: w, bias: b) }
        XCTAssertEqual(after.scalars, before.scalars, "bf16 linear is unchanged bit for bit")
        XCTAssertTrue(w.storage.fp32Released, "the fp32 values were never read")
        XCTAssertEqual(TensorStorage.restoredCount, restoredBefore)
    }

    /// A Winograd transform made after the release is made from the bf16-rounded weights (restored on the
    /// calling thread, then released again): within bf16 rounding of the convolution of the exact weights.
    func testBF16WinogradAfterRelease() throws {
        try requireBF16()
        var rng = SplitMix64(seed: 14)
        let w = rng.tensor([256, 256, 3, 3], -0.05, 0.05), x = rng.tensor([1, 256, 32, 32])  // w: 2.25 MiB
        let exact = Precision.with(.bf16) { conv2d(x, weight: w.copy(), bias: nil, stride: 1, padding: 1) }
        let restoredBefore = TensorStorage.restoredCount
        XCTAssertGreaterThan(w.storage.releaseFP32(), 0)
        let after = Precision.with(.bf16) { conv2d(x, weight: w, bias: nil, stride: 1, padding: 1) }
        XCTAssertTrue(w.storage.fp32Released, "released again after the transform was made")
        XCTAssertEqual(TensorStorage.restoredCount, restoredBefore, "no fp32 read by the convolution itself")
        var maxDiff: Float = 0, maxRef: Float = 0
        for i in 0..<exact.count {
            maxDiff = max(maxDiff, abs(after.data[i] - exact.data[i]))
            maxRef = max(maxRef, abs(exact.data[i]))
        }
        print("bf16 Winograd from released weights: max diff \(maxDiff / maxRef) of max|y|")
        XCTAssertLessThan(maxDiff / maxRef, 2e-2)
        XCTAssertGreaterThan(maxRef, 0)
    }

    /// A 3×3 kernel released keeping only its Winograd transform: bf16 convolutions and their input
    /// gradients are unchanged bit for bit and bring nothing back; an fp32 read gets the kernel back from
    /// the transform (g = L·U·Lᵀ), within about twice bf16's rounding.
    func testKernelReleasedKeepingItsWinogradTransform() throws {
        try requireBF16()
        var rng = SplitMix64(seed: 15)
        let w = rng.tensor([256, 256, 3, 3], -0.05, 0.05), x = rng.tensor([1, 256, 12, 10])  // w: 2.25 MiB
        let exact = w.scalars
        let gy = rng.tensor([1, 256, 12, 10])
        func run() -> (Tensor, Tensor) {
            Precision.with(.bf16) {
                (
                    conv2d(x, weight: w, bias: nil, stride: 1, padding: 1),
                    conv2dBackward(gy, weight: w, inputShape: x.shape, stride: 1, padding: 1)
                )
            }
        }
        let (y0, g0) = run()
        let restoredBefore = TensorStorage.restoredCount
        XCTAssertGreaterThan(w.releaseFP32KeepingWinogradBF16(), 0)
        XCTAssertTrue(w.storage.fp32Released)
        let (y1, g1) = run()
        XCTAssertEqual(y1.scalars, y0.scalars, "bf16 forward unchanged bit for bit")
        XCTAssertEqual(g1.scalars, g0.scalars, "bf16 input gradient unchanged bit for bit")
        XCTAssertTrue(w.storage.fp32Released, "the fp32 values were never read")
        XCTAssertEqual(TensorStorage.restoredCount, restoredBefore)

        // A form made later (here the plain bf16 copy) comes from the restored values and is kept, the
        // storage released again
        let plain = w.bf16Weights
        XCTAssertTrue(w.storage.fp32Released)
        XCTAssertTrue(w.bf16Weights === plain, "made once and kept")
        XCTAssertEqual(TensorStorage.restoredCount, restoredBefore)

        let restored = w.scalars
        XCTAssertEqual(TensorStorage.restoredCount, restoredBefore + 1)
        var maxErr: Float = 0, sumErr: Float = 0
        for (a, b) in zip(restored, exact) {
            maxErr = max(maxErr, abs(a - b))
            sumErr += abs(a - b)
        }
        print("kernel restored from its bf16 Winograd transform: max error \(maxErr / 0.05), mean \(sumErr / Float(exact.count) / 0.05) of max|w|")
        XCTAssertLessThan(maxErr, 0.05 * 3 / 128, "within about three bf16 roundings of the largest weight")
        XCTAssertGreaterThan(maxErr, 0, "the values did come back through bf16")
    }
}
