/// An element type of a safetensors tensor, spelled as in the file header.
///
/// Only the dtypes listed here are accepted; any other name in a header (for example the fp8 types)
/// is rejected with `SafeTensorsError.unknownDType`. All multi-byte types are little-endian.
public enum DType: String, CaseIterable, Sendable {
    /// IEEE 754 binary64.
    case F64
    /// IEEE 754 binary32.
    case F32
    /// IEEE 754 binary16 (half precision).
    case F16
    /// bfloat16: the upper 16 bits of a binary32.
    case BF16
    /// Signed 64-bit integer.
    case I64
    /// Signed 32-bit integer.
    case I32
    /// Signed 16-bit integer.
    case I16
    /// Signed 8-bit integer.
    case I8
    /// Unsigned 8-bit integer.
    case U8
    /// Boolean stored as one byte (0 is false, anything else true).
    case BOOL

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .F64, .I64: return 8
        case .F32, .I32: return 4
        case .F16, .BF16, .I16: return 2
        case .I8, .U8, .BOOL: return 1
        }
    }

    /// Whether the dtype is a floating-point type (`F64`, `F32`, `F16`, `BF16`).
    public var isFloatingPoint: Bool {
        switch self {
        case .F64, .F32, .F16, .BF16: return true
        default: return false
        }
    }
}

/// The header entry of one tensor, after validation.
public struct TensorInfo: Equatable, Sendable {
    /// The tensor's name (its key in the header).
    public let name: String
    /// The element type.
    public let dtype: DType
    /// The dimensions, outermost first; `[]` for a scalar.
    public let shape: [Int]
    /// Offset of the first byte from the start of the data section (the header's `data_offsets[0]`).
    public let byteOffset: Int
    /// Number of bytes (`elementCount * dtype.byteSize`).
    public let byteCount: Int
    /// Offset of the first byte from the start of the file (`8 + header length + byteOffset`).
    public let fileOffset: Int

    /// Number of elements (the product of `shape`; 1 for a scalar).
    public var elementCount: Int { dtype.byteSize == 0 ? 0 : byteCount / dtype.byteSize }

    /// Creates a tensor description; `byteCount` must equal the element count times `dtype.byteSize`.
    public init(name: String, dtype: DType, shape: [Int], byteOffset: Int, byteCount: Int, fileOffset: Int) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.byteOffset = byteOffset
        self.byteCount = byteCount
        self.fileOffset = fileOffset
    }
}
