#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import PivotTensor

/// Where a tensor's elements are: storage key, element type, shape, strides and offset in elements.
public struct TorchTensorRef: Sendable, Equatable {
    /// The storage's key (its archive entry is `<prefix>/data/<key>`).
    public let storageKey: String
    /// The element type of the storage.
    public let dtype: DType
    /// The dimensions, outermost first; `[]` for a scalar.
    public let shape: [Int]
    /// The step in elements between neighbours along each dimension.
    public let strides: [Int]
    /// The index in the storage, in elements, of the first element.
    public let offset: Int

    /// A reference as described by the fields.
    public init(storageKey: String, dtype: DType, shape: [Int], strides: [Int], offset: Int) {
        self.storageKey = storageKey
        self.dtype = dtype
        self.shape = shape
        self.strides = strides
        self.offset = offset
    }
}

/// An error reading a PyTorch file; `description` is one line starting with the file path.
public enum TorchFileError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file could not be opened, inspected or mapped, or is not a regular file.
    case cannotOpen(file: String, reason: String)
    /// Neither a `torch.save` zip archive nor a legacy `torch.save` pickle stream.
    case notATorchFile(file: String)
    /// Broken or truncated structure; the text says what and where.
    case malformed(file: String, String)
    /// The named archive entry is compressed (torch.save stores entries uncompressed).
    case compressedEntry(file: String, String)
    /// The pickle names a global outside the whitelist, given as `module.name`.
    case forbiddenGlobal(file: String, String)
    /// The pickle uses an opcode tensor files never need, given by name.
    case forbiddenOpcode(file: String, String)
    /// The tensor's element type cannot be read as requested.
    case unsupportedDType(file: String, String)
    /// A safety limit (nesting, counts, sizes) was exceeded.
    case limitExceeded(file: String, String)

    /// A one-line explanation starting with the file path.
    public var description: String {
        let never = "(pivot reads only tensor dictionaries; it never runs code from a file)"
        switch self {
        case let .cannotOpen(file, reason): return "\(oneLine(file)): cannot open: \(oneLine(reason))"
        case let .notATorchFile(file):
            return "\(oneLine(file)): not a PyTorch file (neither a torch.save zip archive nor a legacy torch.save pickle)"
        case let .malformed(file, reason): return "\(oneLine(file)): malformed PyTorch file: \(oneLine(reason))"
        case let .compressedEntry(file, entry):
            return "\(oneLine(file)): the archive entry '\(oneLine(entry))' is compressed; torch.save writes stored entries only"
        case let .forbiddenGlobal(file, name): return "\(oneLine(file)): refuses the global \(oneLine(name)) \(never)"
        case let .forbiddenOpcode(file, name): return "\(oneLine(file)): refuses the pickle opcode \(oneLine(name)) \(never)"
        case let .unsupportedDType(file, reason): return "\(oneLine(file)): unsupported dtype: \(oneLine(reason))"
        case let .limitExceeded(file, reason): return "\(oneLine(file)): exceeds a safety limit: \(oneLine(reason))"
        }
    }
}

/// A PyTorch file written by `torch.save` (`.pt`, `.bin`, `.ckpt`), read without running anything.
///
/// Both formats are read: the zip archive of torch ≥ 1.6 (ZIP64 included) and the legacy pickle stream
/// (`_use_new_zipfile_serialization=False`). The pickle is run by pivot's own restricted machine: only
/// a whitelist of globals is accepted (tensor rebuilding, `OrderedDict`, storage and dtype names, numpy
/// scalars and a few inert classes), each evaluated by Swift code or merely described; anything else is
/// refused with `TorchFileError.forbiddenGlobal`. Every tensor reference is checked against its storage
/// when the file is opened. The file is memory-mapped; tensors are converted into fresh `Tensor`s.
public final class TorchFile: @unchecked Sendable {
    /// The path the file was opened with.
    public let path: String
    /// The unpickled object (zip: data.pkl; legacy: the 4th pickle).
    public let root: PickleValue

    /// The bytes of a storage: its element type and where it lies in the file.
    struct Storage {
        let dtype: DType
        let start: Int
        let byteCount: Int
    }

    private let base: UnsafeRawPointer
    private let size: Int
    private let mapped: Bool
    private let storages: [String: Storage]

