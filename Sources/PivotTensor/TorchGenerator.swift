#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// PyTorch's CPU random number generator (`torch.Generator()` on CPU), reproduced bit for bit for the fp32
/// draws pivot makes: `torch.randn(shape, generator=g)` and `torch.rand(shape, generator=g)`.
///
/// What it reproduces (PyTorch 2.13, ATen `CPUGeneratorImpl`, `core/MT19937RNGEngine.h`,
/// `core/DistributionsHelper.h`, `native/cpu/DistributionTemplates.h`, `native/cpu/avx_mathfun.h`):
/// - `manual_seed(s)`: a 32-bit Mersenne Twister seeded with the low 32 bits of `s` (so seeds 5 and 2³² + 5
///   give the same numbers); the cached normal sample is dropped.
/// - `randn` of fewer than 16 elements: double-precision Box–Muller (`normal_distribution<double>`) on two
///   53-bit uniforms from `random64()`, returning r·cos θ and caching r·sin θ for the next small draw; the
///   cache survives larger draws in between, as in torch.
/// - `randn` of 16 or more elements: every element first gets a 24-bit uniform from `random()`; then each
///   full block of 16 becomes 8 Box–Muller pairs (u1 from the first 8, u2 from the last 8); when the count is
///   not a multiple of 16, the *last* 16 elements are redrawn from 16 fresh uniforms and transformed again.
///   The block transform is the one torch dispatches to: `.avx2` (torch's AVX2 kernel, Cephes-style log and
///   sincos from `avx_mathfun.h` with the fused multiply-adds GCC emits for it) or `.scalar`.
/// - `rand`: `(random() & 0xFFFFFF) · 2⁻²⁴` per element.
///
/// Limitations: fp32 and contiguous outputs only (as pivot draws); the `.scalar` kernel and the small-tensor
/// path call the C library's `logf`/`sinf`/`cosf` and `log1p`/`sin`/`cos`, so they match torch running on the
/// same C library (glibc), which is what torch itself depends on.
public struct TorchGenerator: Sendable {
    /// Which of torch's fp32 `normal_fill` kernels to reproduce for draws of 16 or more elements.
    public enum NormalKernel: Sendable, Equatable {
        /// torch's AVX2 kernel. PyTorch 2.13 uses it on every x86-64 processor with AVX2 and FMA, AVX-512
        /// ones included (its AVX-512 dispatch slot for `normal` is empty and falls back to AVX2).
        case avx2
        /// torch's portable kernel (`ATEN_CPU_CAPABILITY=default`, or a processor without AVX2/FMA):
        /// `logf`, `sinf`/`cosf` of the C library, θ computed in double.
        case scalar

        /// The kernel torch would pick in this process: `ATEN_CPU_CAPABILITY=default` or a processor without
        /// AVX2 and FMA (read from /proc/cpuinfo on Linux) gives `.scalar`, otherwise `.avx2`.
        public static var matchingTorchHere: NormalKernel {
            if let env = getenv("ATEN_CPU_CAPABILITY"), String(cString: env).lowercased() == "default" { return .scalar }
            #if os(Linux) && arch(x86_64)
                guard let file = fopen("/proc/cpuinfo", "r") else { return .avx2 }
                defer { fclose(file) }
                var line: UnsafeMutablePointer<CChar>? = nil
                var capacity = 0
                defer { free(line) }
                while getline(&line, &capacity, file) > 0, let l = line {
                    let text = String(cString: l)
                    guard text.hasPrefix("flags") else { continue }
                    let flags = Set(text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map(String.init))
                    return flags.contains("avx2") && flags.contains("fma") ? .avx2 : .scalar
                }
                return .avx2
            #elseif arch(x86_64)
                return .avx2
            #else
                return .scalar
            #endif
        }
    }

    /// The seed given to `init` (all 64 bits; only the low 32 reach the engine, as in torch).
    public let seed: UInt64
    /// The fp32 `normal_fill` kernel reproduced for draws of 16 or more elements.
    public let normalKernel: NormalKernel
    private var engine: MersenneTwister
    /// Box–Muller's second value, kept for the next draw of fewer than 16 elements (torch's
    /// `next_double_normal_sample`).
    private var cachedNormal: Double?

    /// A generator in the state of `torch.Generator().manual_seed(seed)`.
    public init(seed: UInt64, normalKernel: NormalKernel = .avx2) {
        self.seed = seed
        self.normalKernel = normalKernel
        engine = MersenneTwister(seed: UInt32(truncatingIfNeeded: seed))
        cachedNormal = nil
    }

    /// The next 32 random bits (torch's `CPUGeneratorImpl::random`).
    public mutating func random() -> UInt32 { engine.next() }

    /// The next 64 random bits: two 32-bit outputs, the first one high (torch's `random64`).
    public mutating func random64() -> UInt64 {
        let hi = UInt64(engine.next()), lo = UInt64(engine.next())
        return hi << 32 | lo
    }

