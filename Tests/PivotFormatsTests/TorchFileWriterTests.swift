import Foundation
@testable import PivotFormats
import PivotTensor
import XCTest

/// Automatic1111 textual-inversion files written by `TorchFileWriter` read back through `TorchFile`.
final class TorchFileWriterTests: XCTestCase {
    private var directory = ""

    override func setUp() { directory = makeTemporaryDirectory() }
    override func tearDown() { removeDirectory(directory) }

    /// Values that must survive bit for bit: signed zeros, a subnormal, extremes, a NaN with a payload.
    private let awkward: [Float] = [
        0, -0.0, 1, -1, 0.1, Float(bitPattern: 0x0001_1234), .greatestFiniteMagnitude, -.leastNormalMagnitude, .infinity, -.infinity,
        Float(bitPattern: 0x7FC0_1234), 3.14159274,
    ]

    private func vectors(_ rows: Int, _ columns: Int) -> Tensor {
        let values = (0..<(rows * columns)).map { i in i < awkward.count ? awkward[i] : Float(i) * 0.37 - 5 }
        return Tensor(shape: [rows, columns], values: values)
    }

    /// Asserts that `body` throws a one-line `TorchWriteError` starting with `file` and containing `contains`.
    @discardableResult
    private func assertWriteError(
        _ body: @autoclosure () throws -> Void, file: String, contains: [String], line: UInt = #line
    ) -> TorchWriteError? {
        do {
            try body()
            XCTFail("expected a TorchWriteError", line: line)
        } catch let error as TorchWriteError {
            let text = error.description
            XCTAssertFalse(text.contains("\n"), "description spans lines: \(text)", line: line)
            XCTAssertTrue(text.hasPrefix(file + ": "), "description does not start with the file: \(text)", line: line)
            for part in contains { XCTAssertTrue(text.contains(part), "'\(text)' lacks '\(part)'", line: line) }
            return error
        } catch {
            XCTFail("expected a TorchWriteError, got \(error)", line: line)
        }
        return nil
    }

    func testEmbeddingRoundTripsThroughTorchFile() throws {
        let path = directory + "/my-style.pt"
        let embedding = vectors(3, 8)
        try TorchFileWriter.writeA1111Embedding(name: "my-style", vectors: embedding, step: 1500, to: path)
        XCTAssertEqual(directoryListing(directory), ["my-style.pt"], "no temporary file is left")

        let file = try TorchFile(path: path)
        let root = file.root
        guard case let .dict(pairs) = root else { return XCTFail("the root is not a dict: \(root)") }
        XCTAssertEqual(
            pairs.map { $0.key.stringValue ?? "?" },
            ["string_to_token", "string_to_param", "name", "step", "sd_checkpoint", "sd_checkpoint_name"])
        XCTAssertEqual(root["name"]?.stringValue, "my-style")
        XCTAssertEqual(root["step"]?.intValue, 1500)
        XCTAssertEqual(root["string_to_token"]?["*"]?.intValue, 265)
        for key in ["sd_checkpoint", "sd_checkpoint_name"] {
            guard case .none? = root[key] else { return XCTFail("\(key) is not None: \(String(describing: root[key]))") }
        }
        let ref = try XCTUnwrap(root["string_to_param"]?["*"]?.tensorValue)
        XCTAssertEqual(ref, TorchTensorRef(storageKey: "0", dtype: .F32, shape: [3, 8], strides: [8, 1], offset: 0))
        XCTAssertEqual(file.tensors().map(\.name), ["string_to_param.*"])
        let read = try file.floatTensor(ref)
        XCTAssertEqual(read.shape, [3, 8])
        XCTAssertEqual(read.scalars.map(\.bitPattern), embedding.scalars.map(\.bitPattern), "bit for bit")
    }

    func testIntegersNamesAndShapesOfEverySize() throws {
        let path = directory + "/e.pt"
        let steps = [0, 255, 256, 65535, 65536, -1, -129, Int(Int32.max), Int(Int32.min), 1 << 40, -(1 << 40), Int.max, Int.min]
        for (i, step) in steps.enumerated() {
            let name = i.isMultiple(of: 2) ? "ñame 🎨 \(i)" : ""
            let shape = [[1, 1], [1, 768], [75, 1024], [2, 300]][i % 4]
            let embedding = vectors(shape[0], shape[1])
            try TorchFileWriter.writeA1111Embedding(name: name, vectors: embedding, step: step, to: path)
            let file = try TorchFile(path: path)
            XCTAssertEqual(file.root["step"]?.intValue, step)
            XCTAssertEqual(file.root["name"]?.stringValue, name)
            let ref = try XCTUnwrap(file.root["string_to_param"]?["*"]?.tensorValue)
            XCTAssertEqual(ref.shape, shape)
            XCTAssertEqual(try file.floatTensor(ref).scalars.map(\.bitPattern), embedding.scalars.map(\.bitPattern))
        }
        XCTAssertEqual(directoryListing(directory), ["e.pt"], "overwriting leaves only the file")
    }

