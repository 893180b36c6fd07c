#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import PivotIO
import PivotTensor

/// An error writing a PyTorch file; `description` is one line starting with the file path.
public enum TorchWriteError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The input cannot be written (a tensor that is not 2-D or is empty, a file too large, an empty path).
    case invalidArgument(file: String, reason: String)
    /// Creating, writing, syncing or renaming the output failed; no partial file was left behind.
    case writeFailed(file: String, reason: String)

    /// A one-line explanation starting with the file path.
    public var description: String {
        switch self {
        case let .invalidArgument(file, reason): return "\(oneLine(file)): cannot write a PyTorch file: \(oneLine(reason))"
        case let .writeFailed(file, reason): return "\(oneLine(file)): write failed: \(oneLine(reason))"
        }
    }
}

/// Writes files in the format of `torch.save` that `torch.load(..., weights_only=True)` and `TorchFile` read.
///
/// The file is a ZIP archive of STORED entries under the folder `archive/`: `data.pkl` (a protocol-2 pickle
/// that names only `torch._utils._rebuild_tensor_v2`, `torch.FloatStorage` and `collections.OrderedDict`),
/// `byteorder` ("little"), one `data/<key>` entry per storage (raw little-endian fp32) and `version` ("3").
/// As torch does, every entry's data starts at a multiple of 64 bytes, padded with an extra field in the
/// local header. The file is written atomically: to a temporary file beside `path`, synced, then renamed.
public enum TorchFileWriter {
    /// Writes an Automatic1111 textual-inversion embedding to `path`:
    /// `{"string_to_token": {"*": 265}, "string_to_param": {"*": <vectors, fp32 [n, D]>}, "name": name,
    /// "step": step, "sd_checkpoint": None, "sd_checkpoint_name": None}`.
    ///
    /// Throws `TorchWriteError.invalidArgument` when `vectors` is not 2-D or is empty (or `path` is empty),
    /// and `TorchWriteError.writeFailed` when the file cannot be created, written, synced or renamed.
    public static func writeA1111Embedding(name: String, vectors: Tensor, step: Int, to path: String) throws {
        guard !path.isEmpty else { throw TorchWriteError.invalidArgument(file: path, reason: "the path is empty") }
        guard vectors.rank == 2, vectors.count > 0 else {
            throw TorchWriteError.invalidArgument(
                file: path, reason: "an embedding must be a non-empty 2-D tensor [vectors, dimensions], not shape \(vectors.shape)")
        }
        let (rows, columns) = (vectors.shape[0], vectors.shape[1])
        var pickle = PickleWriter()
        pickle.beginDict()
        pickle.string("string_to_token")
        pickle.beginDict()
        pickle.string("*")
        pickle.int(265)
        pickle.endDict()
        pickle.string("string_to_param")
        pickle.beginDict()
        pickle.string("*")
        pickle.tensor(storageKey: "0", count: vectors.count, shape: [rows, columns], strides: [columns, 1])
        pickle.endDict()
        pickle.string("name")
        pickle.string(name)
        pickle.string("step")
        pickle.int(step)
        pickle.string("sd_checkpoint")
        pickle.none()
        pickle.string("sd_checkpoint_name")
        pickle.none()
        pickle.endDict()
        pickle.stop()

        var storage = [UInt8]()
        storage.reserveCapacity(vectors.count * 4)
        for value in UnsafeBufferPointer(start: vectors.data, count: vectors.count) {
            withUnsafeBytes(of: value.bitPattern.littleEndian) { storage.append(contentsOf: $0) }
        }
        let archive = try zipArchive(
            [
                ("archive/data.pkl", pickle.bytes), ("archive/byteorder", Array("little".utf8)),
                ("archive/data/0", storage), ("archive/version", Array("3\n".utf8)),
            ], path: path)
        try atomicallyWrite(to: path) { fd in try archive.withUnsafeBytes { try writeAll(fd, $0, path: path) } }
    }

    // MARK: ZIP

    /// The data of every entry starts at a multiple of this many bytes, as in `torch.save`.
    static let alignment = 64

