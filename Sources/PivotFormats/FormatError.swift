import PivotIO
/// An error reading or writing a safetensors file.
///
/// Every case carries the file path as it was given, and (where one is involved) the tensor name, so that
/// `description` is a single line such as
/// `model.safetensors: tensor 'conv_in.weight' has data_offsets [0, 12] but F32 [3, 3] needs 36 bytes`.
/// Control characters in paths, names and reasons are escaped, so the description never spans lines.
public enum SafeTensorsError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The path is the empty string.
    case emptyPath
    /// The file could not be opened or inspected (missing, permission denied, ...); `reason` is the system's message.
    case cannotOpen(file: String, reason: String)
    /// The path names something other than a regular file (a directory, a FIFO, a device, ...).
    case notARegularFile(file: String)
    /// The file is shorter than the 8-byte header-length prefix.
    case fileTooSmall(file: String, size: Int)
    /// The header-length prefix exceeds the bytes that follow it in the file, or the 100 MB limit.
    case headerLengthInvalid(file: String, headerLength: UInt64, fileSize: Int)
    /// The header is not a UTF-8 JSON object (bad encoding, syntax error, not an object, ...).
    case invalidHeader(file: String, reason: String)
    /// The `__metadata__` entry is not an object whose values are all strings.
    case invalidMetadata(file: String, reason: String)
    /// A tensor entry is not an object or misses/mistypes `dtype`, `shape` or `data_offsets`.
    case invalidTensorEntry(file: String, tensor: String, reason: String)
    /// A tensor entry names a dtype outside `DType`.
    case unknownDType(file: String, tensor: String, dtype: String)
    /// A tensor shape has a negative or non-integer dimension, or its element or byte count overflows.
    case invalidShape(file: String, tensor: String, reason: String)
    /// A tensor's `data_offsets` span a different number of bytes than its dtype and shape need.
    case byteCountMismatch(file: String, tensor: String, start: Int, end: Int, dtype: DType, shape: [Int], expected: Int)
    /// A tensor's `data_offsets` are reversed, leave a gap, overlap another tensor or run past the data section.
    case invalidOffsets(file: String, tensor: String, reason: String)
    /// The tensors' byte ranges, taken together, do not end exactly at the end of the data section.
    case incompleteData(file: String, covered: Int, dataSize: Int)
    /// The file has no tensor of that name.
    case tensorNotFound(file: String, tensor: String)
    /// The tensor's dtype cannot be converted to the requested representation.
    case unsupportedConversion(file: String, tensor: String, dtype: DType, target: String)
    /// `mmap` failed; `reason` is the system's message.
    case mapFailed(file: String, reason: String)
    /// The writer was given invalid input (duplicate or reserved names, bad shapes, unsupported dtype, ...).
    case invalidArgument(file: String, reason: String)
    /// Writing, syncing or renaming the output failed; no partial file was left behind.
    case writeFailed(file: String, reason: String)

    /// A one-line human-readable explanation naming the file and, where relevant, the tensor.
    public var description: String {
        switch self {
        case .emptyPath:
            return "safetensors: the file path is empty"
        case let .cannotOpen(file, reason):
            return "\(oneLine(file)): cannot open: \(oneLine(reason))"
        case let .notARegularFile(file):
            return "\(oneLine(file)): not a regular file"
        case let .fileTooSmall(file, size):
            return "\(oneLine(file)): file is \(size) bytes, shorter than the 8-byte header length prefix"
        case let .headerLengthInvalid(file, length, size):
            if length > SafeTensorsLimits.maxHeaderLength {
                return "\(oneLine(file)): header length \(length) exceeds the \(SafeTensorsLimits.maxHeaderLength)-byte limit"
            }
            return
                "\(oneLine(file)): header length \(length) exceeds the \(max(size - 8, 0)) bytes after the length prefix (file is \(size) bytes; truncated?)"
        case let .invalidHeader(file, reason):
            return "\(oneLine(file)): invalid header: \(oneLine(reason))"
        case let .invalidMetadata(file, reason):
            return "\(oneLine(file)): invalid __metadata__: \(oneLine(reason))"
        case let .invalidTensorEntry(file, tensor, reason):
            return "\(oneLine(file)): tensor '\(oneLine(tensor))' \(oneLine(reason))"
        case let .unknownDType(file, tensor, dtype):
            return "\(oneLine(file)): tensor '\(oneLine(tensor))' has unknown dtype '\(oneLine(dtype))'"
                + " (supported: \(DType.allCases.map(\.rawValue).joined(separator: ", ")))"
        case let .invalidShape(file, tensor, reason):
            return "\(oneLine(file)): tensor '\(oneLine(tensor))' has an invalid shape: \(oneLine(reason))"
        case let .byteCountMismatch(file, tensor, start, end, dtype, shape, expected):
            return "\(oneLine(file)): tensor '\(oneLine(tensor))' has data_offsets [\(start), \(end)]"
                + " but \(dtype.rawValue) \(shape) needs \(expected) bytes"
        case let .invalidOffsets(file, tensor, reason):
            return "\(oneLine(file)): tensor '\(oneLine(tensor))' \(oneLine(reason))"
        case let .incompleteData(file, covered, dataSize):
            return "\(oneLine(file)): tensors cover \(covered) bytes but the data section has \(dataSize) bytes"
        case let .tensorNotFound(file, tensor):
            return "\(oneLine(file)): no tensor named '\(oneLine(tensor))'"
        case let .unsupportedConversion(file, tensor, dtype, target):
            return "\(oneLine(file)): tensor '\(oneLine(tensor))' has dtype \(dtype.rawValue), which cannot be read as \(oneLine(target))"
        case let .mapFailed(file, reason):
            return "\(oneLine(file)): mmap failed: \(oneLine(reason))"
        case let .invalidArgument(file, reason):
            return "\(oneLine(file)): cannot write: \(oneLine(reason))"
        case let .writeFailed(file, reason):
            return "\(oneLine(file)): write failed: \(oneLine(reason))"
        }
    }
}

/// Limits shared by the reader and its error messages.
enum SafeTensorsLimits {
    /// The largest header accepted, as in the reference `safetensors` implementation.
    static let maxHeaderLength: UInt64 = 100_000_000
}

/// `text` with line breaks and other control characters escaped, so that it fits on one line.
func oneLine(_ text: String) -> String { escapedForOneLine(text) }
