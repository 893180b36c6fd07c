import Foundation
import PivotFormats
import PivotTensor
import XCTest

final class SafeTensorsRoundTripTests: XCTestCase {
    private var directory = ""

    override func setUp() { directory = makeTemporaryDirectory() }
    override func tearDown() { removeDirectory(directory) }

    func testF32AndI64RoundTripWithMetadataScalarAndEmptyTensors() throws {
        let path = directory + "/model.safetensors"
        let weight = Tensor(shape: [2, 3], values: [1, -2.5, 3.25, 0, .infinity, -0.0])
        let scalar = Tensor(shape: [], values: [981])
        let empty = Tensor(zeros: [0, 4])
        let bias = Tensor(shape: [3], values: [0.1, 0.2, 0.3])
        let ids: [Int64] = [49406, 320, -1, Int64.max]
        try SafeTensorsWriter.write(
            [("z.weight", weight), ("scalar", scalar), ("empty", empty), ("a.bias", bias)],
            int64: [("ids", [2, 2], ids), ("no_ids", [0], [])],
            metadata: ["format": "pt", "quote\"and\nnewline": "ünïcode \\ value"],
            to: path)

        let file = try SafeTensorsFile(path: path)
        XCTAssertEqual(file.names, ["a.bias", "empty", "ids", "no_ids", "scalar", "z.weight"])
        XCTAssertEqual(file.count, 6)
        XCTAssertEqual(file.metadata, ["format": "pt", "quote\"and\nnewline": "ünïcode \\ value"])
        XCTAssertEqual(file.dataStart % 8, 0, "header must be padded to 8 bytes")

        let w = try file.floatTensor("z.weight")
        XCTAssertEqual(w.shape, [2, 3])
        XCTAssertEqual(w.scalars.map(\.bitPattern), weight.scalars.map(\.bitPattern))
        let s = try file.floatTensor("scalar")
        XCTAssertEqual(s.shape, [])
        XCTAssertEqual(s.scalars, [981])
        let e = try file.floatTensor("empty")
        XCTAssertEqual(e.shape, [0, 4])
        XCTAssertEqual(e.count, 0)
        XCTAssertEqual(try file.floatTensor("a.bias").scalars, [0.1, 0.2, 0.3])

        let (idShape, idValues) = try file.int64Values("ids")
        XCTAssertEqual(idShape, [2, 2])
        XCTAssertEqual(idValues, ids)
        XCTAssertEqual(try file.int64Values("no_ids").values, [])
        let (numShape, numbers) = try file.numericValues("ids")
        XCTAssertEqual(numShape, [2, 2])
        XCTAssertEqual(Array(numbers.prefix(3)), [49406, 320, -1])
        XCTAssertEqual(try file.numericValues("scalar").values, [981])

        // Data is laid out in the order given: float tensors, then int64 tensors, no gaps.
        let infoW = try XCTUnwrap(file.info("z.weight"))
        XCTAssertEqual(infoW.dtype, .F32)
        XCTAssertEqual(infoW.byteOffset, 0)
        XCTAssertEqual(infoW.byteCount, 24)
        XCTAssertEqual(infoW.fileOffset, file.dataStart)
        XCTAssertEqual(infoW.elementCount, 6)
        XCTAssertEqual(file.info("scalar")?.byteOffset, 24)
        XCTAssertEqual(file.info("empty")?.byteOffset, 28)
        XCTAssertEqual(file.info("empty")?.byteCount, 0)
        XCTAssertEqual(file.info("a.bias")?.byteOffset, 28)
        XCTAssertEqual(file.info("ids")?.byteOffset, 40)
        XCTAssertEqual(file.info("ids")?.dtype, .I64)
        XCTAssertEqual(file.fileSize, file.dataStart + 72)
        XCTAssertNil(file.info("missing"))
        XCTAssertFalse(file.contains("missing"))

        let raw = try file.rawBytes("a.bias")
        XCTAssertEqual(Array(raw), floatBytes([0.1, 0.2, 0.3]))
        XCTAssertEqual(directoryListing(directory), ["model.safetensors"], "no temporary files may remain")
    }