    /// A ZIP archive of STORED `entries`, each entry's data aligned to `alignment` bytes (no ZIP64: the
    /// archive must stay below 4 GiB).
    static func zipArchive(_ entries: [(name: String, data: [UInt8])], path: String) throws -> [UInt8] {
        let total = entries.reduce(0) { $0 + 30 + alignment + 4 + 46 + 2 * $1.name.utf8.count + $1.data.count } + 22
        guard total < Int(UInt32.max), entries.count < Int(UInt16.max) else {
            throw TorchWriteError.invalidArgument(file: path, reason: "the archive would exceed 4 GiB, which needs ZIP64 (not written)")
        }
        var out = [UInt8]()
        out.reserveCapacity(total)
        var directory = [UInt8]()
        func put16(_ value: Int, _ buffer: inout [UInt8]) { withUnsafeBytes(of: UInt16(value).littleEndian) { buffer.append(contentsOf: $0) } }
        func put32(_ value: Int, _ buffer: inout [UInt8]) { withUnsafeBytes(of: UInt32(value).littleEndian) { buffer.append(contentsOf: $0) } }
        let (version, flags, method, time, date) = (20, 0, 0, 0, 0x21)  // 0x21: 1980-01-01, the earliest DOS date
        for (name, data) in entries {
            let nameBytes = Array(name.utf8)
            let offset = out.count
            let crc = Int(crc32(data))
            // torch's padding: an extra field with id "FB" whose payload of 'Z's ends where the data is aligned.
            let unpadded = offset + 30 + nameBytes.count + 4
            let padding = (alignment - unpadded % alignment) % alignment
            put32(0x0403_4b50, &out)
            for field in [version, flags, method, time, date] { put16(field, &out) }
            for field in [crc, data.count, data.count] { put32(field, &out) }
            put16(nameBytes.count, &out)
            put16(4 + padding, &out)
            out.append(contentsOf: nameBytes)
            out.append(contentsOf: [UInt8(ascii: "F"), UInt8(ascii: "B")])
            put16(padding, &out)
            out.append(contentsOf: [UInt8](repeating: UInt8(ascii: "Z"), count: padding))
            out.append(contentsOf: data)

            put32(0x0201_4b50, &directory)
            for field in [version, version, flags, method, time, date] { put16(field, &directory) }
            for field in [crc, data.count, data.count] { put32(field, &directory) }
            for field in [nameBytes.count, 0, 0, 0, 0] { put16(field, &directory) }  // name, extra, comment, disk, internal
            put32(0, &directory)  // external attributes
            put32(offset, &directory)
            directory.append(contentsOf: nameBytes)
        }
        let directoryOffset = out.count
        out.append(contentsOf: directory)
        put32(0x0605_4b50, &out)
        for field in [0, 0, entries.count, entries.count] { put16(field, &out) }
        put32(directory.count, &out)
        put32(directoryOffset, &out)
        put16(0, &out)  // comment length
        return out
    }

    /// The CRC-32 (ISO-HDLC, as ZIP and zlib use: reflected polynomial 0xEDB88320) of `bytes`.
    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = crcTable[Int(UInt8(truncatingIfNeeded: crc) ^ byte)] ^ (crc >> 8) }
        return ~crc
    }

    private static let crcTable: [UInt32] = (0..<256).map { index in
        var value = UInt32(index)
        for _ in 0..<8 { value = value & 1 != 0 ? 0xEDB8_8320 ^ (value >> 1) : value >> 1 }
        return value
    }

    // MARK: Output

    /// `AtomicFile.write`, with its failures reported as `TorchWriteError`s naming `path`.
    private static func atomicallyWrite(to path: String, _ body: (Int32) throws -> Void) throws {
        do {
            try AtomicFile.write(to: path, body)
        } catch let failure as AtomicFile.Failure {
            switch failure {
            case .notAFile: throw TorchWriteError.invalidArgument(file: path, reason: "the path does not name a file")
            case .isDirectory: throw TorchWriteError.writeFailed(file: path, reason: "is a directory")
            case .protectedInput(let input): throw TorchWriteError.writeFailed(file: path, reason: "refusing to overwrite '\(input)'")
            case .failed(let step, let reason): throw TorchWriteError.writeFailed(file: path, reason: "cannot \(step): \(reason)")
            }
        }
    }

    /// Writes every byte of `buffer` to `fd`, retrying on EINTR and short writes.
    private static func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, path: String) throws {
        guard var pointer = buffer.baseAddress else { return }
        var remaining = buffer.count
        while remaining > 0 {
            #if canImport(Glibc)
                let n = Glibc.write(fd, pointer, min(remaining, 1 << 30))
            #else
                let n = Darwin.write(fd, pointer, min(remaining, 1 << 30))
            #endif
            if n < 0 {
                if errno == EINTR { continue }
                throw TorchWriteError.writeFailed(file: path, reason: AtomicFile.lastError())
            }
            if n == 0 { throw TorchWriteError.writeFailed(file: path, reason: "write returned 0 bytes") }
            pointer += n
            remaining -= n
        }
    }
}