    /// Opens, maps and unpickles `path` (zip or legacy torch.save format). Throws TorchFileError.
    public init(path: String) throws {
        guard !path.isEmpty else { throw TorchFileError.cannotOpen(file: path, reason: "the path is empty") }
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw TorchFileError.cannotOpen(file: path, reason: systemError()) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw TorchFileError.cannotOpen(file: path, reason: systemError()) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw TorchFileError.cannotOpen(file: path, reason: "not a regular file") }
        guard let size = Int(exactly: info.st_size), size > 0 else { throw TorchFileError.notATorchFile(file: path) }
        guard let mapping = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), mapping != MAP_FAILED else {
            throw TorchFileError.cannotOpen(file: path, reason: "mmap failed: \(systemError())")
        }
        let parsed: (root: PickleValue, storages: [String: Storage])
        do {
            parsed = try Self.parse(UnsafeRawBufferPointer(start: mapping, count: size), file: path)
        } catch {
            munmap(mapping, size)
            throw error
        }
        (self.path, self.root, self.storages) = (path, parsed.root, parsed.storages)
        (self.base, self.size, self.mapped) = (UnsafeRawPointer(mapping), size, true)
    }

    /// Reads a file's `contents` from memory (for tests); `path` is used in messages only.
    init(path: String, contents: [UInt8]) throws {
        guard !contents.isEmpty else { throw TorchFileError.notATorchFile(file: path) }
        let memory = UnsafeMutableRawPointer.allocate(byteCount: contents.count, alignment: 64)
        UnsafeMutableRawBufferPointer(start: memory, count: contents.count).copyBytes(from: contents)
        let parsed: (root: PickleValue, storages: [String: Storage])
        do {
            parsed = try Self.parse(UnsafeRawBufferPointer(start: memory, count: contents.count), file: path)
        } catch {
            memory.deallocate()
            throw error
        }
        (self.path, self.root, self.storages) = (path, parsed.root, parsed.storages)
        (self.base, self.size, self.mapped) = (UnsafeRawPointer(memory), contents.count, false)
    }

    deinit {
        if mapped { munmap(UnsafeMutableRawPointer(mutating: base), size) } else { base.deallocate() }
    }

    /// A fresh contiguous fp32 tensor for a reference (F32/F16/BF16/F64 storages; strides and offset honoured
    /// and bounds-checked against the storage; integer storages → error `unsupportedDType`).
    public func floatTensor(_ ref: TorchTensorRef) throws -> Tensor {
        let (storage, count) = try Self.check(ref, storages, file: path)
        guard ref.dtype.isFloatingPoint else {
            throw TorchFileError.unsupportedDType(file: path, "a \(ref.dtype.rawValue) tensor cannot be read as fp32")
        }
        let elementSize = ref.dtype.byteSize
        guard count <= max(storage.byteCount / elementSize, 1 << 24) else {
            throw TorchFileError.limitExceeded(file: path, "a tensor of \(count) elements repeats a storage of \(storage.byteCount / elementSize)")
        }
        let tensor = Tensor(uninitialized: ref.shape)
        let source = base + storage.start
        let destination = tensor.data
        if Self.isContiguous(ref) {
            let start = source + ref.offset * elementSize
            switch ref.dtype {
            case .F32: UnsafeMutableRawPointer(destination).copyMemory(from: start, byteCount: count * 4)
            case .F16: HalfConversion.convertFloat16ToFloat32(start, destination, count: count)
            case .BF16: HalfConversion.convertBFloat16ToFloat32(start, destination, count: count)
            default: for i in 0..<count { destination[i] = Self.element(source, ref.offset + i, ref.dtype) }
            }
            return tensor
        }
        // Strided: walk the multi-index, odometer style. `check` proved every index read is inside the storage;
        // wrapping arithmetic because a never-used stride of a size-1 dimension may be arbitrarily large.
        let shape = ref.shape, strides = ref.strides
        var index = [Int](repeating: 0, count: shape.count)
        var position = ref.offset
        for i in 0..<count {
            destination[i] = Self.element(source, position, ref.dtype)
            var d = shape.count - 1
            while d >= 0 {
                index[d] += 1
                position &+= strides[d]
                if index[d] < shape[d] { break }
                position &-= strides[d] &* shape[d]
                index[d] = 0
                d -= 1
            }
        }
        return tensor
    }

    /// Every tensor reachable from root with its dotted path ("state_dict.model.diffusion_model.x.weight", list items by index), in file order.
    public func tensors() -> [(name: String, ref: TorchTensorRef)] {
        var found: [(name: String, ref: TorchTensorRef)] = []
        Self.collect(root, "", into: &found)
        return found
    }

    // MARK: Reading the formats

    /// The root object and the storages of the file in `bytes`, with every tensor checked.
    private static func parse(_ bytes: UnsafeRawBufferPointer, file: String) throws -> (root: PickleValue, storages: [String: Storage]) {
        let table = StorageTable(file: file)
        let policy = TorchGlobals.policy(file: file, table: table)
        let root: PickleValue
        var storages: [String: Storage] = [:]
        if ZipArchive.looksLikeZip(bytes) {
            let archive = try ZipArchive(bytes: bytes, file: file)
            guard let pickle = archive.entries.first(where: { isTopLevelDataPickle($0.name) }) else {
                throw TorchFileError.notATorchFile(file: file)
            }
            let prefix = String(pickle.name.dropLast("data.pkl".count))
            if let order = archive.entry(named: prefix + "byteorder") {
                let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[try archive.dataRange(of: order)]), as: UTF8.self)
                guard text == "little" else {
                    throw TorchFileError.malformed(file: file, "byte order '\(text.prefix(20))' (only little-endian files are supported)")
                }
            }
            root = try Unpickler.load(bytes, range: try archive.dataRange(of: pickle), file: file, policy: policy).value
            for (key, (dtype, count)) in table.storages {
                guard let entry = archive.entry(named: prefix + "data/" + key) else {
                    throw TorchFileError.malformed(file: file, "the storage '\(key)' has no archive entry")
                }
                let range = try archive.dataRange(of: entry)
                let (needed, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
                guard !overflow, needed <= range.count else {
                    throw TorchFileError.malformed(
                        file: file, "the storage '\(key)' needs \(count) \(dtype.rawValue) elements but its entry has \(range.count) bytes")
                }
                storages[key] = Storage(dtype: dtype, start: range.lowerBound, byteCount: needed)
            }
        } else if let magicEnd = legacyMagicEnd(bytes) {
            var position = magicEnd
            func next() throws -> PickleValue {
                let (value, end) = try Unpickler.load(bytes, range: position..<bytes.count, file: file, policy: policy)
                position = end
                return value
            }
            guard case .int(1001)? = try? next() else {
                throw TorchFileError.malformed(file: file, "legacy format: unsupported protocol version")
            }
            if case .bool(false)? = try next()["little_endian"] {
                throw TorchFileError.malformed(file: file, "legacy format: big-endian files are not supported")
            }
            root = try next()
            guard case let .list(keys) = try next() else {
                throw TorchFileError.malformed(file: file, "legacy format: the storage key list is missing")
            }
            for item in keys {
                guard let key = item.stringValue, case let (dtype, minimum)? = table.storages[key], storages[key] == nil,
                    let count64 = ZipArchive.read(UInt64.self, bytes, at: position), let count = Int(exactly: count64)
                else { throw TorchFileError.malformed(file: file, "legacy format: bad storage list or data; truncated?") }
                let (byteCount, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
                guard !overflow, count >= minimum, byteCount <= bytes.count - position - 8 else {
                    throw TorchFileError.malformed(
                        file: file, "legacy format: the storage '\(key)' (\(count) elements) runs past the end; truncated?")
                }
                storages[key] = Storage(dtype: dtype, start: position + 8, byteCount: byteCount)
                position += 8 + byteCount
            }
        } else {
            throw TorchFileError.notATorchFile(file: file)
        }
        var found: [(name: String, ref: TorchTensorRef)] = []
        collect(root, "", into: &found)
        for (name, ref) in found {
            do { _ = try check(ref, storages, file: file) } catch let TorchFileError.malformed(_, reason) {
                throw TorchFileError.malformed(file: file, "tensor '\(name)': \(reason)")
            }
        }
        return (root, storages)
    }

    /// Whether `name` is `<folder>/data.pkl` for a top-level folder.
    private static func isTopLevelDataPickle(_ name: String) -> Bool {
        guard name.hasSuffix("/data.pkl") else { return false }
        let folder = name.dropLast("/data.pkl".count)
        return !folder.isEmpty && !folder.contains("/")
    }

    /// The offset just past the legacy format's first pickle, the magic number 0x1950a86a20f9469cfc6c.
    private static func legacyMagicEnd(_ bytes: UnsafeRawBufferPointer) -> Int? {
        let magic: [UInt8] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]
        let text = Array("L119547037146038801333356L\n.".utf8)
        if bytes.count >= text.count, bytes.prefix(text.count).elementsEqual(text) { return text.count }
        guard bytes.count >= 2, bytes[0] == 0x80, bytes[1] <= 5 else { return nil }
        var position = 2
        if bytes.count > position, bytes[position] == 0x95 { position += 9 }  // FRAME
        let expected = [0x8a, 0x0a] + magic + [0x2e]
        guard bytes.count >= position + expected.count,
            bytes[position..<(position + expected.count)].elementsEqual(expected)
        else { return nil }
        return position + expected.count
    }

    // MARK: Tensors

    /// The storage of `ref` and its element count, after checking that every element lies in the storage.
    static func check(_ ref: TorchTensorRef, _ storages: [String: Storage], file: String) throws -> (Storage, Int) {
        guard let storage = storages[ref.storageKey] else {
            throw TorchFileError.malformed(file: file, "no storage '\(ref.storageKey)'")
        }
        let bad = TorchFileError.malformed(
            file: file, "shape \(ref.shape), strides \(ref.strides) and offset \(ref.offset) do not fit a storage of \(storage.byteCount) bytes")
        guard ref.shape.count == ref.strides.count, ref.shape.count <= 64, ref.offset >= 0,
            ref.shape.allSatisfy({ $0 >= 0 }), ref.strides.allSatisfy({ $0 >= 0 })
        else { throw bad }
        var count = 1
        var last = ref.offset
        for (dimension, stride) in zip(ref.shape, ref.strides) {
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard !overflow else { throw bad }
            count = product
            if dimension > 0 {
                let (step, overflow1) = (dimension - 1).multipliedReportingOverflow(by: stride)
                let (sum, overflow2) = last.addingReportingOverflow(step)
                guard !overflow1, !overflow2 else { throw bad }
                last = sum
            }
        }
        let elements = storage.byteCount / ref.dtype.byteSize
        guard count == 0 ? ref.offset <= elements : last < elements else { throw bad }
        return (storage, count)
    }

    private static func isContiguous(_ ref: TorchTensorRef) -> Bool {
        var expected = 1
        for (dimension, stride) in zip(ref.shape, ref.strides).reversed() where dimension != 1 {
            guard stride == expected else { return false }
            expected *= dimension
        }
        return true
    }

    /// Element `index` of a storage of `dtype` at `source`, as fp32.
    private static func element(_ source: UnsafeRawPointer, _ index: Int, _ dtype: DType) -> Float {
        switch dtype {
        case .F32: return source.loadUnaligned(fromByteOffset: index * 4, as: Float.self)
        case .F16: return HalfConversion.float(fromFloat16Bits: source.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self))
        case .BF16: return HalfConversion.float(fromBFloat16Bits: source.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self))
        case .F64: return Float(source.loadUnaligned(fromByteOffset: index * 8, as: Double.self))
        default: return 0
        }
    }

    /// Appends the tensors in `value` under dotted paths starting at `prefix`, depth first in order.
    private static func collect(_ value: PickleValue, _ prefix: String, into found: inout [(name: String, ref: TorchTensorRef)]) {
        func child(_ name: String) -> String { prefix.isEmpty ? name : prefix + "." + name }
        switch value {
        case let .tensor(ref): found.append((prefix, ref))
        case let .list(items), let .tuple(items):
            for (i, item) in items.enumerated() { collect(item, child(String(i)), into: &found) }
        case let .dict(pairs):
            for pair in pairs { collect(pair.value, child(keyName(pair.key)), into: &found) }
        case let .object(_, _, args, state):
            for (i, item) in args.enumerated() { collect(item, child(String(i)), into: &found) }
            if let state { collect(state, prefix, into: &found) }
        default: break
        }
    }

    /// A dict key as a path component.
    private static func keyName(_ key: PickleValue) -> String {
        switch key {
        case let .string(text): return text
        case let .int(number): return String(number)
        case let .bool(flag): return flag ? "True" : "False"
        case let .float(number): return String(number)
        case .none: return "None"
        case let .object(module, name, _, _): return module + "." + name
        case let .tuple(items): return "(" + items.map(keyName).joined(separator: ",") + ")"
        default: return "?"
        }
    }
}