    /// `torch.randn(shape, generator=g)` in fp32 on CPU.
    public mutating func randn(_ shape: [Int]) -> Tensor {
        Tensor(shape: shape, values: randn(count: Tensor.elementCount(shape)))
    }

    /// `torch.randn(count, generator=g)` in fp32 on CPU, as an array.
    public mutating func randn(count: Int) -> [Float] {
        precondition(count >= 0, "TorchGenerator.randn: negative count \(count)")
        var out = [Float](repeating: 0, count: count)
        if count < 16 {
            for i in 0..<count { out[i] = Float(nextNormalDouble()) }
            return out
        }
        out.withUnsafeMutableBufferPointer { buf in
            let p = buf.baseAddress!
            for i in 0..<count { p[i] = nextUniformFloat() }
            var i = 0
            while i < count - 15 {
                fill16(p + i)
                i += 16
            }
            if count % 16 != 0 {
                let tail = p + count - 16
                for j in 0..<16 { tail[j] = nextUniformFloat() }
                fill16(tail)
            }
        }
        return out
    }

    /// `torch.rand(shape, generator=g)` in fp32 on CPU: uniform in [0, 1) with 24 random bits.
    public mutating func rand(_ shape: [Int]) -> Tensor {
        Tensor(shape: shape, values: rand(count: Tensor.elementCount(shape)))
    }

    /// `torch.rand(count, generator=g)` in fp32 on CPU, as an array.
    public mutating func rand(count: Int) -> [Float] {
        precondition(count >= 0, "TorchGenerator.rand: negative count \(count)")
        return (0..<count).map { _ in nextUniformFloat() }
    }

    // MARK: - Distributions

    /// `uniform_real_distribution<float>(0, 1)`: the low 24 bits of `random()` times 2⁻²⁴.
    @inline(__always) private mutating func nextUniformFloat() -> Float {
        Float(engine.next() & 0xFF_FFFF) * 0x1p-24
    }

    /// `uniform_real_distribution<double>(0, 1)`: the low 53 bits of `random64()` times 2⁻⁵³.
    @inline(__always) private mutating func nextUniformDouble() -> Double {
        Double(random64() & 0x1F_FFFF_FFFF_FFFF) * 0x1p-53
    }

    /// `normal_distribution<double>(0, 1)` with torch's cache of the second Box–Muller value.
    private mutating func nextNormalDouble() -> Double {
        if let cached = cachedNormal {
            cachedNormal = nil
            return 0.0.addingProduct(cached, 1.0)  // torch: fma(value, std, mean)
        }
        let u1 = nextUniformDouble()
        let u2 = nextUniformDouble()
        let r = (-2.0 * log1p(-u2)).squareRoot()
        let theta = 2.0 * Double.pi * u1
        cachedNormal = r * sin(theta)
        return 0.0.addingProduct(r * cos(theta), 1.0)
    }

    /// Box–Muller on 16 uniforms in place: `p[j]` ← r·cos θ, `p[j + 8]` ← r·sin θ with
    /// r = √(−2 ln(1 − p[j])), θ = 2π·p[j + 8], for j < 8 (mean 0, std 1).
    private func fill16(_ p: UnsafeMutablePointer<Float>) {
        switch normalKernel {
        case .avx2:
            for j in 0..<8 {
                let radius = (CephesAVX.log(1 - p[j]) * -2).squareRoot()
                let (s, c) = CephesAVX.sincos(Float(bitPattern: 0x40C9_0FDB) * p[j + 8])  // Float(2π) · u2
                p[j] = Float(0).addingProduct(radius * c, 1)
                p[j + 8] = Float(0).addingProduct(radius * s, 1)
            }
        case .scalar:
            for j in 0..<8 {
                let radius = (logf(1 - p[j]) * -2).squareRoot()
                let theta = Float(2.0 * Double.pi * Double(p[j + 8]))
                p[j] = Float(0).addingProduct(radius * cosf(theta), 1)
                p[j + 8] = Float(0).addingProduct(radius * sinf(theta), 1)
            }
        }
    }
}

/// MT19937 as ATen implements it (`at::mt19937`): seeded with `init_genrand`, regenerated 624 words at a time.
struct MersenneTwister: Sendable {
    private static let n = 624, m = 397
    private var state: [UInt32]
    private var index: Int

    init(seed: UInt32) {
        state = [UInt32](repeating: 0, count: Self.n)
        state[0] = seed
        for j in 1..<Self.n {
            let prev = state[j - 1]
            state[j] = 1_812_433_253 &* (prev ^ (prev >> 30)) &+ UInt32(j)
        }
        index = Self.n  // the first draw regenerates the state
    }

    @inline(__always) private static func twist(_ u: UInt32, _ v: UInt32) -> UInt32 {
        (((u & 0x8000_0000) | (v & 0x7FFF_FFFF)) >> 1) ^ (v & 1 != 0 ? 0x9908_B0DF : 0)
    }

