import Foundation
import PivotFormats
import XCTest

final class SHA256Tests: XCTestCase {
    private func hexHash(_ text: String) -> String {
        SHA256.hex(SHA256.hash(Array(text.utf8)))
    }

    func testNISTVectors() {
        XCTAssertEqual(hexHash(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(hexHash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(
            hexHash("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(
            SHA256.hex(SHA256.hash([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000))),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func testDigestIsThirtyTwoBytesAndHexIsLowerCase() {
        let digest = SHA256.hash([1, 2, 3])
        XCTAssertEqual(digest.count, 32)
        XCTAssertEqual(SHA256.hex([0x00, 0x0F, 0xA0, 0xFF]), "000fa0ff")
        XCTAssertEqual(SHA256.hex([]), "")
    }

    func testIncrementalUpdatesMatchOneShot() {
        let message = (0..<200).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        let expected = SHA256.hash(message)
        for split in 0...130 {
            var hasher = SHA256()
            hasher.update(Array(message[..<split]))
            hasher.update(Array(message[split...]))
            XCTAssertEqual(hasher.finalize(), expected, "split at \(split)")

            var twoSplits = SHA256()
            let second = min(split + 7, message.count)
            message.withUnsafeBytes { raw in
                twoSplits.update(UnsafeRawBufferPointer(rebasing: raw[..<split]))
                twoSplits.update(UnsafeRawBufferPointer(rebasing: raw[split..<second]))
            }
            twoSplits.update(Data(message[second...]))
            XCTAssertEqual(twoSplits.finalize(), expected, "splits at \(split), \(second)")
        }
    }

    func testByteByByteAndReuseAfterFinalize() {
        let message = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        var hasher = SHA256()
        for byte in message { hasher.update([byte]) }
        XCTAssertEqual(
            SHA256.hex(hasher.finalize()),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        // finalize() resets the hasher.
        hasher.update(Array("abc".utf8))
        XCTAssertEqual(
            SHA256.hex(hasher.finalize()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    func testPaddingBoundaryLengths() {
        // Lengths around the 55/56/64-byte padding boundaries, checked against byte-at-a-time hashing.
        for count in [54, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129] {
            let message = [UInt8](repeating: 0x61, count: count)
            var hasher = SHA256()
            for byte in message { hasher.update([byte]) }
            XCTAssertEqual(hasher.finalize(), SHA256.hash(message), "length \(count)")
        }
        XCTAssertEqual(
            SHA256.hex(SHA256.hash([UInt8](repeating: 0x61, count: 64))),
            "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb")
    }

    func testFileHashEqualsInMemoryHash() throws {
        let directory = makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        // Larger than one 1 MiB read chunk, and not a multiple of 64.
        let bytes = (0..<(1 << 20) + 1234).map { UInt8(truncatingIfNeeded: ($0 &* 2_654_435_761) >> 13) }
        let path = directory + "/data.bin"
        writeBytes(bytes, to: path)
        XCTAssertEqual(try SHA256.hexDigest(ofFile: path), SHA256.hex(SHA256.hash(bytes)))

        let empty = directory + "/empty.bin"
        writeBytes([], to: empty)
        XCTAssertEqual(
            try SHA256.hexDigest(ofFile: empty),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    func testMissingFileThrowsOneLineErrorNamingTheFile() {
        let directory = makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let path = directory + "/missing.bin"
        XCTAssertThrowsError(try SHA256.hexDigest(ofFile: path)) { error in
            let text = String(describing: error)
            XCTAssertTrue(text.contains(path), text)
            XCTAssertFalse(text.contains("\n"), text)
        }
        XCTAssertThrowsError(try SHA256.hexDigest(ofFile: directory)) { error in
            XCTAssertEqual(error as? SafeTensorsError, .notARegularFile(file: directory))
        }
    }
}
