import PivotTensor
import XCTest

/// Data movement and elementwise kernels: upsampleNearest2x, transposeLast2, concatChannels, chunk, add,
/// addInPlace, addChannelBias, scale, and the Tensor basics they rely on. These are exact operations, so
/// results are compared for equality (additions in fp32 are exact to the reference's fp32 rounding).
final class ElementwiseTests: XCTestCase {
    func testUpsampleNearest2x() {
        var rng = SplitMix64(seed: 900)
        for shape in [[2, 3, 4, 5], [1, 1, 1, 1], [2, 2, 7, 3], [1, 4, 16, 16]] {
            let x = rng.tensor(shape)
            let y = upsampleNearest2x(x)
            let (b, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
            XCTAssertEqual(y.shape, [b, c, 2 * h, 2 * w])
            let xs = x.scalars
            var ref = [Float](repeating: 0, count: 4 * x.count)
            for p in 0..<(b * c) {
                for i in 0..<(2 * h) {
                    for j in 0..<(2 * w) { ref[(p * 2 * h + i) * 2 * w + j] = xs[(p * h + i / 2) * w + j / 2] }
                }
            }
            XCTAssertEqual(y.scalars, ref, "upsample \(shape)")
        }
    }

    func testTransposeLast2() {
        var rng = SplitMix64(seed: 910)
        // Shapes around the 32×32 tile size, a batch of 3-D inputs, 2-D and degenerate ones.
        for shape in [[2, 37, 45], [33, 70], [1, 32, 32], [2, 3, 64, 31], [1, 1, 9], [5, 1], [2, 320, 4096 / 64]] {
            let x = rng.tensor(shape)
            let y = transposeLast2(x)
            let r = shape[shape.count - 2], c = shape[shape.count - 1], b = x.count / (r * c)
            XCTAssertEqual(y.shape, Array(shape.dropLast(2)) + [c, r])
            let xs = x.scalars
            var ref = [Float](repeating: 0, count: x.count)
            for n in 0..<b {
                for i in 0..<r { for j in 0..<c { ref[n * r * c + j * r + i] = xs[n * r * c + i * c + j] } }
            }
            XCTAssertEqual(y.scalars, ref, "transpose \(shape)")
            // Transposing twice gives the input back.
            XCTAssertEqual(transposeLast2(y).scalars, xs, "transpose twice \(shape)")
        }
    }

    func testConcatChannels() {
        var rng = SplitMix64(seed: 920)
        for (sa, sb) in [([2, 3, 4, 5], [2, 2, 4, 5]), ([2, 1, 7], [2, 6, 7]), ([1, 4, 3, 3], [1, 4, 3, 3]), ([2, 5], [2, 3])] {
            let a = rng.tensor(sa), b = rng.tensor(sb)
            let y = concatChannels(a, b)
            var shape = sa
            shape[1] = sa[1] + sb[1]
            XCTAssertEqual(y.shape, shape)
            let inner = a.count / (sa[0] * sa[1])
            let as_ = a.scalars, bs = b.scalars
            var ref: [Float] = []
            for n in 0..<sa[0] {
                ref += as_[(n * sa[1] * inner)..<((n + 1) * sa[1] * inner)]
                ref += bs[(n * sb[1] * inner)..<((n + 1) * sb[1] * inner)]
            }
            XCTAssertEqual(y.scalars, ref, "concat \(sa) + \(sb)")
        }
    }

    func testChunk() {
        var rng = SplitMix64(seed: 930)
        let x = rng.tensor([4, 3, 5])
        let parts = chunk(x, dim0Parts: 2)
        XCTAssertEqual(parts.count, 2)
        XCTAssertEqual(parts.map(\.shape), [[2, 3, 5], [2, 3, 5]])
        XCTAssertEqual(parts[0].scalars + parts[1].scalars, x.scalars)
        let single = chunk(x, dim0Parts: 4)
        XCTAssertEqual(single.map(\.shape), Array(repeating: [1, 3, 5], count: 4))
        XCTAssertEqual(single.flatMap(\.scalars), x.scalars)
        // The pieces own their storage. `data` is an unowned pointer: keep the tensors alive while writing
        // through it (in -O builds `parts` may otherwise be released before the store).
        withExtendedLifetime((x, parts)) {
            parts[0].data[0] = 99
            XCTAssertNotEqual(x.data[0], 99)
        }
    }

    func testAddAndAddInPlace() {
        var rng = SplitMix64(seed: 940)
        // One small and one large enough (> 1 << 18 elements) to be split across threads.
        for n in [1, 17, 3 * (1 << 18) + 5] {
            let a = rng.tensor([n]), b = rng.tensor([n])
            let ref = zip(a.scalars, b.scalars).map { $0 + $1 }
            let y = add(a, b)
            XCTAssertEqual(y.shape, [n])
            XCTAssertEqual(y.scalars, ref, "add \(n)")
            let c = a.copy()
            addInPlace(c, b)
            XCTAssertEqual(c.scalars, ref, "addInPlace \(n)")
        }
        // Shapes may differ as long as counts match; the result has a's shape.
        let a = rng.tensor([2, 3, 4]), b = rng.tensor([24])
        XCTAssertEqual(add(a, b).shape, [2, 3, 4])
    }

    func testAddChannelBias() {
        var rng = SplitMix64(seed: 950)
        for shape in [[2, 3, 4, 5], [2, 7, 1, 1], [1, 4, 19]] {
            let x = rng.tensor(shape)
            let b = shape[0], c = shape[1], hw = x.count / (b * c)
            let v = rng.tensor([b, c])
            let xs = x.scalars, vs = v.scalars
            var ref = xs
            for i in 0..<x.count { ref[i] += vs[i / hw] }
            addChannelBias(x, v)
            XCTAssertEqual(x.shape, shape)
            XCTAssertEqual(x.scalars, ref, "addChannelBias \(shape)")
        }
    }

    func testScaleAndTensorBasics() {
        var rng = SplitMix64(seed: 960)
        let x = rng.tensor([3, 4])
        XCTAssertEqual(scale(x, -2.5).scalars, x.scalars.map { $0 * -2.5 })
        XCTAssertEqual(Tensor(zeros: [2, 3]).scalars, [Float](repeating: 0, count: 6))
        let r = x.reshaped([2, 6])
        XCTAssertEqual(r.shape, [2, 6])
        XCTAssertEqual(r.dim(-1), 6)
        XCTAssertEqual(r.rank, 2)
        XCTAssertEqual(r.scalars, x.scalars)
        let c = x.copy()
        withExtendedLifetime((x, c)) {
            c.data[0] += 1
            XCTAssertNotEqual(c.data[0], x.data[0])
            XCTAssertEqual(Int(bitPattern: x.data) % 64, 0, "storage is 64-byte aligned")
        }
        XCTAssertEqual(Tensor.elementCount([2, 3, 4]), 24)
        XCTAssertEqual(Tensor.elementCount([]), 1)
    }
}
