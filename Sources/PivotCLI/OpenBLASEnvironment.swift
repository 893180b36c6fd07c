import Foundation
import PivotTensor

/// Debian's OpenBLAS does not recognise recent AMD cores and falls back to AVX2 kernels (half speed).
/// The core type is read in OpenBLAS's constructor, so it has to be in the environment at exec time.
enum OpenBLASEnvironment {
    static let guardVariable = "PIVOT_OPENBLAS_REEXEC"

    /// Re-executes the process once with `OPENBLAS_CORETYPE=SKYLAKEX` when the CPU has AVX-512 and the user
    /// has not chosen a core type. Any failure simply continues with the current process.
    static func ensureCoreType() {
        let env = ProcessInfo.processInfo.environment
        guard env["OPENBLAS_CORETYPE"] == nil, env[guardVariable] == nil, CPU.hasAVX512 else { return }
        setenv("OPENBLAS_CORETYPE", "SKYLAKEX", 1)
        setenv(guardVariable, "1", 1)
        let args = CommandLine.arguments
        var cargs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) }
        cargs.append(nil)
        execv("/proc/self/exe", &cargs)
        // execv only returns on failure: carry on with the kernels we have.
    }
}
