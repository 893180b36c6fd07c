import ArgumentParser
import Foundation
import Pivot
import PivotLoading
import PivotIO

/// Writes a line to standard error (progress and warnings; standard output is for results).
func note(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
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