    func testArchiveLayoutAlignmentAndChecksums() throws {
        let path = directory + "/e.pt"
        try TorchFileWriter.writeA1111Embedding(name: "x", vectors: vectors(2, 5), step: 7, to: path)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        try bytes.withUnsafeBytes { buffer in
            let archive = try ZipArchive(bytes: buffer, file: path)
            XCTAssertEqual(archive.entries.map(\.name), ["archive/data.pkl", "archive/byteorder", "archive/data/0", "archive/version"])
            for entry in archive.entries {
                XCTAssertEqual(entry.method, 0, entry.name)
                let range = try archive.dataRange(of: entry)
                XCTAssertEqual(range.lowerBound % 64, 0, "\(entry.name) data starts at \(range.lowerBound)")
                let header = Int(entry.localHeaderOffset)
                let stored = try XCTUnwrap(ZipArchive.read(UInt32.self, buffer, at: header + 14))
                XCTAssertEqual(stored, TorchFileWriter.crc32(Array(buffer[range])), "\(entry.name) CRC-32")
            }
            let version = try XCTUnwrap(archive.entry(named: "archive/version"))
            XCTAssertEqual(String(decoding: buffer[try archive.dataRange(of: version)], as: UTF8.self), "3\n")
            let order = try XCTUnwrap(archive.entry(named: "archive/byteorder"))
            XCTAssertEqual(String(decoding: buffer[try archive.dataRange(of: order)], as: UTF8.self), "little")
            let storage = try XCTUnwrap(archive.entry(named: "archive/data/0"))
            XCTAssertEqual(storage.uncompressedSize, 40)
        }
        XCTAssertEqual(TorchFileWriter.crc32(Array("123456789".utf8)), 0xCBF4_3926, "the standard CRC-32 check value")
        XCTAssertEqual(TorchFileWriter.crc32([]), 0)
    }

    func testTensorsThatAreNotNonEmpty2DAreRefused() {
        let path = directory + "/bad.pt"
        for shape in [[8], [2, 2, 2], [0, 8], [4, 0], []] {
            let tensor = Tensor(zeros: shape)
            assertWriteError(
                try TorchFileWriter.writeA1111Embedding(name: "bad", vectors: tensor, step: 0, to: path), file: path,
                contains: ["non-empty 2-D", "\(shape)"])
        }
        XCTAssertEqual(directoryListing(directory), [], "nothing is written")
    }

    func testMissingDirectoryFailsWithoutLeavingFiles() {
        let path = directory + "/no/such/dir/e.pt"
        let error = assertWriteError(
            try TorchFileWriter.writeA1111Embedding(name: "e", vectors: vectors(1, 4), step: 1, to: path), file: path,
            contains: ["write failed", "temporary file", "No such file"])
        if case .writeFailed? = error {} else { XCTFail("expected writeFailed, got \(String(describing: error))") }
        XCTAssertEqual(directoryListing(directory), [])
    }

    func testFailedWriteKeepsThePreviousFile() throws {
        let path = directory + "/e.pt"
        try TorchFileWriter.writeA1111Embedding(name: "old", vectors: vectors(1, 4), step: 1, to: path)
        assertWriteError(
            try TorchFileWriter.writeA1111Embedding(name: "new", vectors: Tensor(zeros: [4]), step: 2, to: path), file: path,
            contains: ["2-D"])
        XCTAssertEqual(try TorchFile(path: path).root["name"]?.stringValue, "old")
        let occupied = directory + "/occupied"
        try FileManager.default.createDirectory(atPath: occupied, withIntermediateDirectories: true)
        assertWriteError(
            try TorchFileWriter.writeA1111Embedding(name: "e", vectors: vectors(1, 4), step: 1, to: occupied), file: occupied,
            contains: ["is a directory"])
        XCTAssertEqual(directoryListing(directory), ["e.pt", "occupied"])
        assertWriteError(try TorchFileWriter.writeA1111Embedding(name: "e", vectors: vectors(1, 4), step: 1, to: ""), file: "", contains: [])
    }
}