    private mutating func regenerate() {
        let n = Self.n, m = Self.m
        state.withUnsafeMutableBufferPointer { s in
            for k in 0..<(n - m) { s[k] = s[k + m] ^ Self.twist(s[k], s[k + 1]) }
            for k in (n - m)..<(n - 1) { s[k] = s[k + m - n] ^ Self.twist(s[k], s[k + 1]) }
            s[n - 1] = s[m - 1] ^ Self.twist(s[n - 1], s[0])
        }
        index = 0
    }

    /// The next tempered 32-bit output.
    @inline(__always) mutating func next() -> UInt32 {
        if index == Self.n { regenerate() }
        var y = state[index]
        index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C_5680
        y ^= (y << 15) & 0xEFC6_0000
        y ^= y >> 18
        return y
    }
}

/// The Cephes-derived `log256_ps` and `sincos256_ps` of ATen's `avx_mathfun.h` (J. Pommier's SSE/AVX
/// maths, zlib licence), one lane at a time, with the operation order and the fused multiply-adds that
/// PyTorch 2.13's AVX2 build executes (read from its `NormalFill16<float>` machine code): each lane is
/// independent, so the scalar replay gives the same bits as the vector code.
enum CephesAVX {
    @inline(__always) private static func fma(_ a: Float, _ b: Float, _ c: Float) -> Float { c.addingProduct(a, b) }
    /// A constant by its bit pattern, exactly as stored in torch's binary (the C source writes them as
    /// double literals rounded to float).
    @inline(__always) private static func c(_ bits: UInt32) -> Float { Float(bitPattern: bits) }

    /// Natural logarithm of x > 0 (NaN for x ≤ 0), as `log256_ps`.
    static func log(_ input: Float) -> Float {
        let invalid = input <= 0
        var x = input > Float(bitPattern: 0x0080_0000) ? input : Float(bitPattern: 0x0080_0000)  // maxps
        let exponent = Int32(bitPattern: x.bitPattern >> 23) &- 0x7F
        x = Float(bitPattern: (x.bitPattern & ~0x7F80_0000) | Float(0.5).bitPattern)  // mantissa in [0.5, 1)
        var e = Float(exponent) + 1
        let small = x < c(0x3F35_04F3)
        let tmp: Float = small ? x : 0
        x = x + -1
        e = e - (small ? 1 : 0)
        x = x + tmp
        let z = x * x
        var y = fma(c(0x3D90_21BB), x, c(0xBDEB_D1B8))
        y = fma(y, x, c(0x3DEF_251A))
        y = fma(y, x, c(0xBDFE_5D4F))
        y = fma(y, x, c(0x3E11_E9BF))
        y = fma(y, x, c(0xBE2A_AE50))
        y = fma(y, x, c(0x3E4C_CEAC))
        y = fma(y, x, c(0xBE7F_FFFC))
        y = fma(y, x, c(0x3EAA_AAAA))
        y = y * x
        y = fma(y, z, e * c(0xB95E_8083))
        y = fma(-z, 0.5, y)
        x = x + y
        x = fma(e, c(0x3F31_8000), x)
        return invalid ? Float(bitPattern: x.bitPattern | 0xFFFF_FFFF) : x
    }

    /// Sine and cosine of x (accurate for |x| < 8192), as `sincos256_ps`.
    static func sincos(_ input: Float) -> (sin: Float, cos: Float) {
        var x = Float(bitPattern: input.bitPattern & 0x7FFF_FFFF)
        var signSin = input.bitPattern & 0x8000_0000
        let scaled = x * c(0x3FA2_F983)  // 4/π
        var j: Int32 = scaled < 2_147_483_648 ? Int32(scaled) : Int32.min  // cvttps2dq
        j = (j &+ 1) & ~1
        let y0 = Float(j)
        signSin ^= UInt32(bitPattern: j & 4) << 29
        let firstPolynomialIsCos = (j & 2) == 0
        x = fma(y0, c(0xBF49_0000), x)  // x − j·π/4 with π/4 split in three parts (−DP1, −DP2, −DP3)
        x = fma(y0, c(0xB97D_A000), x)
        x = fma(y0, c(0xB322_2169), x)
        let signCos = UInt32(bitPattern: ~(j &- 2) & 4) << 29
        let z = x * x
        let half = z * 0.5
        var y = fma(c(0x37CC_F5CE), z, c(0xBAB6_061A))
        y = fma(y, z, c(0x3D2A_AAA5))
        y = z * y
        y = fma(z, y, -half)
        y = y + 1
        var y2 = fma(c(0xB94C_A1F9), z, c(0x3C08_839E))
        y2 = fma(y2, z, c(0xBE2A_AAA3))
        y2 = z * y2
        y2 = fma(x, y2, x)
        let sinFrom2: Float = firstPolynomialIsCos ? y2 : 0
        let sinFrom1: Float = firstPolynomialIsCos ? 0 : y
        let s = sinFrom2 + sinFrom1
        let cosine = (y2 - sinFrom2) + (y - sinFrom1)
        return (Float(bitPattern: s.bitPattern ^ signSin), Float(bitPattern: cosine.bitPattern ^ signCos))
    }
}
