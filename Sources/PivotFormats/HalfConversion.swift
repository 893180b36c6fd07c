#if _endian(big)
    #error("PivotFormats assumes a little-endian host (safetensors data is little-endian)")
#endif

/// Conversions between 16-bit floating-point formats (IEEE fp16, bfloat16) and fp32.
///
/// The bulk functions are branch-free loops over unsafe pointers that the optimiser vectorises; sources
/// may be unaligned (safetensors does not align tensor data). fp16 → fp32 is exact for every bit
/// pattern: zeros, subnormals, infinities and NaNs (payload and sign preserved, signalling NaNs stay
/// signalling). fp32 → fp16 / bf16 round to nearest, ties to even; NaNs become quiet NaNs of the same sign.
public enum HalfConversion {
    // MARK: Scalars

    /// The fp32 value of the fp16 bit pattern `bits`.
    @inlinable @inline(__always)
    public static func float(fromFloat16Bits bits: UInt16) -> Float {
        Float(bitPattern: float32Bits(fromFloat16Bits: UInt32(bits)))
    }

    /// The fp32 value of the bf16 bit pattern `bits`.
    @inlinable @inline(__always)
    public static func float(fromBFloat16Bits bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    /// The fp16 bit pattern nearest to `value` (ties to even; overflow gives infinity; NaN gives a quiet NaN).
    @inlinable @inline(__always)
    public static func float16Bits(from value: Float) -> UInt16 {
        // Method of M. Dukhan's FP16 library: let the FPU do the rounding by adding a power of two whose
        // ulp is the fp16 ulp of `value`, then read the exponent and mantissa off the sum.
        let scaleToInf: Float = 0x1.0p+112
        let scaleToZero: Float = 0x1.0p-110
        var base = (value.magnitude * scaleToInf) * scaleToZero
        let w = value.bitPattern
        let shl1w = w &+ w
        let sign = w & 0x8000_0000
        var bias = shl1w & 0xFF00_0000
        bias = bias < 0x7100_0000 ? 0x7100_0000 : bias
        base = Float(bitPattern: (bias >> 1) &+ 0x0780_0000) + base
        let bits = base.bitPattern
        let nonsign = ((bits >> 13) & 0x7C00) &+ (bits & 0x0FFF)
        let result = (sign >> 16) | (shl1w > 0xFF00_0000 ? 0x7E00 : nonsign)
        return UInt16(truncatingIfNeeded: result)
    }

    /// The bf16 bit pattern nearest to `value` (ties to even; NaN gives a quiet NaN of the same sign).
    @inlinable @inline(__always)
    public static func bfloat16Bits(from value: Float) -> UInt16 {
        let w = value.bitPattern
        let rounded = (w &+ 0x7FFF &+ ((w >> 16) & 1)) >> 16
        let quietNaN = (w >> 16) | 0x0040
        let isNaN = (w & 0x7FFF_FFFF) > 0x7F80_0000
        return UInt16(truncatingIfNeeded: isNaN ? quietNaN : rounded)
    }

    /// fp32 bits of the fp16 value whose bits are the low 16 bits of `h` (upper bits must be zero).
    @inlinable @inline(__always)
    static func float32Bits(fromFloat16Bits h: UInt32) -> UInt32 {
        let sign = (h & 0x8000) << 16
        let nonsign = h & 0x7FFF
        let exponent = nonsign & 0x7C00
        // Normal numbers: move exponent and mantissa into place and rebias the exponent (15 → 127).
        // Infinities and NaNs (exponent 31) get a second rebias so that their exponent becomes 255.
        let shifted = (nonsign << 13) &+ (112 << 23)
        let normalOrSpecial = exponent == 0x7C00 ? shifted &+ (112 << 23) : shifted
        // Zeros and subnormals: mantissa * 2^-24, exactly, as (0.5 + mantissa * 2^-24) - 0.5.
        let subnormal = (Float(bitPattern: (126 << 23) | nonsign) - 0.5).bitPattern
        return sign | (exponent == 0 ? subnormal : normalOrSpecial)
    }

    // MARK: Bulk

    /// Converts `count` little-endian fp16 values at `source` (any alignment) to fp32 at `destination`.
    public static func convertFloat16ToFloat32(
        _ source: UnsafeRawPointer, _ destination: UnsafeMutablePointer<Float>,
        count: Int
    ) {
        var i = 0
        while i < count {
            let h = UInt32(UInt16(littleEndian: source.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self)))
            destination[i] = Float(bitPattern: float32Bits(fromFloat16Bits: h))
            i &+= 1
        }
    }

    /// Converts `count` little-endian bf16 values at `source` (any alignment) to fp32 at `destination`.
    public static func convertBFloat16ToFloat32(
        _ source: UnsafeRawPointer, _ destination: UnsafeMutablePointer<Float>,
        count: Int
    ) {
        var i = 0
        while i < count {
            let h = UInt32(UInt16(littleEndian: source.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self)))
            destination[i] = Float(bitPattern: h << 16)
            i &+= 1
        }
    }

    /// Converts `count` fp32 values to little-endian fp16 at `destination` (any alignment), rounding to nearest even.
    public static func convertFloat32ToFloat16(
        _ source: UnsafePointer<Float>, _ destination: UnsafeMutableRawPointer,
        count: Int
    ) {
        var i = 0
        while i < count {
            destination.storeBytes(of: float16Bits(from: source[i]).littleEndian, toByteOffset: i &* 2, as: UInt16.self)
            i &+= 1
        }
    }

    /// Converts `count` fp32 values to little-endian bf16 at `destination` (any alignment), rounding to nearest even.
    public static func convertFloat32ToBFloat16(
        _ source: UnsafePointer<Float>, _ destination: UnsafeMutableRawPointer,
        count: Int
    ) {
        var i = 0
        while i < count {
            destination.storeBytes(of: bfloat16Bits(from: source[i]).littleEndian, toByteOffset: i &* 2, as: UInt16.self)
            i &+= 1
        }
    }
}
