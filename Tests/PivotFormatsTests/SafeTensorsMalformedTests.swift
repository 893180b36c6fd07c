import Foundation
import PivotFormats
import XCTest

/// Every kind of malformed input must throw a `SafeTensorsError` with a one-line message naming the
/// file, the tensor (where relevant) and the problem; none may trap or hang.
final class SafeTensorsMalformedTests: XCTestCase {
    private var directory = ""

    override func setUp() { directory = makeTemporaryDirectory() }
    override func tearDown() { removeDirectory(directory) }

    /// Writes `bytes` to a fresh file and asserts that opening it fails with a message containing `contains`.
    @discardableResult
    private func assertRejected(
        _ bytes: [UInt8], _ contains: [String],
        sourceFile: StaticString = #filePath, line: UInt = #line
    ) -> SafeTensorsError? {
        let path = directory + "/bad-\(UUID().uuidString).safetensors"
        writeBytes(bytes, to: path)
        return assertSafeTensorsError(
            try SafeTensorsFile(path: path), file: path, contains: contains,
            sourceFile: sourceFile, line: line)
    }

    /// As `assertRejected`, for a header string and data bytes.
    @discardableResult
    private func assertRejected(
        header: String, data: [UInt8] = [], _ contains: [String],
        sourceFile: StaticString = #filePath, line: UInt = #line
    ) -> SafeTensorsError? {
        assertRejected(safetensorsBytes(header: header, data: data), contains, sourceFile: sourceFile, line: line)
    }

    private func entry(_ name: String, _ dtype: String, _ shape: String, _ offsets: String) -> String {
        #""\#(name)":{"dtype":"\#(dtype)","shape":\#(shape),"data_offsets":\#(offsets)}"#
    }

    // MARK: Paths

    func testPathProblems() throws {
        XCTAssertEqual(assertSafeTensorsError(try SafeTensorsFile(path: ""), file: nil, contains: ["empty"]), .emptyPath)
        let missing = directory + "/missing.safetensors"
        let error = assertSafeTensorsError(try SafeTensorsFile(path: missing), file: missing, contains: ["cannot open", "No such file"])
        guard case .cannotOpen? = error else { return XCTFail("expected cannotOpen, got \(String(describing: error))") }
        XCTAssertEqual(
            assertSafeTensorsError(try SafeTensorsFile(path: directory), file: directory, contains: ["not a regular file"]),
            .notARegularFile(file: directory))
    }

    func testFIFOIsRejectedWithoutBlocking() throws {
        let fifo = directory + "/fifo.safetensors"
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        assertSafeTensorsError(try SafeTensorsFile(path: fifo), file: fifo, contains: ["not a regular file"])
    }

    // MARK: Length prefix

    func testFilesShorterThanEightBytes() throws {
        let error = assertRejected([], ["0 bytes", "8-byte"])
        guard case .fileTooSmall(_, 0)? = error else { return XCTFail("got \(String(describing: error))") }
        assertRejected([2, 0, 0, 0, 0, 0, 0], ["7 bytes", "shorter than the 8-byte header length prefix"])
    }

    func testHeaderLengthBeyondFileIsTruncation() throws {
        let full = safetensorsBytes(header: "{" + entry("w", "F32", "[2]", "[0,8]") + "}", data: floatBytes([1, 2]))
        // Cut inside the header.
        assertRejected(Array(full.prefix(20)), ["header length \(full.count - 16)", "truncated"])
        // Claim a header longer than the file.
        assertRejected(safetensorsBytes(header: "{}", length: 3), ["header length 3 exceeds the 2 bytes"])
        assertRejected(safetensorsBytes(header: "{}", length: UInt64.max), ["header length 18446744073709551615", "limit"])
    }

    func testHeaderLengthOverLimit() throws {
        let error = assertRejected(safetensorsBytes(header: "{}", length: 100_000_001), ["100000001", "100000000-byte limit"])
        guard case .headerLengthInvalid? = error else { return XCTFail("got \(String(describing: error))") }
    }

    func testTruncatedDataSection() throws {
        let full = safetensorsBytes(
            header: "{" + entry("conv.weight", "F32", "[3,3]", "[0,36]") + "}",
            data: floatBytes(Array(repeating: 1, count: 9)))
        assertRejected(Array(full.dropLast(4)), ["tensor 'conv.weight'", "[0, 36]", "past the end of the 32-byte data section"])
    }

