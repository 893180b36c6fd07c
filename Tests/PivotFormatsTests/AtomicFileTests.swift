import CPivotIO
import Foundation
import PivotIO
import XCTest

/// The shared atomic-write mechanism and its clean-up of temporary files on interruption.
final class AtomicFileTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "pivot-atomic-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    func testRegisteredTemporaryFilesAreRemovedByTheCleanup() throws {
        let path = directory + "/.out.png.tmp-1-2"
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data([1, 2, 3])))
        let slot = pv_register_temp(path)
        XCTAssertGreaterThanOrEqual(slot, 0)
        XCTAssertEqual(pv_cleanup_temps(), 1)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
        pv_unregister_temp(slot)
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data([1])))
        XCTAssertEqual(pv_cleanup_temps(), 0, "an unregistered file is left alone")
    }

    func testWriteReplacesAtomicallyAndUnregisters() throws {
        let path = directory + "/file.bin"
        try AtomicFile.write(to: path) { fd in _ = [UInt8](repeating: 7, count: 10).withUnsafeBytes { write(fd, $0.baseAddress, 10) } }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)).count, 10)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), ["file.bin"])
        XCTAssertEqual(pv_cleanup_temps(), 0, "nothing stays registered after a write")
    }

    func testFailingBodyLeavesNothing() throws {
        struct Boom: Error {}
        XCTAssertThrowsError(try AtomicFile.write(to: directory + "/file.bin") { _ in throw Boom() }) { XCTAssertTrue($0 is Boom) }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), [])
    }

    func testRefusals() throws {
        let input = directory + "/photo.png"
        XCTAssertTrue(FileManager.default.createFile(atPath: input, contents: Data([1])))
        XCTAssertThrowsError(try AtomicFile.write(to: input, protecting: [input]) { _ in }) {
            XCTAssertEqual($0 as? AtomicFile.Failure, .protectedInput(input))
        }
        XCTAssertThrowsError(try AtomicFile.write(to: directory) { _ in }) { XCTAssertEqual($0 as? AtomicFile.Failure, .isDirectory) }
        XCTAssertEqual(escapedForOneLine("a\nb"), "a\\u{a}b")
    }
}
