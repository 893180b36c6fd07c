import ArgumentParser
import Foundation
import PivotTensor

/// `--threads N` (or `PIVOT_THREADS`), on every command: how many threads pivot's kernels and OpenBLAS use,
/// so that several processes (batch shards) can share a machine without oversubscribing it.
struct ThreadOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Threads for the kernels and OpenBLAS (default: $PIVOT_THREADS, else every processor).", valueName: "N"))
    var threads: Int?

    /// Applied while the arguments are validated, before any kernel runs (the worker count is read once).
    func validate() throws {
        if let threads {
            guard (1...1024).contains(threads) else { throw ValidationError("--threads must be between 1 and 1024, got \(threads)") }
            setenv(Parallel.threadsVariable, String(threads), 1)
        }
        BLAS.threads = Parallel.workers
    }
}
