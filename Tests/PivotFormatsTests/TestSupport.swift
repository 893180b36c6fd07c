import Foundation
import PivotFormats
import XCTest

/// A fresh directory under the system temporary directory; remove it with `removeDirectory(_:)`.
func makeTemporaryDirectory() -> String {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("pivot-formats-tests-\(UUID().uuidString)", isDirectory: true)
    try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url.path
}

/// Removes a directory made by `makeTemporaryDirectory()`.
func removeDirectory(_ path: String) {
    try? FileManager.default.removeItem(atPath: path)
}

/// The names in `directory`, sorted.
func directoryListing(_ directory: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
}

/// Writes `bytes` to `path`, replacing any existing file.
func writeBytes(_ bytes: [UInt8], to path: String) {
    XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bytes)), "cannot create \(path)")
}

/// The raw bytes of a safetensors file: the little-endian length of `header` (or `length` when given),
/// the header's UTF-8 bytes, then `data`.
func safetensorsBytes(header: String, data: [UInt8] = [], length: UInt64? = nil) -> [UInt8] {
    safetensorsBytes(headerBytes: Array(header.utf8), data: data, length: length)
}

/// As `safetensorsBytes(header:data:length:)` with the header given as raw bytes.
func safetensorsBytes(headerBytes: [UInt8], data: [UInt8] = [], length: UInt64? = nil) -> [UInt8] {
    var bytes: [UInt8] = []
    withUnsafeBytes(of: (length ?? UInt64(headerBytes.count)).littleEndian) { bytes.append(contentsOf: $0) }
    bytes.append(contentsOf: headerBytes)
    bytes.append(contentsOf: data)
    return bytes
}

/// The little-endian bytes of `values`.
func littleEndianBytes<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
    var bytes: [UInt8] = []
    for value in values { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }
    return bytes
}

/// The little-endian bytes of fp32 `values`.
func floatBytes(_ values: [Float]) -> [UInt8] { littleEndianBytes(values.map(\.bitPattern)) }

/// Asserts that `body` throws a `SafeTensorsError` whose description is one line, names `file` (when
/// given) and contains every string in `contains`; returns the error.
@discardableResult
func assertSafeTensorsError<T>(
    _ body: @autoclosure () throws -> T, file: String?, contains: [String],
    sourceFile: StaticString = #filePath, line: UInt = #line
) -> SafeTensorsError? {
    do {
        _ = try body()
        XCTFail("expected a SafeTensorsError containing \(contains)", file: sourceFile, line: line)
        return nil
    } catch let error as SafeTensorsError {
        let text = error.description
        XCTAssertFalse(text.contains("\n") || text.contains("\r"), "description spans lines: \(text)", file: sourceFile, line: line)
        if let file {
            XCTAssertTrue(text.hasPrefix(file + ": "), "description does not start with the file: \(text)", file: sourceFile, line: line)
        }
        for part in contains {
            XCTAssertTrue(text.contains(part), "description '\(text)' lacks '\(part)'", file: sourceFile, line: line)
        }
        return error
    } catch {
        XCTFail("expected a SafeTensorsError, got \(type(of: error)): \(error)", file: sourceFile, line: line)
        return nil
    }
}
