import Foundation
import PivotTensor

/// Debian's OpenBLAS does not recognise recent AMD cores and falls back to AVX2 kernels (half speed).
/// The core type is read in OpenBLAS's constructor, so it has to be in the environment at exec time.
enum OpenBLASEnvironment {
    static let guardVariable = "PIVOT_OPENBLAS_REEXEC"

    /// Re-executes the process once with `OPENBLAS_CORETYPE=SKYLAKEX` when the CPU has AVX-512 and the user
    /// has not chosen a core type, or with the core type of the level PIVOT_MAX_ISA caps the kernels at
    /// (`HASWELL` for avx2, `PRESCOTT` for baseline), so that OpenBLAS runs that level's code too. Any failure
    /// simply continues with the current process.
    static func ensureCoreType() {
        let env = ProcessInfo.processInfo.environment
        guard env["OPENBLAS_CORETYPE"] == nil, env[guardVariable] == nil else { return }
        let core: String
        switch CPU.maxISA {
        case .avx512:
            guard CPU.hasAVX512 else { return }
            core = "SKYLAKEX"
        case .avx2: core = "HASWELL"
        case .baseline: core = "PRESCOTT"
        }
        setenv("OPENBLAS_CORETYPE", core, 1)
        setenv(guardVariable, "1", 1)
        let args = CommandLine.arguments
        var cargs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) }
        cargs.append(nil)
        execv("/proc/self/exe", &cargs)
        // execv only returns on failure: carry on with the kernels we have.
    }
}