/// The storages the pickle's persistent ids named, with their element type and element count.
final class StorageTable {
    private let file: String
    private(set) var storages: [String: (dtype: DType, count: Int)] = [:]

    init(file: String) { self.file = file }

    func record(_ key: String, _ dtype: DType, _ count: Int) throws {
        if let known = storages[key] {
            guard known.dtype == dtype else {
                throw TorchFileError.malformed(file: file, "the storage '\(key)' is used as \(known.dtype.rawValue) and \(dtype.rawValue)")
            }
            storages[key] = (dtype, max(known.count, count))
        } else {
            storages[key] = (dtype, count)
        }
    }
}

/// The globals a PyTorch file may name, and pivot's own evaluation of the callable ones.
enum TorchGlobals {
    static let storageTypes: [String: DType] = [
        "FloatStorage": .F32, "HalfStorage": .F16, "BFloat16Storage": .BF16, "DoubleStorage": .F64,
        "LongStorage": .I64, "IntStorage": .I32, "ShortStorage": .I16, "CharStorage": .I8,
        "ByteStorage": .U8, "BoolStorage": .BOOL,
    ]
    static let dtypeNames: Set<String> = [
        "float32", "float", "float64", "double", "float16", "half", "bfloat16", "int64", "long", "int32", "int",
        "int16", "short", "int8", "uint8", "uint16", "uint32", "uint64", "bool", "complex64", "complex128",
        "cfloat", "cdouble", "float8_e4m3fn", "float8_e5m2",
    ]
    static let callables: Set<String> = [
        "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor", "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state", "collections.OrderedDict", "_codecs.encode", "torch.Size",
        "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "builtins.set", "builtins.frozenset",
    ]
    static let inertClasses: Set<String> = [
        "torch.storage.UntypedStorage", "numpy.dtype", "torch.nn.modules.container.ParameterDict",
        "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
    ]