    // MARK: Header text

    func testHeaderNotJSON() throws {
        assertRejected(header: "{not json", ["invalid header", "not valid JSON"])
        assertRejected(header: #"{"a":1} trailing"#, ["not valid JSON"])
        assertRejected(header: "", ["header is empty (0 bytes"])
        assertRejected(header: "  \n ", ["header is empty (4 bytes of whitespace)"])
        assertRejected(header: "[1, 2]", ["header is not a JSON object (it starts with '[')"])
        assertRejected(header: "\u{FEFF}{}", ["not a JSON object", "byte 0xef"])
        assertRejected(header: "{}}", ["not valid JSON"])
        // Leading and trailing JSON whitespace is accepted, as by the reference library.
        let path = directory + "/spaces.safetensors"
        writeBytes(safetensorsBytes(header: " \n{\"__metadata__\":{\"a\":\"b\"}}\t "), to: path)
        XCTAssertEqual(try SafeTensorsFile(path: path).metadata, ["a": "b"])
        assertRejected(safetensorsBytes(headerBytes: Array("{\"a\":\"".utf8) + [0xFF, 0xFE] + Array("\"}".utf8)), ["not valid UTF-8"])
        assertRejected(safetensorsBytes(headerBytes: [UInt8(ascii: "{"), 0, UInt8(ascii: "}"), 0]), ["NUL byte at offset 9"])
    }

    func testDeeplyNestedHeaderDoesNotCrash() throws {
        let depth = 100_000
        let header = #"{"a":"# + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "}"
        assertRejected(header: header, ["invalid header"])
    }

    func testMetadataMustBeStrings() throws {
        assertRejected(header: #"{"__metadata__":{"format":"pt","epoch":3}}"#, ["invalid __metadata__", "'epoch'", "a number"])
        assertRejected(header: #"{"__metadata__":["pt"]}"#, ["invalid __metadata__", "an array"])
        assertRejected(header: #"{"__metadata__":"pt"}"#, ["invalid __metadata__", "a string"])
        // null and an empty object are accepted.
        for header in [#"{"__metadata__":null}"#, #"{"__metadata__":{}}"#] {
            let path = directory + "/ok-\(UUID().uuidString)"
            writeBytes(safetensorsBytes(header: header), to: path)
            XCTAssertEqual(try SafeTensorsFile(path: path).metadata, [:])
        }
    }

    // MARK: Entries

    func testEntryMissingOrMistypedFields() throws {
        assertRejected(header: #"{"w":5}"#, ["tensor 'w'", "not an object"])
        assertRejected(header: #"{"w":{"shape":[1],"data_offsets":[0,4]}}"#, data: floatBytes([1]), ["tensor 'w'", "has no 'dtype'"])
        assertRejected(header: #"{"w":{"dtype":"F32","data_offsets":[0,4]}}"#, data: floatBytes([1]), ["tensor 'w'", "has no 'shape'"])
        assertRejected(header: #"{"w":{"dtype":"F32","shape":[1]}}"#, data: floatBytes([1]), ["tensor 'w'", "has no 'data_offsets'"])
        assertRejected(header: #"{"w":{"dtype":32,"shape":[1],"data_offsets":[0,4]}}"#, data: floatBytes([1]), ["'dtype'", "not a string"])
        assertRejected(header: #"{"w":{"dtype":"F32","shape":4,"data_offsets":[0,4]}}"#, data: floatBytes([1]), ["'shape'", "not an array"])
    }

    func testUnknownDType() throws {
        let error = assertRejected(
            header: "{" + entry("w", "F8_E4M3", "[1]", "[0,1]") + "}", data: [0],
            ["tensor 'w'", "unknown dtype 'F8_E4M3'"])
        guard case .unknownDType(_, "w", "F8_E4M3")? = error else { return XCTFail("got \(String(describing: error))") }
        assertRejected(header: "{" + entry("w", "f32", "[1]", "[0,4]") + "}", data: floatBytes([1]), ["unknown dtype 'f32'"])
    }

    func testInvalidDimensions() throws {
        let data = floatBytes([1, 2, 3, 4])
        assertRejected(header: "{" + entry("w", "F32", "[-1,4]", "[0,16]") + "}", data: data, ["tensor 'w'", "dimension 0 is -1"])
        assertRejected(header: "{" + entry("w", "F32", "[2,2.5]", "[0,16]") + "}", data: data, ["dimension 1 is 2.5"])
        assertRejected(header: "{" + entry("w", "F32", "[4.0]", "[0,16]") + "}", data: data, ["dimension 0 is 4.0"])
        assertRejected(header: "{" + entry("w", "F32", "[true]", "[0,4]") + "}", data: floatBytes([1]), ["dimension 0 is true"])
        assertRejected(header: "{" + entry("w", "F32", #"["4"]"#, "[0,16]") + "}", data: data, [#"dimension 0 is "4""#])
        assertRejected(header: "{" + entry("w", "F32", "[null]", "[0,16]") + "}", data: data, ["dimension 0 is null"])
        assertRejected(
            header: "{" + entry("w", "F32", "[18446744073709551615]", "[0,16]") + "}", data: data,
            ["dimension 0 is 18446744073709551615"])
    }

    func testElementAndByteCountOverflow() throws {
        assertRejected(
            header: "{" + entry("w", "F32", "[4294967296,4294967296]", "[0,4]") + "}", data: floatBytes([1]),
            ["tensor 'w'", "element count", "overflows"])
        assertRejected(
            header: "{" + entry("w", "F32", "[3037000500,3037000500,0]", "[0,0]") + "}",
            ["tensor 'w'", "element count", "overflows"])
        assertRejected(
            header: "{" + entry("w", "F64", "[2305843009213693952]", "[0,8]") + "}", data: [0, 0, 0, 0, 0, 0, 0, 0],
            ["tensor 'w'", "byte count", "overflows"])
    }

    func testDataOffsetsDisagreeWithShape() throws {
        let error = assertRejected(
            header: "{" + entry("conv_in.weight", "F32", "[3,3]", "[0,12]") + "}", data: floatBytes([1, 2, 3]),
            ["tensor 'conv_in.weight' has data_offsets [0, 12] but F32 [3, 3] needs 36 bytes"])
        guard case let .byteCountMismatch(_, tensor, start, end, dtype, shape, expected)? = error else {
            return XCTFail("got \(String(describing: error))")
        }
        XCTAssertEqual(tensor, "conv_in.weight")
        XCTAssertEqual([start, end, expected], [0, 12, 36])
        XCTAssertEqual(dtype, .F32)
        XCTAssertEqual(shape, [3, 3])
        assertRejected(
            header: "{" + entry("s", "I64", "[]", "[0,4]") + "}", data: [0, 0, 0, 0],
            ["tensor 's' has data_offsets [0, 4] but I64 [] needs 8 bytes"])
    }

    func testMalformedDataOffsets() throws {
        let data = floatBytes([1])
        assertRejected(header: "{" + entry("w", "F32", "[1]", "[0]") + "}", data: data, ["tensor 'w'", "not an array of two integers"])
        assertRejected(header: "{" + entry("w", "F32", "[1]", "[0,4,8]") + "}", data: data, ["not an array of two integers"])
        assertRejected(header: "{" + entry("w", "F32", "[1]", "4") + "}", data: data, ["not an array of two integers"])
        assertRejected(
            header: "{" + entry("w", "F32", "[1]", "[-4,0]") + "}", data: data, ["tensor 'w'", "[-4, 0]", "not two non-negative integers"])
        assertRejected(header: "{" + entry("w", "F32", "[1]", "[0,4.5]") + "}", data: data, ["not two non-negative integers"])
        assertRejected(header: "{" + entry("w", "F32", "[1]", "[8,4]") + "}", data: data, ["tensor 'w'", "[8, 4]", "end before they start"])
    }

    func testOffsetsMustTileTheDataSectionFromZero() throws {
        let data = floatBytes([1, 2])
        // Not starting at 0.
        assertRejected(
            header: "{" + entry("w", "F32", "[1]", "[4,8]") + "}", data: data,
            ["tensor 'w'", "[4, 8]", "gap", "data section starts at 0"])
        // A gap between tensors.
        assertRejected(
            header: "{" + entry("a", "F32", "[1]", "[0,4]") + "," + entry("b", "F32", "[1]", "[8,12]") + "}",
            data: floatBytes([1, 2, 3]), ["tensor 'b'", "[8, 12]", "gap", "tensor 'a' ends at 4"])
        // Overlapping tensors.
        assertRejected(
            header: "{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("b", "F32", "[1]", "[4,8]") + "}", data: data,
            ["tensor 'b'", "[4, 8]", "overlapping tensor 'a', which ends at 8"])
        assertRejected(
            header: "{" + entry("a", "F32", "[1]", "[0,4]") + "," + entry("b", "F32", "[1]", "[0,4]") + "}",
            data: floatBytes([1]), ["tensor 'b'", "overlapping tensor 'a'"])
        // Beyond the data section.
        assertRejected(
            header: "{" + entry("w", "F32", "[2]", "[0,8]") + "}", data: floatBytes([1]),
            ["tensor 'w'", "past the end of the 4-byte data section"])
        assertRejected(
            header: "{" + entry("w", "F32", "[1]", "[9223372036854775800,9223372036854775804]") + "}",
            data: floatBytes([1]), ["tensor 'w'", "past the end"])
        // Trailing bytes not covered by any tensor.
        let error = assertRejected(
            header: "{" + entry("w", "F32", "[1]", "[0,4]") + "}", data: data,
            ["tensors cover 4 bytes but the data section has 8 bytes"])
        guard case .incompleteData(_, 4, 8)? = error else { return XCTFail("got \(String(describing: error))") }
        assertRejected(header: "{}", data: [1], ["tensors cover 0 bytes but the data section has 1 bytes"])
    }

    func testEmptyTensorsAndEmptyFileAreValid() throws {
        let path = directory + "/empty.safetensors"
        writeBytes(
            safetensorsBytes(
                header: "{" + entry("a", "F32", "[0]", "[0,0]") + "," + entry("b", "F32", "[1]", "[0,4]") + ","
                    + entry("c", "I8", "[2,0]", "[4,4]") + "}", data: floatBytes([5])), to: path)
        let file = try SafeTensorsFile(path: path)
        XCTAssertEqual(file.names, ["a", "b", "c"])
        XCTAssertEqual(try file.floatTensor("b").scalars, [5])
        XCTAssertEqual(try file.int64Values("c").shape, [2, 0])

        let bare = directory + "/bare.safetensors"
        writeBytes(safetensorsBytes(header: "{}"), to: bare)
        XCTAssertEqual(try SafeTensorsFile(path: bare).names, [])
    }

    // MARK: Accessors

    func testAccessorErrors() throws {
        let path = directory + "/t.safetensors"
        writeBytes(
            safetensorsBytes(
                header: "{" + entry("ids", "I64", "[1]", "[0,8]") + "," + entry("w", "F32", "[1]", "[8,12]") + "}",
                data: littleEndianBytes([Int64(7)]) + floatBytes([1])), to: path)
        let file = try SafeTensorsFile(path: path)
        assertSafeTensorsError(try file.floatTensor("nope"), file: path, contains: ["no tensor named 'nope'"])
        assertSafeTensorsError(try file.rawBytes("nope"), file: path, contains: ["no tensor named 'nope'"])
        assertSafeTensorsError(try file.numericValues("nope"), file: path, contains: ["no tensor named 'nope'"])
        assertSafeTensorsError(try file.floatTensor("ids"), file: path, contains: ["tensor 'ids'", "I64", "fp32 Tensor"])
        assertSafeTensorsError(try file.int64Values("w"), file: path, contains: ["tensor 'w'", "F32", "Int64"])
        XCTAssertEqual(try file.int64Values("ids").values, [7])
    }

    func testDescriptionsStayOnOneLine() throws {
        let name = "evil\nname\u{2028}x"
        let error = assertRejected(
            header: "{" + entry("evil\\nname\\u2028x", "F16", "[1]", "[0,4]") + "}", data: [0, 0, 0, 0],
            ["tensor 'evil\\u{a}name\\u{2028}x'", "F16 [1] needs 2 bytes"])
        if case let .byteCountMismatch(_, tensor, _, _, _, _, _)? = error { XCTAssertEqual(tensor, name) } else { XCTFail("wrong case") }
        let pathError = SafeTensorsError.cannotOpen(file: "a\nb.safetensors", reason: "x\ry")
        XCTAssertEqual(pathError.description, "a\\u{a}b.safetensors: cannot open: x\\u{d}y")
    }
}
