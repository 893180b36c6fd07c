import Foundation
import PivotIO
import XCTest

/// `readLimitedText`: text inputs are measured before they are read or parsed.
final class InputLimitsTests: XCTestCase {
    struct Unreadable: Error, Equatable { let why: String }

    private func temporaryFile(_ contents: String) throws -> String {
        let path = NSTemporaryDirectory() + "pivot-limits-\(UUID().uuidString).txt"
        try Data(contents.utf8).write(to: URL(fileURLWithPath: path))
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    private func limitError(_ body: () throws -> Any) -> InputLimitError? {
        do {
            _ = try body()
            XCTFail("expected an InputLimitError")
        } catch let error as InputLimitError {
            return error
        } catch {
            XCTFail("unexpected error \(error)")
        }
        return nil
    }

    func testWithinLimitsReadsTheText() throws {
        let path = try temporaryFile("a\nb\nc")
        let limits = TextLimits(maxBytes: 5, maxLines: 3, unit: "rows", linesKey: "max_rows")
        XCTAssertEqual(try readLimitedText(path, limits: limits) { Unreadable(why: $0) }.text, "a\nb\nc")
        // A final line break ends the last line; it does not add one.
        XCTAssertEqual(
            try readLimitedText(try temporaryFile("a\nb\nc\n"), limits: TextLimits(maxBytes: 6, maxLines: 3)) { Unreadable(why: $0) }.text,
            "a\nb\nc\n")
    }

    func testTooManyLinesNamesTheSettingThatRaisesTheLimit() throws {
        let path = try temporaryFile("a\nb\nc\nd\n")
        let error = limitError {
            try readLimitedText(path, limits: TextLimits(maxBytes: 100, maxLines: 3, unit: "rows", linesKey: "max_rows")) { Unreadable(why: $0) }
        }
        XCTAssertEqual(error?.description, "\(path): has 4 rows, over the limit of 3 rows; raise it with max_rows")
        XCTAssertEqual(
            error?.description(naming: { "--" + $0.replacingOccurrences(of: "_", with: "-") }),
            "\(path): has 4 rows, over the limit of 3 rows; raise it with --max-rows")
    }

    /// A 30 GB (sparse) file is refused from its size alone: no byte of it is read.
    func testHugeFileIsRefusedBeforeReading() throws {
        let path = try temporaryFile("")
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.truncate(atOffset: 30 << 30)
        try handle.close()
        let start = Date()
        let error = limitError { try readLimitedText(path, limits: .manifest) { Unreadable(why: $0) } }
        XCTAssertEqual(error?.description, "\(path): is \(30 << 30) bytes, over the limit of \(64 << 20) bytes")
        XCTAssertLessThan(Date().timeIntervalSince(start), 1)
    }

    func testUnreadableAndNonUTF8FilesUseTheCallersError() throws {
        XCTAssertThrowsError(try readLimitedText("/nonexistent/x.csv", limits: .manifest) { Unreadable(why: $0) }) {
            XCTAssertEqual($0 as? Unreadable, Unreadable(why: "cannot be read"))
        }
        XCTAssertThrowsError(try readLimitedText(NSTemporaryDirectory(), limits: .manifest) { Unreadable(why: $0) }) {
            XCTAssertEqual($0 as? Unreadable, Unreadable(why: "not a regular file"))
        }
        let path = NSTemporaryDirectory() + "pivot-limits-\(UUID().uuidString).bin"
        try Data([0x61, 0xFF, 0xFE, 0x0A]).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertThrowsError(try readLimitedText(path, limits: .manifest) { Unreadable(why: $0) }) {
            XCTAssertEqual($0 as? Unreadable, Unreadable(why: "not UTF-8 text"))
        }
    }
}
