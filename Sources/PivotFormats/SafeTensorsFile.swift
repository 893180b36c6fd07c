#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import PivotTensor

/// A read-only, memory-mapped safetensors file.
///
/// `init(path:)` maps the whole file and validates the entire header before returning (see
/// `SafeTensorsHeader` for the rules, which match the reference `safetensors` library), so every later
/// access is in bounds. Tensor data is converted into fresh `Tensor`s that own their memory; once the
/// `SafeTensorsFile` is released the mapping is removed and no file pages stay resident.
///
/// The object is immutable and may be read from several threads at once. As with any memory map, the
/// file must not be truncated by another process while it is open (the kernel would raise SIGBUS).
public final class SafeTensorsFile: @unchecked Sendable {
    /// The path the file was opened with.
    public let path: String
    /// The file size in bytes.
    public let fileSize: Int
    /// Offset of the data section from the start of the file (8 + header length).
    public let dataStart: Int
    /// The tensor names, sorted.
    public let names: [String]
    /// The string pairs of the header's `__metadata__` entry (empty when absent).
    public let metadata: [String: String]

    private let tensors: [String: TensorInfo]
    private let base: UnsafeRawPointer

    /// Opens `path` read-only, maps it with `mmap` and validates the whole header.
    ///
    /// Throws `SafeTensorsError` for an empty path, a missing or unreadable file, a directory or other
    /// non-regular file, and for every kind of malformed or truncated file.
    public init(path: String) throws {
        guard !path.isEmpty else { throw SafeTensorsError.emptyPath }
        // O_NONBLOCK keeps a FIFO at `path` from blocking the open; it has no effect on regular files.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw SafeTensorsError.cannotOpen(file: path, reason: systemError()) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw SafeTensorsError.cannotOpen(file: path, reason: systemError()) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw SafeTensorsError.notARegularFile(file: path) }
        guard let size = Int(exactly: info.st_size), size >= 8 else {
            throw SafeTensorsError.fileTooSmall(file: path, size: Int(clamping: info.st_size))
        }
        guard let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapped != MAP_FAILED else {
            throw SafeTensorsError.mapFailed(file: path, reason: systemError())
        }
        let header: SafeTensorsHeader
        do {
            header = try SafeTensorsHeader.parse(UnsafeRawBufferPointer(start: mapped, count: size), file: path)
        } catch {
            munmap(mapped, size)
            throw error
        }
        self.path = path
        self.fileSize = size
        self.base = UnsafeRawPointer(mapped)
        self.dataStart = header.dataStart
        self.tensors = header.tensors
        self.metadata = header.metadata
        self.names = header.tensors.keys.sorted()
    }

    deinit {
        munmap(UnsafeMutableRawPointer(mutating: base), fileSize)
    }

    /// Number of tensors.
    public var count: Int { tensors.count }

    /// Whether the file has a tensor called `name`.
    public func contains(_ name: String) -> Bool { tensors[name] != nil }

    /// The validated header entry of `name`, or nil if there is no such tensor.
    public func info(_ name: String) -> TensorInfo? { tensors[name] }

    /// The header entry of `name`, or `SafeTensorsError.tensorNotFound`.
    public func requireInfo(_ name: String) throws -> TensorInfo {
        guard let info = tensors[name] else { throw SafeTensorsError.tensorNotFound(file: path, tensor: name) }
        return info
    }

    /// The little-endian bytes of `name` inside the mapping; valid only while this object is alive.
    public func rawBytes(_ name: String) throws -> UnsafeRawBufferPointer {
        let info = try requireInfo(name)
        return UnsafeRawBufferPointer(start: base + info.fileOffset, count: info.byteCount)
    }