/// Emits the protocol-2 pickle opcodes that a `torch.save` state dictionary needs.
struct PickleWriter {
    private(set) var bytes: [UInt8] = [0x80, 2]  // PROTO 2

    /// EMPTY_DICT then MARK: the key/value pairs that follow, up to `endDict`, fill it.
    mutating func beginDict() { bytes += [0x7d, 0x28] }

    /// SETITEMS: stores the pairs since the matching `beginDict`.
    mutating func endDict() { bytes.append(0x75) }

    mutating func none() { bytes.append(0x4e) }

    /// STOP.
    mutating func stop() { bytes.append(0x2e) }

    /// BINUNICODE: `text` as UTF-8 with a 4-byte length.
    mutating func string(_ text: String) {
        bytes.append(0x58)
        append32(UInt32(text.utf8.count))
        bytes += Array(text.utf8)
    }

    /// The smallest of BININT1, BININT2, BININT and LONG1 that holds `value`, as Python's pickle chooses.
    mutating func int(_ value: Int) {
        if (0...0xFF).contains(value) {
            bytes += [0x4b, UInt8(value)]
        } else if (0...0xFFFF).contains(value) {
            bytes.append(0x4d)
            withUnsafeBytes(of: UInt16(value).littleEndian) { bytes += $0 }
        } else if let small = Int32(exactly: value) {
            bytes.append(0x4a)
            append32(UInt32(bitPattern: small))
        } else {
            // Little-endian two's complement, trimmed to the fewest bytes that keep the sign.
            var digits = withUnsafeBytes(of: Int64(value).littleEndian) { Array($0) }
            while digits.count > 1, let last = digits.last, last == 0 || last == 0xFF,
                (digits[digits.count - 2] & 0x80 != 0) == (last == 0xFF)
            {
                digits.removeLast()
            }
            bytes += [0x8a, UInt8(digits.count)] + digits
        }
    }

    /// GLOBAL `module name`.
    mutating func global(_ module: String, _ name: String) {
        bytes.append(0x63)
        bytes += Array((module + "\n" + name + "\n").utf8)
    }

    /// A tuple of small non-negative integers (EMPTY_TUPLE, TUPLE1-3, or MARK ... TUPLE).
    mutating func tuple(_ values: [Int]) {
        if values.count > 3 { bytes.append(0x28) }
        for value in values { int(value) }
        switch values.count {
        case 0: bytes.append(0x29)
        case 1...3: bytes.append(0x84 + UInt8(values.count))
        default: bytes.append(0x74)
        }
    }

    /// `torch._utils._rebuild_tensor_v2(storage, 0, shape, strides, False, OrderedDict())` over the fp32 storage
    /// `storageKey` of `count` elements, which is the persistent id `("storage", torch.FloatStorage, key, "cpu", count)`.
    mutating func tensor(storageKey: String, count: Int, shape: [Int], strides: [Int]) {
        global("torch._utils", "_rebuild_tensor_v2")
        bytes.append(0x28)  // MARK: the arguments
        bytes.append(0x28)  // MARK: the persistent id
        string("storage")
        global("torch", "FloatStorage")
        string(storageKey)
        string("cpu")
        int(count)
        bytes += [0x74, 0x51]  // TUPLE, BINPERSID
        int(0)
        tuple(shape)
        tuple(strides)
        bytes.append(0x89)  // NEWFALSE: requires_grad
        global("collections", "OrderedDict")
        bytes += [0x29, 0x52]  // EMPTY_TUPLE, REDUCE: the backward hooks
        bytes += [0x74, 0x52]  // TUPLE, REDUCE
    }

    private mutating func append32(_ value: UInt32) {
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }
}