    /// The unpickler policy for `file`, recording persistent ids in `table`.
    static func policy(file: String, table: StorageTable) -> PicklePolicy {
        PicklePolicy(
            global: { module, name in
                let full = module + "." + name
                if callables.contains(full) { return true }
                if inertClasses.contains(full) || module == "torch" && (storageTypes[name] != nil || dtypeNames.contains(name)) {
                    return false
                }
                throw TorchFileError.forbiddenGlobal(file: file, full)
            },
            call: { module, name, args in try call(module, name, args, file: file) },
            persistentLoad: { pid in try persistentLoad(pid, table: table, file: file) })
    }

    /// The element type of a storage class value (`torch.FloatStorage`, `torch.storage.UntypedStorage`, ...).
    static func storageDType(_ value: PickleValue) -> DType? {
        guard case let .object(module, name, args, state) = value, args.isEmpty, state == nil else { return nil }
        if module == "torch" { return storageTypes[name] }
        return module == "torch.storage" && name == "UntypedStorage" ? .U8 : nil
    }

    /// A storage for `('storage', type, key, location, count[, view_metadata])`, as a 1-D tensor over it.
    private static func persistentLoad(_ pid: PickleValue, table: StorageTable, file: String) throws -> PickleValue {
        let bad = TorchFileError.malformed(file: file, "unsupported persistent id (expected ('storage', type, key, location, size))")
        guard case let .tuple(items) = pid, items.count == 5 || items.count == 6, items[0].stringValue == "storage",
            let dtype = storageDType(items[1]), let key = items[2].stringValue, items[3].stringValue != nil,
            let count = items[4].intValue, count >= 0
        else { throw bad }
        var view = (offset: 0, count: count)
        if items.count == 6, case let .tuple(meta) = items[5] {  // legacy storage view: (view_key, offset, size)
            guard meta.count == 3, let offset = meta[1].intValue, let size = meta[2].intValue, offset >= 0, size >= 0 else { throw bad }
            view = (offset, size)
        } else if items.count == 6, case .none = items[5] {
        } else if items.count == 6 {
            throw bad
        }
        try table.record(key, dtype, count)
        return .tensor(TorchTensorRef(storageKey: key, dtype: dtype, shape: [view.count], strides: [1], offset: view.offset))
    }