    /// Drops the mapped pages of `name` from this process's resident memory (they are read again from
    /// the file if touched). Loaders call it after converting a tensor, so that peak memory while loading
    /// stays near the size of the converted weights instead of twice that.
    public func releasePages(_ name: String) {
        guard let info = tensors[name] else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (info.fileOffset + page - 1) / page * page
        let end = (info.fileOffset + info.byteCount) / page * page
        if end > start { madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, MADV_DONTNEED) }
    }

    /// A fresh fp32 tensor (owning its memory) holding `name`, converted from F32, F16, BF16 or F64.
    ///
    /// F64 values outside the fp32 range become infinities. Integer and boolean tensors throw
    /// `SafeTensorsError.unsupportedConversion`; read those with `numericValues(_:)` or `int64Values(_:)`.
    public func floatTensor(_ name: String) throws -> Tensor {
        let info = try requireInfo(name)
        guard info.dtype.isFloatingPoint else {
            throw SafeTensorsError.unsupportedConversion(file: path, tensor: name, dtype: info.dtype, target: "fp32 Tensor")
        }
        let tensor = Tensor(uninitialized: info.shape)
        let source = base + info.fileOffset
        let count = info.elementCount
        switch info.dtype {
        case .F32:
            UnsafeMutableRawPointer(tensor.data).copyMemory(from: source, byteCount: info.byteCount)
        case .F16:
            HalfConversion.convertFloat16ToFloat32(source, tensor.data, count: count)
        case .BF16:
            HalfConversion.convertBFloat16ToFloat32(source, tensor.data, count: count)
        case .F64:
            let destination = tensor.data
            for i in 0..<count {
                destination[i] = Float(source.loadUnaligned(fromByteOffset: i &* 8, as: Double.self))
            }
        default:
            break  // excluded by the isFloatingPoint guard
        }
        return tensor
    }

    /// The shape and values of `name` as doubles, for any dtype (BOOL reads as 0 or 1).
    ///
    /// Intended for small tensors such as token ids and timesteps; I64 values beyond ±2^53 lose precision
    /// (use `int64Values(_:)` for exact integers).
    public func numericValues(_ name: String) throws -> (shape: [Int], values: [Double]) {
        let info = try requireInfo(name)
        let source = base + info.fileOffset
        let count = info.elementCount
        let values = [Double](unsafeUninitializedCapacity: count) { buffer, initialized in
            for i in 0..<count {
                buffer.initializeElement(at: i, to: Self.double(at: source, index: i, dtype: info.dtype))
            }
            initialized = count
        }
        return (info.shape, values)
    }

    /// The shape and values of an integer or BOOL tensor `name` as exact `Int64`s.
    ///
    /// Floating-point tensors throw `SafeTensorsError.unsupportedConversion`.
    public func int64Values(_ name: String) throws -> (shape: [Int], values: [Int64]) {
        let info = try requireInfo(name)
        guard !info.dtype.isFloatingPoint else {
            throw SafeTensorsError.unsupportedConversion(file: path, tensor: name, dtype: info.dtype, target: "Int64")
        }
        let source = base + info.fileOffset
        let count = info.elementCount
        let values = [Int64](unsafeUninitializedCapacity: count) { buffer, initialized in
            for i in 0..<count {
                buffer.initializeElement(at: i, to: Self.int64(at: source, index: i, dtype: info.dtype))
            }
            initialized = count
        }
        return (info.shape, values)
    }

    /// Element `index` of an array of `dtype` at `source`, as a double.
    private static func double(at source: UnsafeRawPointer, index i: Int, dtype: DType) -> Double {
        switch dtype {
        case .F64: return source.loadUnaligned(fromByteOffset: i &* 8, as: Double.self)
        case .F32: return Double(source.loadUnaligned(fromByteOffset: i &* 4, as: Float.self))
        case .F16:
            return Double(HalfConversion.float(fromFloat16Bits: source.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self)))
        case .BF16:
            return Double(HalfConversion.float(fromBFloat16Bits: source.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self)))
        default: return Double(int64(at: source, index: i, dtype: dtype))
        }
    }

    /// Element `index` of an array of integer or BOOL `dtype` at `source` (0 for floating-point dtypes).
    private static func int64(at source: UnsafeRawPointer, index i: Int, dtype: DType) -> Int64 {
        switch dtype {
        case .I64: return source.loadUnaligned(fromByteOffset: i &* 8, as: Int64.self)
        case .I32: return Int64(source.loadUnaligned(fromByteOffset: i &* 4, as: Int32.self))
        case .I16: return Int64(source.loadUnaligned(fromByteOffset: i &* 2, as: Int16.self))
        case .I8: return Int64(source.load(fromByteOffset: i, as: Int8.self))
        case .U8: return Int64(source.load(fromByteOffset: i, as: UInt8.self))
        case .BOOL: return source.load(fromByteOffset: i, as: UInt8.self) == 0 ? 0 : 1
        case .F64, .F32, .F16, .BF16: return 0
        }
    }
}

/// The current `errno` as text.
func systemError() -> String {
    String(cString: strerror(errno))
}
