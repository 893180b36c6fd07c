import PivotFormats
import XCTest

final class HalfConversionTests: XCTestCase {
    /// Every fp16 bit pattern converts exactly as `Float(Float16(bitPattern:))` does; NaNs keep sign and payload.
    func testFloat16ToFloat32ExhaustiveAgainstSwiftFloat16() {
        let count = 1 << 16
        var source = [UInt16](repeating: 0, count: count)
        for i in 0..<count { source[i] = UInt16(i) }
        // Convert from an odd byte offset to exercise unaligned loads.
        var bytes = [UInt8](repeating: 0, count: 2 * count + 1)
        bytes.withUnsafeMutableBytes { raw in
            for i in 0..<count { raw.storeBytes(of: source[i].littleEndian, toByteOffset: 1 + 2 * i, as: UInt16.self) }
        }
        var converted = [Float](repeating: 0, count: count)
        bytes.withUnsafeBytes { raw in
            converted.withUnsafeMutableBufferPointer { out in
                HalfConversion.convertFloat16ToFloat32(raw.baseAddress! + 1, out.baseAddress!, count: count)
            }
        }
        var mismatches = 0
        var nans = 0
        for i in 0..<count {
            let half = Float16(bitPattern: UInt16(i))
            let expected = Float(half)
            let got = converted[i]
            XCTAssertEqual(got.bitPattern, HalfConversion.float(fromFloat16Bits: UInt16(i)).bitPattern)
            if half.isNaN {
                nans += 1
                // Exact: sign, all-ones exponent and the payload shifted into place (signalling NaNs stay signalling).
                let exact = (UInt32(i & 0x8000) << 16) | 0x7F80_0000 | (UInt32(i & 0x03FF) << 13)
                if !got.isNaN || got.bitPattern != exact || got.sign != expected.sign { mismatches += 1 }
            } else if got.bitPattern != expected.bitPattern {
                mismatches += 1
                if mismatches < 5 { XCTFail("fp16 0x\(String(i, radix: 16)): got \(got), expected \(expected)") }
            }
        }
        XCTAssertEqual(mismatches, 0)
        XCTAssertEqual(nans, 2 * 1023)
        XCTAssertEqual(converted[0x0001], 0x1p-24)
        XCTAssertEqual(converted[0x03FF], 0x1.ff8p-15)
        XCTAssertEqual(converted[0x7C00], .infinity)
        XCTAssertEqual(converted[0xFC00], -.infinity)
        XCTAssertEqual(converted[0x8000].bitPattern, 0x8000_0000)
    }

    /// bf16 → fp32 is a 16-bit shift, for every pattern.
    func testBFloat16ToFloat32Exhaustive() {
        let count = 1 << 16
        var bytes = [UInt8](repeating: 0, count: 2 * count + 1)
        bytes.withUnsafeMutableBytes { raw in
            for i in 0..<count { raw.storeBytes(of: UInt16(i).littleEndian, toByteOffset: 1 + 2 * i, as: UInt16.self) }
        }
        var converted = [Float](repeating: 0, count: count)
        bytes.withUnsafeBytes { raw in
            converted.withUnsafeMutableBufferPointer { out in
                HalfConversion.convertBFloat16ToFloat32(raw.baseAddress! + 1, out.baseAddress!, count: count)
            }
        }
        var mismatches = 0
        for i in 0..<count where converted[i].bitPattern != UInt32(i) << 16 { mismatches += 1 }
        XCTAssertEqual(mismatches, 0)
        XCTAssertEqual(HalfConversion.float(fromBFloat16Bits: 0x3F80), 1)
    }