    func testFloatTensorOwnsItsMemoryAfterFileIsReleased() throws {
        let path = directory + "/t.safetensors"
        try SafeTensorsWriter.write([("x", Tensor(shape: [4], values: [1, 2, 3, 4]))], to: path)
        var file: SafeTensorsFile? = try SafeTensorsFile(path: path)
        let tensor = try XCTUnwrap(file).floatTensor("x")
        file = nil
        XCTAssertNil(file)
        XCTAssertEqual(tensor.scalars, [1, 2, 3, 4])
    }

    func testWriterReplacesAnExistingFile() throws {
        let path = directory + "/t.safetensors"
        try SafeTensorsWriter.write([("old", Tensor(shape: [1000], values: Array(repeating: 1, count: 1000)))], to: path)
        try SafeTensorsWriter.write([("new", Tensor(shape: [1], values: [7]))], to: path)
        let file = try SafeTensorsFile(path: path)
        XCTAssertEqual(file.names, ["new"])
        XCTAssertEqual(try file.floatTensor("new").scalars, [7])
        XCTAssertEqual(directoryListing(directory), ["t.safetensors"])
    }

    func testWriterF16AndBF16() throws {
        let values: [Float] = [0, -0.0, 1, -2.5, 65504, 1e-7, .infinity, 3.140625, 1 + 1.0 / 2048, 70000]
        let tensor = Tensor(shape: [2, 5], values: values)
        let p16 = directory + "/h.safetensors"
        try SafeTensorsWriter.write([("x", tensor)], metadata: ["k": "v"], dtype: .F16, to: p16)
        let f16 = try SafeTensorsFile(path: p16)
        XCTAssertEqual(f16.info("x")?.dtype, .F16)
        XCTAssertEqual(f16.info("x")?.byteCount, 20)
        let expected16 = values.map { Float(Float16($0)) }
        XCTAssertEqual(try f16.floatTensor("x").scalars.map(\.bitPattern), expected16.map(\.bitPattern))
        XCTAssertEqual(try f16.floatTensor("x").shape, [2, 5])

        let pbf = directory + "/b.safetensors"
        try SafeTensorsWriter.write([("x", tensor)], dtype: .BF16, to: pbf)
        let bf = try SafeTensorsFile(path: pbf)
        XCTAssertEqual(bf.info("x")?.dtype, .BF16)
        let readBack = try bf.floatTensor("x").scalars
        XCTAssertEqual(readBack[0], 0)
        XCTAssertEqual(readBack[1].bitPattern, (-0.0 as Float).bitPattern)
        XCTAssertEqual(readBack[2], 1)
        XCTAssertEqual(readBack[3], -2.5)
        XCTAssertEqual(readBack[6], .infinity)
        XCTAssertEqual(readBack[7], 3.140625)
        XCTAssertEqual(readBack[8], 1, "1 + 2^-11 rounds to 1 in bf16")
        XCTAssertEqual(readBack[9], 70144, "70000 rounds to the nearest bf16")
    }

