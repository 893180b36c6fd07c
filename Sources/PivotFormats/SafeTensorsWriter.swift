#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import PivotIO
import PivotTensor

/// Writes safetensors files atomically.
///
/// The header lists `__metadata__` first (when non-empty), then the float tensors and then the int64
/// tensors, each in the order given, and their data follows in the same order with no gaps. The header is
/// padded with spaces so that the data section starts at a multiple of 8 bytes. The file is written to a
/// temporary file in the destination's directory, flushed with `fsync` and renamed over the destination,
/// so readers see either the old file or the complete new one; on any failure the temporary file is
/// removed and the destination is left untouched.
public enum SafeTensorsWriter {
    /// Writes `tensors` (as `dtype`: F32, F16 or BF16) and `int64` tensors (as I64) with `metadata` to `path`.
    ///
    /// Throws `SafeTensorsError.invalidArgument` for duplicate names, the reserved name `__metadata__`,
    /// a negative dimension, an int64 value count that differs from its shape, or another `dtype`; and
    /// `SafeTensorsError.writeFailed` when the file cannot be created, written, synced or renamed.
    public static func write(
        _ tensors: [(name: String, tensor: Tensor)],
        int64: [(name: String, shape: [Int], values: [Int64])] = [],
        metadata: [String: String] = [:],
        dtype: DType = .F32,
        to path: String
    ) throws {
        guard !path.isEmpty else { throw SafeTensorsError.emptyPath }
        guard dtype == .F32 || dtype == .F16 || dtype == .BF16 else {
            throw SafeTensorsError.invalidArgument(file: path, reason: "float tensors can be written as F32, F16 or BF16, not \(dtype.rawValue)")
        }
        let header = try makeHeader(tensors, int64: int64, metadata: metadata, dtype: dtype, path: path)
        try atomicallyWrite(to: path) { fd in
            try header.withUnsafeBytes { try writeAll(fd, $0, path: path) }
            for (_, tensor) in tensors {
                try writeFloats(fd, tensor, dtype: dtype, path: path)
            }
            for (_, _, values) in int64 {
                try values.withUnsafeBytes { try writeAll(fd, $0, path: path) }
            }
        }
    }

    // MARK: Header

