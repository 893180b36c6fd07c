import Foundation
import PivotFormats
import PivotTensor
import XCTest

/// The writer validates its input and never leaves a partial or temporary file behind.
final class SafeTensorsWriterTests: XCTestCase {
    private var directory = ""

    override func setUp() { directory = makeTemporaryDirectory() }
    override func tearDown() { removeDirectory(directory) }

    private let small = Tensor(shape: [2], values: [1, 2])

    func testMissingDirectoryFailsWithoutLeavingFiles() throws {
        let path = directory + "/no/such/dir/model.safetensors"
        assertSafeTensorsError(
            try SafeTensorsWriter.write([("x", small)], to: path), file: path,
            contains: ["write failed", "temporary file", "No such file"])
        XCTAssertEqual(directoryListing(directory), [])
    }

    func testDestinationIsADirectoryRemovesTemporaryFile() throws {
        let path = directory + "/occupied"
        try FileManager.default.createDirectory(atPath: path + "/child", withIntermediateDirectories: true)
        assertSafeTensorsError(
            try SafeTensorsWriter.write([("x", small)], to: path), file: path,
            contains: ["write failed", "is a directory"])
        XCTAssertEqual(directoryListing(directory), ["occupied"], "no temporary file may be left")
        XCTAssertEqual(directoryListing(path), ["child"], "the destination must be untouched")
    }

    func testFailedWriteKeepsThePreviousFile() throws {
        let path = directory + "/model.safetensors"
        try SafeTensorsWriter.write([("old", small)], to: path)
        assertSafeTensorsError(
            try SafeTensorsWriter.write([("a", small), ("a", small)], to: path), file: path,
            contains: ["'a' appears more than once"])
        XCTAssertEqual(try SafeTensorsFile(path: path).names, ["old"])
        XCTAssertEqual(directoryListing(directory), ["model.safetensors"])
    }

    func testInvalidArguments() throws {
        let path = directory + "/m.safetensors"
        assertSafeTensorsError(
            try SafeTensorsWriter.write([("x", small)], int64: [("x", [1], [1])], to: path), file: path,
            contains: ["'x' appears more than once"])
        assertSafeTensorsError(
            try SafeTensorsWriter.write([("__metadata__", small)], to: path), file: path,
            contains: ["'__metadata__' is reserved"])
        assertSafeTensorsError(
            try SafeTensorsWriter.write([], int64: [("ids", [2, 2], [1, 2, 3])], to: path), file: path,
            contains: ["tensor 'ids' has shape [2, 2] but 3 values"])
        assertSafeTensorsError(
            try SafeTensorsWriter.write([], int64: [("ids", [-1], [])], to: path), file: path,
            contains: ["tensor 'ids' has shape [-1]"])
        assertSafeTensorsError(
            try SafeTensorsWriter.write([], int64: [("ids", [Int.max, 2], [])], to: path), file: path,
            contains: ["tensor 'ids'"])
        assertSafeTensorsError(
            try SafeTensorsWriter.write([("x", small)], dtype: .I32, to: path), file: path,
            contains: ["F32, F16 or BF16, not I32"])
        XCTAssertEqual(
            assertSafeTensorsError(try SafeTensorsWriter.write([("x", small)], to: ""), file: nil, contains: ["empty"]),
            .emptyPath)
        assertSafeTensorsError(
            try SafeTensorsWriter.write([("x", small)], to: directory + "/"), file: directory + "/",
            contains: ["does not name a file"])
        XCTAssertEqual(directoryListing(directory), [], "failed writes must not create files")
    }

    func testRelativePathAndEmptyFile() throws {
        let previous = FileManager.default.currentDirectoryPath
        XCTAssertTrue(FileManager.default.changeCurrentDirectoryPath(directory))
        defer { _ = FileManager.default.changeCurrentDirectoryPath(previous) }
        try SafeTensorsWriter.write([], to: "empty.safetensors")
        let file = try SafeTensorsFile(path: "empty.safetensors")
        XCTAssertEqual(file.names, [])
        XCTAssertEqual(file.fileSize, 16, "8-byte length + '{}' padded to 8")
        XCTAssertEqual(directoryListing(directory), ["empty.safetensors"])
    }

    func testLargeTensorRoundTripsThroughChunkedHalfWriter() throws {
        let count = 200_003  // more than one staging chunk, odd length
        let tensor = Tensor(uninitialized: [count])
        for i in 0..<count { tensor.data[i] = Float(i % 2048) - 1024 }  // all exactly representable in fp16
        let path = directory + "/big.safetensors"
        try SafeTensorsWriter.write([("big", tensor)], dtype: .F16, to: path)
        let file = try SafeTensorsFile(path: path)
        XCTAssertEqual(file.info("big")?.byteCount, 2 * count)
        let read = try file.floatTensor("big")
        var mismatches = 0
        for i in 0..<count where read.data[i] != tensor.data[i] { mismatches += 1 }
        XCTAssertEqual(mismatches, 0)
    }
}
