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