    /// The integers of a tuple or list, or nil.
    private static func integers(_ value: PickleValue) -> [Int]? {
        switch value {
        case let .tuple(items), let .list(items):
            let numbers = items.compactMap(\.intValue)
            return numbers.count == items.count ? numbers : nil
        default: return nil
        }
    }

    /// Evaluates a whitelisted callable.
    static func call(_ module: String, _ name: String, _ args: [PickleValue], file: String) throws -> PickleValue {
        let bad = TorchFileError.malformed(file: file, "unexpected arguments to \(module).\(name)")
        switch module + "." + name {
        case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor":
            guard name.hasSuffix("v2") ? (args.count == 6 || args.count == 7) : args.count == 4,
                case let .tensor(storage) = args[0], let offset = args[1].intValue,
                let shape = integers(args[2]), let strides = integers(args[3]), offset >= 0,
                shape.count == strides.count, shape.count <= 64,
                shape.allSatisfy({ $0 >= 0 }), strides.allSatisfy({ $0 >= 0 })
            else { throw bad }
            let (start, overflow) = storage.offset.addingReportingOverflow(offset)
            guard !overflow else { throw bad }
            return .tensor(TorchTensorRef(storageKey: storage.storageKey, dtype: storage.dtype, shape: shape, strides: strides, offset: start))
        case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
            guard args.count == (name.hasSuffix("state") ? 4 : 3), case .tensor = args[0] else { throw bad }
            return args[0]
        case "collections.OrderedDict":
            guard let source = args.first else { return .dict([]) }
            guard args.count == 1 else { throw bad }
            switch source {
            case let .dict(pairs): return .dict(pairs)
            case let .list(items), let .tuple(items):
                return .dict(
                    try items.map { item in
                        guard case let .tuple(pair) = item, pair.count == 2 else { throw bad }
                        return (key: pair[0], value: pair[1])
                    })
            default: throw bad
            }
        case "_codecs.encode":
            guard args.count == 1 || args.count == 2, case let .string(text) = args[0] else { throw bad }
            switch args.count == 2 ? args[1].stringValue?.lowercased() : "utf-8" {
            case "latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1":
                return .bytes(
                    try text.unicodeScalars.map { scalar in
                        guard scalar.value < 256 else { throw bad }
                        return UInt8(scalar.value)
                    })
            case "utf-8", "utf8": return .bytes(Array(text.utf8))
            default: throw bad
            }
        case "torch.Size":
            guard let source = args.first else { return .tuple([]) }
            guard args.count == 1, let sizes = integers(source) else { throw bad }
            return .tuple(sizes.map { .int($0) })
        case "builtins.set", "builtins.frozenset":
            guard let source = args.first else { return .list([]) }
            switch source {
            case let .list(items), let .tuple(items): return .list(items)
            case let .dict(pairs): return .list(pairs.map(\.key))
            default: throw bad
            }
        case "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar":
            return try numpyScalar(args, file: file) ?? .object(module: module, name: name, args: args, state: nil)
        default:
            throw TorchFileError.forbiddenGlobal(file: file, module + "." + name)
        }
    }