    func testReadsHandWrittenF16BF16F64AndIntegersAtUnalignedOffsets() throws {
        // Header length 5 + padding so that the data section starts at an odd offset (13).
        let header =
            #"{"h":{"dtype":"F16","shape":[5],"data_offsets":[0,10]},"#
            + #""b":{"dtype":"BF16","shape":[3],"data_offsets":[10,16]},"#
            + #""d":{"dtype":"F64","shape":[2],"data_offsets":[16,32]},"#
            + #""f":{"dtype":"F32","shape":[2],"data_offsets":[32,40]},"#
            + #""i":{"dtype":"I32","shape":[1],"data_offsets":[40,44]},"#
            + #""t":{"dtype":"I16","shape":[2],"data_offsets":[44,48]},"#
            + #""s":{"dtype":"I8","shape":[1],"data_offsets":[48,49]},"#
            + #""q":{"dtype":"BOOL","shape":[2],"data_offsets":[49,51]}}"#
        var padded = header
        while (8 + padded.utf8.count) % 2 == 0 { padded += " " }  // make the data start odd
        var data: [UInt8] = []
        data += littleEndianBytes([UInt16(0x3C00), 0xC000, 0x0001, 0x7C00, 0x8000])  // 1, -2, 2^-24, inf, -0
        data += littleEndianBytes([UInt16(0x3F80), 0xC049, 0x7F80])  // 1, -3.140625, inf
        data += littleEndianBytes([(0.25 as Double).bitPattern, (-1e300 as Double).bitPattern])
        data += floatBytes([1.5, -7])
        data += littleEndianBytes([Int32(-123456)])
        data += littleEndianBytes([Int16(-2), 300])
        data += [0xFF]
        data += [0, 2]
        let path = directory + "/odd.safetensors"
        writeBytes(safetensorsBytes(header: padded, data: data), to: path)

        let file = try SafeTensorsFile(path: path)
        XCTAssertEqual(file.dataStart % 2, 1)
        XCTAssertEqual(
            try file.floatTensor("h").scalars.map(\.bitPattern),
            [1, -2, Float(bitPattern: 0x3380_0000), .infinity, -0.0].map(\.bitPattern))
        XCTAssertEqual(try file.floatTensor("b").scalars, [1, -3.140625, .infinity])
        XCTAssertEqual(try file.floatTensor("d").scalars, [0.25, -.infinity])
        XCTAssertEqual(try file.floatTensor("f").scalars, [1.5, -7])
        XCTAssertEqual(try file.numericValues("h").values, [1, -2, 0x1p-24, .infinity, 0])
        XCTAssertEqual(try file.numericValues("d").values, [0.25, -1e300])
        XCTAssertEqual(try file.int64Values("i").values, [-123456])
        XCTAssertEqual(try file.numericValues("t").values, [-2, 300])
        XCTAssertEqual(try file.int64Values("s").values, [-1])
        XCTAssertEqual(try file.int64Values("q").values, [0, 1])
        XCTAssertEqual(try file.numericValues("q").values, [0, 1])
    }

    func testReadsFileWrittenByReferencePythonLibrary() throws {
        let bytes = try XCTUnwrap(Data(base64Encoded: ReferenceFixture.base64, options: .ignoreUnknownCharacters))
        let path = directory + "/reference.safetensors"
        writeBytes(Array(bytes), to: path)
        let file = try SafeTensorsFile(path: path)
        XCTAssertEqual(file.metadata, ReferenceFixture.metadata)
        XCTAssertEqual(file.names, ReferenceFixture.dtypes.keys.sorted())
        for (name, dtype) in ReferenceFixture.dtypes {
            XCTAssertEqual(file.info(name)?.dtype.rawValue, dtype, name)
        }
        for (name, shape, values) in ReferenceFixture.floats {
            let tensor = try file.floatTensor(name)
            XCTAssertEqual(tensor.shape, shape, name)
            XCTAssertEqual(tensor.scalars.map(\.bitPattern), values.map(\.bitPattern), name)
        }
        for (name, shape, values) in ReferenceFixture.integers {
            let (readShape, readValues) = try file.int64Values(name)
            XCTAssertEqual(readShape, shape, name)
            XCTAssertEqual(readValues, values, name)
        }
    }

    func testWrittenFileHasReferenceLayout() throws {
        // The exact bytes the reference library writes for {"a": float32 [1, 2]}.
        let path = directory + "/exact.safetensors"
        try SafeTensorsWriter.write([("a", Tensor(shape: [2], values: [1, 2]))], to: path)
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        var padded = header
        while padded.utf8.count % 8 != 0 { padded += " " }
        XCTAssertEqual(bytes, safetensorsBytes(header: padded, data: floatBytes([1, 2])))
    }
}