    /// fp32 → fp16 rounds like Swift's `Float16(_:)` (nearest, ties to even) over a sweep of fp32 patterns.
    func testFloat32ToFloat16MatchesSwiftFloat16() {
        var values: [Float] = [
            0, -0.0, 1, -1, 65504, 65519.996, 65520, -65520, .infinity, -.infinity,
            .greatestFiniteMagnitude, 0x1p-24, 0x1p-25, 0x1.000002p-25, 0x1.8p-24, 0x1p-14, 0x1.ffcp-15,
            1 + 0x1p-11, 1 + 0x1.000002p-11, 1 + 0x3p-11, Float.leastNonzeroMagnitude,
        ]
        var bits: UInt32 = 0
        while true {
            values.append(Float(bitPattern: bits))
            let (next, overflow) = bits.addingReportingOverflow(65_521)  // prime stride through all patterns
            if overflow { break }
            bits = next
        }
        var halves = [UInt16](repeating: 0, count: values.count)
        values.withUnsafeBufferPointer { src in
            halves.withUnsafeMutableBytes { dst in
                HalfConversion.convertFloat32ToFloat16(src.baseAddress!, dst.baseAddress!, count: values.count)
            }
        }
        var mismatches = 0
        for (value, half) in zip(values, halves) {
            if value.isNaN {
                let h = Float16(bitPattern: half)
                if !h.isNaN || h.sign != value.sign || h.isSignalingNaN { mismatches += 1 }
            } else if half != Float16(value).bitPattern {
                mismatches += 1
                if mismatches < 5 {
                    XCTFail("fp32 \(value): got 0x\(String(half, radix: 16)), expected 0x\(String(Float16(value).bitPattern, radix: 16))")
                }
            }
        }
        XCTAssertEqual(mismatches, 0)
        XCTAssertGreaterThan(values.count, 60_000)
    }

    /// fp32 → bf16 rounds to nearest, ties to even; NaNs stay NaN (quiet) with their sign.
    func testFloat32ToBFloat16RoundsToNearestEven() {
        var values: [Float] = [
            0, -0.0, 1, 1 + 0x1p-8, 1 + 0x3p-8, 1 + 0x1.000002p-8, 3.14159265, -1e30, .infinity,
            .greatestFiniteMagnitude, Float(bitPattern: 0x7F80_0001), -Float.nan,
        ]
        var bits: UInt32 = 7
        while true {
            values.append(Float(bitPattern: bits))
            let (next, overflow) = bits.addingReportingOverflow(104_729)
            if overflow { break }
            bits = next
        }
        var mismatches = 0
        for value in values {
            let got = HalfConversion.bfloat16Bits(from: value)
            let decoded = Float(bitPattern: UInt32(got) << 16)
            if value.isNaN {
                if !decoded.isNaN || decoded.sign != value.sign || decoded.isSignalingNaN { mismatches += 1 }
                continue
            }
            // Reference: the two bf16 neighbours of `value`, compared in Double.
            let low = value.bitPattern >> 16
            let candidates = [low, low + 1].filter { $0 & 0x7F80 != 0x7F80 || $0 & 0x7F == 0 }
            let best = candidates.min { a, b in
                let da = abs(Double(Float(bitPattern: a << 16)) - Double(value))
                let db = abs(Double(Float(bitPattern: b << 16)) - Double(value))
                return da == db ? (a & 1) < (b & 1) : da < db
            }!
            var expected = best
            // Values past the largest bf16 by at least half an ulp round to infinity.
            if (value.bitPattern & 0x7FFF_FFFF) >= 0x7F7F_8000 { expected = (value.bitPattern >> 16) & 0x8000 | 0x7F80 }
            if UInt32(got) != expected {
                mismatches += 1
                if mismatches < 5 { XCTFail("fp32 \(value): got 0x\(String(got, radix: 16)), expected 0x\(String(expected, radix: 16))") }
            }
        }
        XCTAssertEqual(mismatches, 0)
        XCTAssertEqual(HalfConversion.bfloat16Bits(from: 1 + 0x1p-8), 0x3F80, "tie rounds to even (down)")
        XCTAssertEqual(HalfConversion.bfloat16Bits(from: 1 + 0x3p-8), 0x3F82, "tie rounds to even (up)")
    }
}
