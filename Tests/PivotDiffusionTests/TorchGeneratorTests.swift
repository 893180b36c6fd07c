import PivotTensor
import XCTest

/// `TorchGenerator` against `torch.randn`/`torch.rand` (PyTorch 2.13 CPU), bit for bit: fixtures from
/// scripts/fixtures/make_rng_fixtures.py.
final class TorchGeneratorTests: XCTestCase {
    struct Fixture: Decodable {
        struct Draw: Decodable {
            let op: String, shape: [Int], fnv1a64: String, sum: Double, sumsq: Double, index: [Int], bits: [UInt32]
        }
        struct Case: Decodable { let name: String, seed: String, kernel: String, draws: [Draw] }
        let torch: String
        let cases: [Case]
    }

    func testMatchesTorchBitForBit() throws {
        let fixture = try loadFixture("rng.json", as: Fixture.self)
        XCTAssertGreaterThanOrEqual(fixture.cases.count, 50)
        for c in fixture.cases {
            let seed = try XCTUnwrap(UInt64(c.seed), c.name)
            var g = TorchGenerator(seed: seed, normalKernel: c.kernel == "scalar" ? .scalar : .avx2)
            for (k, d) in c.draws.enumerated() {
                let what = "\(c.name), draw \(k) \(d.op)\(d.shape)"
                let t = d.op == "rand" ? g.rand(d.shape) : g.randn(d.shape)
                XCTAssertEqual(t.shape, d.shape, what)
                let values = t.scalars
                let bits = values.map(\.bitPattern)
                var wrong = 0
                for (i, index) in d.index.enumerated() where bits[index] != d.bits[i] {
                    if wrong < 3 {
                        XCTFail("\(what)[\(index)]: \(values[index]) vs torch \(Float(bitPattern: d.bits[i]))")
                    }
                    wrong += 1
                }
                XCTAssertEqual(wrong, 0, "\(what): \(wrong) sampled elements differ")
                XCTAssertEqual(fnv1a64(bits), d.fnv1a64, "\(what): hash of all elements")
                let sum = values.reduce(0.0) { $0 + Double($1) }
                let sumsq = values.reduce(0.0) { $0 + Double($1) * Double($1) }
                XCTAssertEqual(sum, d.sum, accuracy: 1e-9 * max(1, abs(d.sum)), what)
                XCTAssertEqual(sumsq, d.sumsq, accuracy: 1e-9 * max(1, d.sumsq), what)
            }
        }
    }

    func testOnlyTheLow32BitsOfTheSeedMatter() {
        var a = TorchGenerator(seed: 5), b = TorchGenerator(seed: (1 << 32) + 5)
        XCTAssertEqual(a.randn(count: 40), b.randn(count: 40))
        XCTAssertEqual(a.randn(count: 3), b.randn(count: 3))
        XCTAssertEqual(b.seed, (1 << 32) + 5)
    }

    func testSmallDrawsShareTheBoxMullerCache() {
        // torch.randn(1) twice gives the cos and the sin of one Box–Muller pair: together they equal randn(2).
        var a = TorchGenerator(seed: 7), b = TorchGenerator(seed: 7)
        XCTAssertEqual(a.randn(count: 1) + a.randn(count: 1), b.randn(count: 2))
        // A large draw in between does not touch the cache (it uses 24-bit uniforms of its own).
        var c = TorchGenerator(seed: 9), d = TorchGenerator(seed: 9)
        let first = c.randn(count: 1)
        _ = c.randn(count: 32)
        let cached = c.randn(count: 1)
        XCTAssertEqual(first + cached, d.randn(count: 2))
    }

    func testUniformAndEmptyDraws() {
        var g = TorchGenerator(seed: 3)
        XCTAssertEqual(g.randn(count: 0), [])
        XCTAssertEqual(g.randn([0, 4]).count, 0)
        let u = g.rand(count: 10_000)
        XCTAssertTrue(u.allSatisfy { $0 >= 0 && $0 < 1 && ($0 * 0x1p24).rounded() == $0 * 0x1p24 })
    }

    func testMatchingTorchHereIsAKernel() {
        // On x86-64 with AVX2 and FMA (and without ATEN_CPU_CAPABILITY=default) torch runs its AVX2 kernel.
        let kernel = TorchGenerator.NormalKernel.matchingTorchHere
        XCTAssertTrue(kernel == .avx2 || kernel == .scalar)
    }

    func testEngineMatchesReferenceMT19937() {
        // The 10000th output of std::mt19937 seeded with 5489 is 4123659995 (C++ standard, [rand.predef]).
        var g = TorchGenerator(seed: 5489)
        var last: UInt32 = 0
        for _ in 0..<10_000 { last = g.random() }
        XCTAssertEqual(last, 4_123_659_995)
    }
}
