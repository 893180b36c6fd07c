import ArgumentParser
import Foundation
import Pivot
import PivotLoading
import PivotIO

/// Writes a line to standard error (progress and warnings; standard output is for results).
func note(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}

/// Hands back the fp32 copies of the networks' matrix weights when every pass the command will run (under
/// `plan`, by default the pipeline's) is bf16 (`StableDiffusion.releaseFP32Weights`); call it after
/// embeddings and LoRA are applied.
func releaseFP32WeightsIfBF16Only(_ sd: StableDiffusion, plan: PrecisionPlan? = nil, withGradients: Bool) {
    if (plan ?? sd.precision).isBF16Only(withGradients: withGradients) { sd.releaseFP32Weights() }
}

/// Prints an Encodable value as one line of JSON.
func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// The command-line spelling of a library setting key: `inner_steps` → `--inner-steps`.
func flagName(_ key: String) -> String { "--" + key.replacingOccurrences(of: "_", with: "-") }

/// Runs `body`, turning a library error that names settings into a usage error that names flags (for
/// checks made while the arguments are validated, where ArgumentParser prints the usage line).
func flagged<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as SettingsNamingError {
        throw ValidationError(error.description(naming: flagName))
    }
}

/// One line of `--json` output per file a command wrote (generate, invert, edit, convert, encode): what it is,
/// its size, how it was made and how long the command took. Absent fields are left out.
struct OutputLine: Encodable {
    var command: String
    var path: String
    /// "image", "inversion", "attention-maps", "model", "embeddings".
    var kind: String
    var width: Int?
    var height: Int?
    /// Inversion method (invert, edit).
    var method: String?
    var steps: Int?
    /// The precision plan the networks ran under.
    var precision: String?
    /// Target prompt of an edit output.
    var target: String?
    /// Seconds since the command started (after argument parsing).
    var seconds: Double

    init(_ command: String, path: String, kind: String, started: Date) {
        self.command = command
        self.path = path
        self.kind = kind
        seconds = (Date().timeIntervalSince(started) * 1000).rounded() / 1000
    }
}

/// `--json`: machine-readable results on standard output (progress and warnings stay on standard error).
struct JSONOutputOption: ParsableArguments {
    @Flag(name: .long, help: "Print one JSON object per file written on standard output.")
    var json = false

    /// Prints `line` when `--json` was given.
    func emit(_ line: OutputLine) throws {
        if json { try printJSON(line) }
    }
}
