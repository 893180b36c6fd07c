import CPivotDNNL

/// The arithmetic of the matrix work (linear layers, attention, convolutions).
///
/// - `fp32`: fp32 inputs and accumulation on OpenBLAS: the path every parity test checks against diffusers.
/// - `bf16`: activations stay fp32 between layers; each matrix product rounds its two inputs to bf16 (round
///   to nearest even) and accumulates in fp32 on oneDNN. Softmax, normalisation, activations and the
///   Winograd transforms stay fp32. Weights are rounded once per model and cached (`Tensor.bf16Weights`).
///
/// The precision is chosen per call: networks run their passes inside `Precision.with(_:)`, and every kernel
/// reads `Precision.current` on the calling thread (a task-local value, so concurrent tasks can differ).
/// A VJP runs in the precision its forward op was recorded in.
public enum Precision: String, Sendable, CaseIterable, CustomStringConvertible {
    case fp32, bf16

    @TaskLocal public static var current: Precision = .fp32

    /// Runs `body` with `precision` as the current precision.
    public static func with<T>(_ precision: Precision, _ body: () throws -> T) rethrows -> T {
        try $current.withValue(precision, operation: body)
    }

    public var description: String { rawValue }
}

/// What the processor and oneDNN offer for bf16 matrix work.
public enum BF16Support {
    /// Native bf16 dot products (AVX512_BF16 or AMX-BF16).
    public static var native: Bool { pv_cpu_has_bf16() != 0 }
    /// AMX tiles for bf16.
    public static var amx: Bool { pv_cpu_has_amx_bf16() != 0 }
    /// Whether oneDNN can run bf16 products here at all (AVX-512 at least; without AVX512_BF16 it emulates
    /// the arithmetic, correctly but slower than fp32).
    public static var usable: Bool { pv_dnnl_bf16_usable() != 0 }
    /// oneDNN's implementation for a bf16 product on this processor (e.g. "brg:avx512_core_bf16").
    public static var implementation: String { String(cString: pv_dnnl_bf16_impl()) }
    /// oneDNN's version.
    public static var oneDNNVersion: String { String(cString: pv_dnnl_version()) }
}

/// Contiguous bf16 values (raw bit patterns), 64-byte aligned.
public final class BF16Buffer: FP32Restoring, @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<UInt16>
    public let count: Int

    /// An uninitialised buffer of `count` values.
    public init(count: Int) {
        self.count = count
        pointer = BufferPool.shared.take(bytes: max(count, 1) * 2)
            .bindMemory(to: UInt16.self, capacity: max(count, 1))
    }

    /// The values of `src` rounded to bf16.
    public convenience init(_ src: UnsafePointer<Float>, count: Int) {
        self.init(count: count)
        Parallel.forEach(count, grain: 1 << 16) { r in
            pv_f32_to_bf16(src + r.lowerBound, pointer + r.lowerBound, r.count)
        }
    }

    /// The values of a tensor rounded to bf16 (same layout).
    public convenience init(_ t: Tensor) {
        self.init(t.data, count: t.count)
        withExtendedLifetime(t) {}
    }

    deinit { BufferPool.shared.give(UnsafeMutableRawPointer(pointer), bytes: max(count, 1) * 2) }

    /// Widens the first `count` values to fp32 (`FP32Restoring`).
    public func restore(into values: UnsafeMutablePointer<Float>, count: Int) {
        precondition(count <= self.count, "BF16Buffer.restore: \(count) values asked of \(self.count)")
        pv_bf16_to_f32(pointer, values, count)
    }

    /// The values as fp32 (for tests).
    public var floats: [Float] {
        var out = [Float](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer { pv_bf16_to_f32(pointer, $0.baseAddress!, count) }
        return out
    }
}

extension Tensor {
    /// This tensor's values rounded to bf16, computed once and kept with the storage. Only for tensors
    /// that never change after loading (network weights): the copy is not refreshed on writes.
    public var bf16Weights: BF16Buffer {
        storage.derived("bf16") { BF16Buffer(self) }
    }
}

extension BLAS {
    /// C[M, N] = alpha · (op(A) · op(B) + bias[N] per row) + beta · C, A and B bf16, C fp32 (oneDNN), on all
    /// workers (or the calling thread alone with `singleThread`). Precondition: oneDNN accepted the product
    /// (shapes are the caller's invariants; bf16 availability is checked before a bf16 run starts).
    ///
    /// Several workers split the rows of C (or its columns when there are few rows), each running a
    /// single-threaded oneDNN product: oneDNN's own threading may split the sum over K between threads and
    /// add the parts in whichever order they finish, which made repeated runs differ in the last bits.
    public static func gemmBF16(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<UInt16>, lda: Int,
        b: UnsafePointer<UInt16>, ldb: Int, beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int, bias: UnsafePointer<Float>? = nil,
        singleThread: Bool = false
    ) {
        guard m > 0, n > 0 else { return }
        flops &+= 2 &* m &* n &* k
        splitForWorkers(m: m, n: n, k: k, singleThread: singleThread) { r0, r1, c0, c1 in
            let status = pv_gemm_bf16(
                transA ? 1 : 0, transB ? 1 : 0, r1 - r0, c1 - c0, k, alpha,
                a + (transA ? r0 : r0 * lda), lda, b + (transB ? c0 * ldb : c0), ldb, beta,
                c + r0 * ldc + c0, ldc, bias.map { $0 + c0 })
            precondition(status == 0, "oneDNN bf16 matmul \(m)×\(n)×\(k) failed (status \(status))")
        }
    }

    /// The fp32 product on oneDNN, split over workers as `gemmBF16`.
    @usableFromInline
    static func gemmFP32OnDNNL(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float,
        c: UnsafeMutablePointer<Float>, ldc: Int, singleThread: Bool
    ) {
        splitForWorkers(m: m, n: n, k: k, singleThread: singleThread) { r0, r1, c0, c1 in
            let status = pv_gemm_f32_dnnl(
                transA ? 1 : 0, transB ? 1 : 0, r1 - r0, c1 - c0, k, alpha,
                a + (transA ? r0 : r0 * lda), lda, b + (transB ? c0 * ldb : c0), ldb, beta,
                c + r0 * ldc + c0, ldc, nil)
            precondition(status == 0, "oneDNN fp32 matmul \(m)×\(n)×\(k) failed (status \(status))")
        }
    }

    /// Runs `body(rowStart, rowEnd, columnStart, columnEnd)` over parts of an M×N product: one part per
    /// worker, rows split in multiples of 16 (columns when M < 32 · workers), or one part for small products.
    @inline(__always)
    static func splitForWorkers(m: Int, n: Int, k: Int, singleThread: Bool, _ body: (Int, Int, Int, Int) -> Void) {
        let workers = Parallel.workers
        if singleThread || workers == 1 || m * n * k < 1 << 18 {
            body(0, m, 0, n)
            return
        }
        if m >= 32 * workers {
            let step = ((m + workers - 1) / workers + 15) & ~15
            Parallel.forEach(workers) { r in
                for w in r where w * step < m { body(w * step, min(m, (w + 1) * step), 0, n) }
            }
        } else {
            let step = ((n + workers - 1) / workers + 15) & ~15
            Parallel.forEach(workers) { r in
                for w in r where w * step < n { body(0, m, w * step, min(n, (w + 1) * step)) }
            }
        }
    }
}
