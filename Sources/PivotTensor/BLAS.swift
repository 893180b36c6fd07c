import Foundation
import COpenBLAS
import CPivotDNNL
import CPivotKernels

/// Thin wrappers over OpenBLAS (row-major sgemm) and its threading controls.
public enum BLAS {
    /// C[M, N] = alpha · op(A)[M, K] · op(B)[K, N] + beta · C, row-major with leading dimensions.
    @inlinable
    public static func gemm(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        flops &+= 2 &* m &* n &* k  // racy when GEMMs run on several threads; an estimate then
        Profiler.measure("gemm") {
            if Precision.current == .bf16 {
                // OpenBLAS's spin-waiting workers would compete for the cores with the ones that run oneDNN
                gemmFP32OnDNNL(
                    transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                    beta: beta, c: c, ldc: ldc, singleThread: threads == 1)
                return
            }
            cblas_sgemm(
                CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        }
    }

    /// Floating-point operations so far, as PyTorch's flop counter counts them: 2·M·N·K per GEMM, and for a
    /// Winograd convolution the direct convolution's work. Benchmarks read differences. Meaningful only
    /// when read on the thread that runs the network.
    nonisolated(unsafe) public static var flops: Int = 0

    /// The kernel family OpenBLAS chose for this CPU (e.g. "SkylakeX", "Haswell").
    public static var coreName: String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p)
    }

    /// Runs `body` with OpenBLAS single-threaded, so that several threads can each run their own GEMMs.
    public static func singleThreaded<T>(_ body: () throws -> T) rethrows -> T {
        let n = threads
        if n == 1 { return try body() }
        threads = 1
        defer { threads = n }
        return try body()
    }

    /// Number of threads OpenBLAS uses.
    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(newValue)) }
    }
}

/// Processor features the kernels dispatch on.
public enum CPU {
    /// Whether the AVX-512 (F + DQ) kernel paths run on this processor (and PIVOT_MAX_ISA allows them).
    public static var hasAVX512: Bool { pv_has_avx512() != 0 }

    /// An instruction-set level of the run-time dispatch.
    public enum ISALevel: Int, Sendable, CustomStringConvertible {
        case baseline = 0
        case avx2 = 1
        case avx512 = 2
        public var description: String { ["baseline", "avx2", "avx512"][rawValue] }

        /// The level a PIVOT_MAX_ISA value names ("avx512", "avx2", "baseline", any case; nil or empty text:
        /// avx512), nil for any other text.
        public init?(capText text: String?) {
            let level = text.map { pv_isa_cap_parse($0) } ?? 2
            guard let value = ISALevel(rawValue: Int(level)) else { return nil }
            self = value
        }
    }

    /// The highest level the kernels, the bf16 paths and oneDNN may use: the environment variable
    /// PIVOT_MAX_ISA ("avx512", "avx2" or "baseline"; unset = avx512), read once. It lets a benchmark run a
    /// smaller processor's code paths on a larger one; it never raises what the processor has.
    public static var maxISA: ISALevel { ISALevel(rawValue: Int(pv_isa_cap())) ?? .avx512 }

    /// PIVOT_MAX_ISA's value when it names no level (it then caps nothing), else nil.
    public static var unknownISACap: String? {
        guard let text = ProcessInfo.processInfo.environment[isaCapVariable] else { return nil }
        return ISALevel(capText: text) == nil ? text : nil
    }

    /// The environment variable that caps the instruction sets.
    public static let isaCapVariable = "PIVOT_MAX_ISA"
}