    /// The padded header bytes, including the 8-byte length prefix, after validating every input.
    static func makeHeader(
        _ tensors: [(name: String, tensor: Tensor)],
        int64: [(name: String, shape: [Int], values: [Int64])],
        metadata: [String: String], dtype: DType, path: String
    ) throws -> [UInt8] {
        var seen = Set<String>()
        var entries: [(name: String, dtype: DType, shape: [Int], bytes: Int)] = []
        func add(_ name: String, _ dtype: DType, _ shape: [Int], elements: Int) throws {
            guard name != "__metadata__" else {
                throw SafeTensorsError.invalidArgument(file: path, reason: "'__metadata__' is reserved and cannot name a tensor")
            }
            guard seen.insert(name).inserted else {
                throw SafeTensorsError.invalidArgument(file: path, reason: "tensor name '\(name)' appears more than once")
            }
            guard let count = checkedElementCount(shape), count == elements else {
                throw SafeTensorsError.invalidArgument(file: path, reason: "tensor '\(name)' has shape \(shape) but \(elements) values")
            }
            let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
            guard !overflow else {
                throw SafeTensorsError.invalidArgument(file: path, reason: "tensor '\(name)' is too large")
            }
            entries.append((name, dtype, shape, bytes))
        }
        for (name, tensor) in tensors { try add(name, dtype, tensor.shape, elements: tensor.count) }
        for (name, shape, values) in int64 { try add(name, .I64, shape, elements: values.count) }

        var json = "{"
        var first = true
        if !metadata.isEmpty {
            json += "\"__metadata__\":{"
            json += metadata.keys.sorted().map { "\(jsonQuoted($0)):\(jsonQuoted(metadata[$0] ?? ""))" }.joined(separator: ",")
            json += "}"
            first = false
        }
        var offset = 0
        for entry in entries {
            let (end, overflow) = offset.addingReportingOverflow(entry.bytes)
            guard !overflow else { throw SafeTensorsError.invalidArgument(file: path, reason: "tensors are too large") }
            if !first { json += "," }
            first = false
            json += "\(jsonQuoted(entry.name)):{\"dtype\":\"\(entry.dtype.rawValue)\","
            json += "\"shape\":[\(entry.shape.map(String.init).joined(separator: ","))],"
            json += "\"data_offsets\":[\(offset),\(end)]}"
            offset = end
        }
        json += "}"

        var body = Array(json.utf8)
        while body.count % 8 != 0 { body.append(UInt8(ascii: " ")) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(8 + body.count)
        withUnsafeBytes(of: UInt64(body.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: body)
        return bytes
    }

    /// The product of `shape`, or nil if a dimension is negative or the product overflows.
    private static func checkedElementCount(_ shape: [Int]) -> Int? {
        var count = 1
        for dim in shape {
            guard dim >= 0 else { return nil }
            let (product, overflow) = count.multipliedReportingOverflow(by: dim)
            guard !overflow else { return nil }
            count = product
        }
        return count
    }

    /// `text` as a JSON string literal.
    private static func jsonQuoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    // MARK: Data

    /// Writes the elements of `tensor` as `dtype` (F32 directly, F16/BF16 through a bounded staging buffer).
    private static func writeFloats(_ fd: Int32, _ tensor: Tensor, dtype: DType, path: String) throws {
        let count = tensor.count
        if dtype == .F32 {
            try writeAll(fd, UnsafeRawBufferPointer(start: tensor.data, count: count * 4), path: path)
            return
        }
        let chunk = 1 << 16
        let staging = UnsafeMutableRawPointer.allocate(byteCount: chunk * 2, alignment: 16)
        defer { staging.deallocate() }
        var done = 0
        while done < count {
            let n = min(chunk, count - done)
            if dtype == .F16 {
                HalfConversion.convertFloat32ToFloat16(tensor.data + done, staging, count: n)
            } else {
                HalfConversion.convertFloat32ToBFloat16(tensor.data + done, staging, count: n)
            }
            try writeAll(fd, UnsafeRawBufferPointer(start: staging, count: n * 2), path: path)
            done += n
        }
    }

    /// Writes every byte of `buffer` to `fd`, retrying on EINTR and short writes.
    private static func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, path: String) throws {
        guard var pointer = buffer.baseAddress else { return }
        var remaining = buffer.count
        while remaining > 0 {
            let n = systemWrite(fd, pointer, min(remaining, 1 << 30))
            if n < 0 {
                if errno == EINTR { continue }
                throw SafeTensorsError.writeFailed(file: path, reason: systemError())
            }
            if n == 0 { throw SafeTensorsError.writeFailed(file: path, reason: "write returned 0 bytes") }
            pointer += n
            remaining -= n
        }
    }

    // MARK: Atomic replace

    /// `AtomicFile.write`, with its failures reported as `SafeTensorsError`s naming `path`.
    private static func atomicallyWrite(to path: String, _ body: (Int32) throws -> Void) throws {
        do {
            try AtomicFile.write(to: path, body)
        } catch let failure as AtomicFile.Failure {
            switch failure {
            case .notAFile: throw SafeTensorsError.invalidArgument(file: path, reason: "the path does not name a file")
            case .isDirectory: throw SafeTensorsError.writeFailed(file: path, reason: "is a directory")
            case .protectedInput(let input): throw SafeTensorsError.writeFailed(file: path, reason: "refusing to overwrite '\(input)'")
            case .failed(let step, let reason): throw SafeTensorsError.writeFailed(file: path, reason: "cannot \(step): \(reason)")
            }
        }
    }
}

/// `write(2)`, named so that it does not clash with `SafeTensorsWriter.write`.
private func systemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
        return Glibc.write(fd, buffer, count)
    #else
        return Darwin.write(fd, buffer, count)
    #endif
}
