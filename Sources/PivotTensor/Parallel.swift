import Dispatch
import Foundation

/// Work splitting for elementwise kernels (OpenBLAS threads its own GEMMs).
public enum Parallel {
    /// The environment variable that sets the worker count (`pivot --threads N` sets it).
    public static let threadsVariable = "PIVOT_THREADS"

    /// Number of worker threads, read once: `$PIVOT_THREADS` when it is a whole number in 1…1024, else the
    /// active processor count (at least 1).
    public static let workers: Int = {
        if let text = ProcessInfo.processInfo.environment[threadsVariable], let n = Int(text), (1...1024).contains(n) { return n }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// Runs `body` over disjoint ranges covering `0..<count`, in parallel when the work is large enough.
    /// `grain` is the smallest range worth a thread.
    @inlinable
    public static func forEach(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        chunks(count, grain: grain) { _, r in body(r) }
    }

    /// Like `forEach`, also passing the chunk's index in `0..<workers` (for per-thread scratch memory).
    @inlinable
    public static func chunks(_ count: Int, grain: Int = 1, _ body: (Int, Range<Int>) -> Void) {
        guard count > 0 else { return }
        let chunks = min(workers, max(1, count / max(grain, 1)))
        if chunks == 1 {
            body(0, 0..<count)
            return
        }
        let step = (count + chunks - 1) / chunks
        DispatchQueue.concurrentPerform(iterations: chunks) { i in
            let lo = i * step, hi = min(count, lo + step)
            if lo < hi { body(i, lo..<hi) }
        }
    }
}
