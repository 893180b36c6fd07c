// PivotCLI (the `pivot` binary) owns argument parsing, help text, progress lines and the mapping of flags to
// library settings (and of library setting keys back to flags in messages). A command parses, calls the
// library once, and writes what it returns.
//
// It must not hold pipeline logic: what an edit, an inversion or a batch does lives in Pivot and PivotBatch.
import ArgumentParser
import Foundation
import Pivot
import PivotLoading
import PivotIO
import PivotTensor

// OpenBLAS picks its kernels in a library constructor, before main: re-run once with the core type set.
OpenBLASEnvironment.ensureCoreType()
if let cap = CPU.unknownISACap {
    let shown = cap.count > 40 ? String(cap.prefix(40)) + "…" : cap  // quoted and bounded: the line stays one short line
    let message = "\(CPU.isaCapVariable)=\"\(shown)\" names no instruction-set level: use avx512, avx2 or baseline"
    FileHandle.standardError.write(Data("pivot: error: \(message)\n".utf8))
    exit(1)
}

/// pivot: edit real photos with Stable Diffusion through inversion, on the CPU.
struct PivotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pivot",
        abstract: "Edit real photos with Stable Diffusion through inversion, on the CPU.",
        version: pivotVersion,
        subcommands: [
            InfoCommand.self, GenerateCommand.self, InvertCommand.self, EditCommand.self, BatchCommand.self, LearnCommand.self,
            TokenizeCommand.self,
            EncodeCommand.self, ConvertCommand.self,
            ComponentCommand.self,
            BenchCommand.self,
            EvalCommand.self,
            ServeCommand.self,
        ])
}

var command: ParsableCommand
do {
    command = try PivotCommand.parseAsRoot()
} catch {
    PivotCommand.exit(withError: error)  // usage errors, --help and --version
}
do {
    try command.run()
} catch let error where String(reflecting: type(of: error)).hasPrefix("ArgumentParser.") {
    PivotCommand.exit(withError: error)  // help, usage errors and exit codes raised while running
} catch {
    FileHandle.standardError.write(Data("pivot: error: \(oneLineDescription(of: error, naming: flagName))\n".utf8))
    exit(1)
}