    /// The number held by a numpy scalar of a plain int, float or bool dtype; nil for other dtypes.
    private static func numpyScalar(_ args: [PickleValue], file: String) throws -> PickleValue? {
        guard args.count == 2, case let .object(module: "numpy", name: "dtype", args: dtypeArgs, state: state) = args[0],
            let code = dtypeArgs.first?.stringValue
        else { return nil }
        var raw: [UInt8]
        switch args[1] {
        case let .bytes(data): raw = data
        case let .string(text) where text.unicodeScalars.allSatisfy({ $0.value < 256 }):
            raw = text.unicodeScalars.map { UInt8($0.value) }
        default: return nil
        }
        if case let .tuple(fields)? = state, fields.count > 1, fields[1].stringValue == ">" { raw.reverse() }
        let sizes = ["f8": 8, "f4": 4, "f2": 2, "i8": 8, "i4": 4, "i2": 2, "i1": 1, "u8": 8, "u4": 4, "u2": 2, "u1": 1, "b1": 1]
        guard let size = sizes[code] else { return nil }
        guard raw.count == size else {
            throw TorchFileError.malformed(file: file, "a numpy \(code) scalar has \(raw.count) bytes")
        }
        let bits = raw.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        switch code {
        case "f8": return .float(Double(bitPattern: bits))
        case "f4": return .float(Double(Float(bitPattern: UInt32(bits))))
        case "f2": return .float(Double(HalfConversion.float(fromFloat16Bits: UInt16(bits))))
        case "b1": return .bool(bits != 0)
        case "u8": return Int(exactly: bits).map { .int($0) }
        case "i8": return .int(Int(Int64(bitPattern: bits)))
        default:
            let shift = UInt64(64 - 8 * size)
            return .int(code.hasPrefix("i") ? Int(Int64(bitPattern: bits << shift) >> Int64(shift)) : Int(bits))
        }
    }
}
