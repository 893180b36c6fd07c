import ArgumentParser
import Pivot
import PivotLoading

extension PrecisionChoice: ExpressibleByArgument {}

/// `--precision`, on every command that runs a network.
struct PrecisionOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Arithmetic of the matrix work: auto (bf16 network passes where the processor has native bf16, fp32 gradients but for learn; fp32 elsewhere), fp32 (the reference path), or bf16 (bf16 inputs, fp32 accumulation).",
            valueName: "auto|fp32|bf16"))
    var precision: PrecisionChoice = .auto

    /// The resolved plan; announces emulated bf16 on standard error.
    func plan() throws -> PrecisionPlan {
        let p = try PrecisionPlan.resolve(precision)
        if p.emulated { note("warning: \(p.reason)") }
        return p
    }
}
