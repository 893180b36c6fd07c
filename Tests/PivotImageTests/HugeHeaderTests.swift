import Foundation
import PivotImage
import XCTest

/// Files whose headers claim 30000×30000 pixels (2.7 GB of 8-bit RGB, 10.8 GB as floats) are refused from the
/// header, before pixel memory is allocated, in every format whose header can claim it without the pixels:
/// PNG, JPEG and TIFF (refused as too large) and WebP (a VP8X canvas its frame cannot fill: refused as corrupt). The process's resident memory must not grow by more than a few MB.
final class HugeHeaderTests: XCTestCase {
    private static let side = 30000

    private func bigEndian(_ value: Int, _ bytes: Int) -> [UInt8] { (0..<bytes).reversed().map { UInt8((value >> (8 * $0)) & 0xFF) } }
    private func littleEndian(_ value: Int, _ bytes: Int) -> [UInt8] { (0..<bytes).map { UInt8((value >> (8 * $0)) & 0xFF) } }

    private func crc32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            crc ^= UInt32(b)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }

    /// png_rgb8.png with IHDR's width and height set to 30000 (and its CRC fixed, so only the size is wrong).
    private func hugePNG() throws -> [UInt8] {
        var bytes = try Fixtures.bytes("png_rgb8.png")
        XCTAssertEqual(Array(bytes[12..<16]), Array("IHDR".utf8))
        bytes.replaceSubrange(16..<24, with: bigEndian(Self.side, 4) + bigEndian(Self.side, 4))
        bytes.replaceSubrange(29..<33, with: bigEndian(Int(crc32(bytes[12..<29])), 4))
        return bytes
    }

    /// jpeg_rgb.jpg with its frame header (SOF0/SOF2) claiming 30000×30000.
    private func hugeJPEG() throws -> [UInt8] {
        var bytes = try Fixtures.bytes("jpeg_rgb.jpg")
        let sof = try XCTUnwrap((2..<bytes.count - 9).first { bytes[$0] == 0xFF && (bytes[$0 + 1] == 0xC0 || bytes[$0 + 1] == 0xC2) })
        bytes.replaceSubrange(sof + 5..<sof + 9, with: bigEndian(Self.side, 2) + bigEndian(Self.side, 2))
        return bytes
    }

    /// A little-endian baseline TIFF whose IFD claims 30000×30000 RGB in one uncompressed strip of 100 bytes.
    private func hugeTIFF() -> [UInt8] {
        let entries: [(tag: Int, type: Int, value: Int)] = [
            (256, 4, Self.side), (257, 4, Self.side), (258, 3, 8), (259, 3, 1), (262, 3, 2), (273, 4, 8 + 2 + 9 * 12 + 4),
            (277, 3, 3), (278, 4, Self.side), (279, 4, 100),
        ]
        var bytes: [UInt8] = Array("II".utf8) + littleEndian(42, 2) + littleEndian(8, 4) + littleEndian(entries.count, 2)
        for e in entries { bytes += littleEndian(e.tag, 2) + littleEndian(e.type, 2) + littleEndian(1, 4) + littleEndian(e.value, 4) }
        bytes += littleEndian(0, 4) + [UInt8](repeating: 0x80, count: 100)
        return bytes
    }

    /// A WebP whose VP8X header claims a 30000×30000 canvas, followed by formats/source.webp's image chunk.
    private func hugeWebP() throws -> [UInt8] {
        let source = try Fixtures.bytes("formats/source.webp")
        let image = Array(source[12...])  // the VP8/VP8L chunk after "RIFF" size "WEBP"
        let vp8x = Array("VP8X".utf8) + littleEndian(10, 4) + [0, 0, 0, 0] + littleEndian(Self.side - 1, 3) + littleEndian(Self.side - 1, 3)
        let body = Array("WEBP".utf8) + vp8x + image
        return Array("RIFF".utf8) + littleEndian(body.count, 4) + body
    }

    private func residentMB() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
            let pages = text.split(separator: " ").dropFirst().first.flatMap({ Double($0) })
        else { return 0 }
        return pages * Double(sysconf(Int32(_SC_PAGESIZE))) / 1e6
    }

    func testHeadersClaiming30000SquaredAreRefusedBeforeAllocating() throws {
        let dir = try temporaryDirectory(self)
        let cases: [(String, [UInt8])] = [
            ("huge.png", try hugePNG()), ("huge.jpg", try hugeJPEG()), ("huge.tif", hugeTIFF()), ("huge.webp", try hugeWebP()),
        ]
        let before = residentMB()
        for (name, bytes) in cases {
            let path = dir + "/" + name
            try writeFile(path, bytes)
            let error = imageError { _ = try RGBImage.read(path) }
            XCTAssertTrue(error?.description.hasPrefix(path + ": ") ?? false, "\(String(describing: error))")
            if name == "huge.webp" {
                // A VP8/VP8L frame is at most 16383 pixels a side, so libwebp refuses a canvas the frame does not
                // fill as corrupt, from the headers alone.
                XCTAssertTrue([.tooLarge, .corrupt].contains(error?.kind), "\(name): \(String(describing: error))")
            } else {
                XCTAssertEqual(error?.kind, .tooLarge, "\(name): \(String(describing: error))")
                XCTAssertTrue(error?.description.contains("30000") ?? false, "\(String(describing: error))")
            }
        }
        XCTAssertLessThan(residentMB() - before, 64, "refusing the headers must not allocate their pixels")
    }
}
