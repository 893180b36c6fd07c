/// A mutable container on the unpickler's stack or memo (pickles mutate containers after creating them).
private final class PickleBox {
    enum Kind {
        case list, tuple, dict
        case object(module: String, name: String)
    }
    let kind: Kind
    /// Elements (list, tuple), values (dict) or constructor arguments (object).
    var items: [PickleItem]
    var keys: [PickleItem] = []
    var keyIndex: [PickleKey: Int] = [:]
    var state: PickleItem?

    var isTuple: Bool {
        if case .tuple = kind { return true }
        return false
    }

    init(_ kind: Kind, _ items: [PickleItem] = []) {
        self.kind = kind
        self.items = items
    }

    /// Releases nested boxes one by one instead of recursively, so that a hostile chain of a million
    /// nested lists cannot overflow the call stack when it is dropped.
    deinit {
        var work: [PickleBox] = []
        func collect(_ item: PickleItem?) { if case let .box(box)? = item { work.append(box) } }
        func empty(_ box: PickleBox) {
            box.items.forEach(collect)
            box.keys.forEach(collect)
            collect(box.state)
            box.items.removeAll()
            box.keys.removeAll()
            box.state = nil
        }
        empty(self)
        while var box = work.popLast() {
            // Only a box nobody else holds is emptied; a shared one stays intact for its other owners.
            if isKnownUniquelyReferenced(&box) { empty(box) }
        }
    }

    /// Python's `d[key] = value`: a key seen before keeps its place and takes the new value.
    func set(_ key: PickleItem, _ value: PickleItem) {
        if let hashKey = PickleKey(key) {
            if let slot = keyIndex[hashKey] {
                items[slot] = value
                return
            }
            keyIndex[hashKey] = items.count
        }
        keys.append(key)
        items.append(value)
    }
}

/// An entry of the unpickler's stack or memo.
private enum PickleItem {
    case value(PickleValue)
    case global(module: String, name: String, callable: Bool)
    case box(PickleBox)
}

/// The identity of a hashable dict key (Python's `1 == 1.0 == True`).
private enum PickleKey: Hashable {
    case none
    case int(Int)
    case float(UInt64)
    case string(String)
    case bytes([UInt8])

    init?(_ item: PickleItem) {
        guard case let .value(value) = item else { return nil }
        switch value {
        case .none: self = .none
        case let .bool(flag): self = .int(flag ? 1 : 0)
        case let .int(number): self = .int(number)
        case let .float(number):
            if let exact = Int(exactly: number) { self = .int(exact) } else { self = .float(number.bitPattern) }
        case let .string(text) where text.utf8.count <= 1024: self = .string(text)
        case let .bytes(data) where data.count <= 1024: self = .bytes(data)
        default: return nil
        }
    }
}

/// A restricted pickle virtual machine (protocols 0–5, the opcodes tensor checkpoints use).
///
/// Globals are looked up in `policy`, never imported; REDUCE and NEWOBJ either evaluate a whitelisted
/// callable in Swift or describe an inert object. Containers are built as mutable boxes (pickles fill
/// them after creating them) and turned into `PickleValue`s, with cycle, depth and size checks, when
/// they are handed to a callable and at STOP.
final class Unpickler {
    private let bytes: UnsafeRawBufferPointer
    private let end: Int
    private let file: String
    private let policy: PicklePolicy
    private let limits: PickleLimits
    private(set) var position: Int
    private var opcodeStart = 0
    private var stack: [PickleItem] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleItem] = [:]
    private var pushes = 0
    private var nodes = 0
    private var byteTotal = 0
    private var active = Set<ObjectIdentifier>()

    /// Opcodes that are valid pickle but never needed by a tensor checkpoint; refused by name.
    private static let refused: [UInt8: String] = [
        0x69: "INST", 0x6f: "OBJ", 0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4",
        0x92: "NEWOBJ_EX", 0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER",
    ]

    /// Runs the pickle that starts at `range.lowerBound` of `bytes` up to its STOP.
    ///
    /// Returns the value and the offset just past STOP. Throws `TorchFileError` (`malformed`,
    /// `forbiddenGlobal`, `forbiddenOpcode`, `limitExceeded`) and whatever `policy` throws.
    static func load(
        _ bytes: UnsafeRawBufferPointer, range: Range<Int>, file: String, policy: PicklePolicy,
        limits: PickleLimits = PickleLimits()
    ) throws -> (value: PickleValue, end: Int) {
        let machine = Unpickler(bytes, range: range, file: file, policy: policy, limits: limits)
        let value = try machine.run()
        return (value, machine.position)
    }

    private init(_ bytes: UnsafeRawBufferPointer, range: Range<Int>, file: String, policy: PicklePolicy, limits: PickleLimits) {
        self.bytes = bytes
        self.end = min(range.upperBound, bytes.count)
        self.position = max(0, min(range.lowerBound, end))
        self.file = file
        self.policy = policy
        self.limits = limits
    }

    // MARK: The machine

    private func run() throws -> PickleValue {
        while true {
            opcodeStart = position
            let opcode = try byte()
            switch opcode {
            case 0x80:  // PROTO
                let version = try byte()
                guard version <= 5 else { throw fail("unsupported pickle protocol \(version)") }
            case 0x95: _ = try length(integer(UInt64.self))  // FRAME: announces how many bytes follow
            case 0x2e: return try convert(try pop(), depth: 0)  // STOP
            case 0x28:  // MARK
                guard stack.count + marks.count < limits.maxStack else { throw limit("more than \(limits.maxStack) stack entries") }
                marks.append(stack.count)
            case 0x30:  // POP
                if let mark = marks.last, mark == stack.count { _ = try popMark() } else { _ = try pop() }
            case 0x31: _ = try popMark()  // POP_MARK
            case 0x32: try push(try top())  // DUP
            case 0x4e: try push(.value(.none))
            case 0x88: try push(.value(.bool(true)))
            case 0x89: try push(.value(.bool(false)))
            case 0x49:  // INT
                let text = try lineText()
                if text == "00" || text == "01" { try push(.value(.bool(text == "01"))) } else { try push(.value(.int(try decimal(text)))) }
            case 0x4a: try push(.value(.int(Int(try integer(Int32.self)))))  // BININT
            case 0x4b: try push(.value(.int(Int(try byte()))))  // BININT1
            case 0x4d: try push(.value(.int(Int(try integer(UInt16.self)))))  // BININT2
            case 0x4c:  // LONG
                var text = try lineText()
                if text.hasSuffix("L") { text.removeLast() }
                try push(.value(.int(try decimal(text))))
            case 0x8a: try push(.value(.int(try long(take(Int(try byte()))))))  // LONG1
            case 0x8b: try push(.value(.int(try long(take(try length(integer(Int32.self)))))))  // LONG4
            case 0x47: try push(.value(.float(Double(bitPattern: try take(8).reduce(0) { $0 << 8 | UInt64($1) }))))  // BINFLOAT, big-endian
            case 0x46:  // FLOAT
                guard let number = Double(try lineText()) else { throw fail("FLOAT is not a number") }
                try push(.value(.float(number)))
            case 0x53: try push(.value(byteString(try quoted(try line()))))  // STRING
            case 0x54: try push(.value(byteString(try take(try length(integer(Int32.self))))))  // BINSTRING
            case 0x55: try push(.value(byteString(try take(Int(try byte())))))  // SHORT_BINSTRING
            case 0x56: try push(.value(.string(try rawUnicodeEscape(try line()))))  // UNICODE
            case 0x58: try push(.value(.string(try utf8(take(try length(integer(UInt32.self)))))))  // BINUNICODE
            case 0x8c: try push(.value(.string(try utf8(take(Int(try byte()))))))  // SHORT_BINUNICODE
            case 0x8d: try push(.value(.string(try utf8(take(try length(integer(UInt64.self)))))))  // BINUNICODE8
            case 0x42: try push(.value(.bytes(try data(take(try length(integer(UInt32.self)))))))  // BINBYTES
            case 0x43: try push(.value(.bytes(try data(take(Int(try byte()))))))  // SHORT_BINBYTES
            case 0x8e, 0x96: try push(.value(.bytes(try data(take(try length(integer(UInt64.self)))))))  // BINBYTES8, BYTEARRAY8
            case 0x5d, 0x8f: try push(.box(PickleBox(.list)))  // EMPTY_LIST, EMPTY_SET
            case 0x61:  // APPEND
                let item = try pop()
                try container(.list).items.append(item)
            case 0x65, 0x90:  // APPENDS, ADDITEMS
                let items = try popMark()
                try container(.list).items.append(contentsOf: items)
            case 0x6c, 0x91: try push(.box(PickleBox(.list, try popMark())))  // LIST, FROZENSET
            case 0x29: try push(.box(PickleBox(.tuple)))  // EMPTY_TUPLE
            case 0x74: try push(.box(PickleBox(.tuple, try popMark())))  // TUPLE
            case 0x85, 0x86, 0x87:  // TUPLE1-3
                let count = Int(opcode - 0x84)
                guard stack.count - (marks.last ?? 0) >= count else { throw fail("stack underflow") }
                let items = Array(stack.suffix(count))
                stack.removeLast(count)
                try push(.box(PickleBox(.tuple, items)))
            case 0x7d: try push(.box(PickleBox(.dict)))  // EMPTY_DICT
            case 0x64:  // DICT
                let box = PickleBox(.dict)
                try setItems(box, try popMark())
                try push(.box(box))
            case 0x73:  // SETITEM
                let value = try pop(), key = try pop()
                try container(.dict).set(key, value)
            case 0x75:  // SETITEMS
                let items = try popMark()
                try setItems(try container(.dict), items)
            case 0x70: try memoize(try decimal(try lineText()))  // PUT
            case 0x71: try memoize(Int(try byte()))  // BINPUT
            case 0x72: try memoize(Int(try integer(UInt32.self)))  // LONG_BINPUT
            case 0x94: try memoize(memo.count)  // MEMOIZE
            case 0x67: try recall(try decimal(try lineText()))  // GET
            case 0x68: try recall(Int(try byte()))  // BINGET
            case 0x6a: try recall(Int(try integer(UInt32.self)))  // LONG_BINGET
            case 0x63:  // GLOBAL
                let module = try utf8(try line()), name = try utf8(try line())
                try pushGlobal(module, name)
            case 0x93:  // STACK_GLOBAL
                let name = try pop(), module = try pop()
                guard case let .value(.string(moduleText)) = module, case let .value(.string(nameText)) = name else {
                    throw fail("STACK_GLOBAL needs two strings")
                }
                try pushGlobal(moduleText, nameText)
            case 0x52, 0x81:  // REDUCE, NEWOBJ
                let arguments = try pop(), callable = try pop()
                try push(try apply(callable, arguments))
            case 0x62:  // BUILD
                let state = try pop()
                switch try top() {
                case let .box(box):
                    switch box.kind {
                    case .object: box.state = state
                    case .dict: break  // an OrderedDict's attributes (a state dict's `_metadata`): dropped
                    default: throw fail("BUILD on a list or tuple")
                    }
                case .value(.tensor): break  // a parameter's attributes: dropped
                default: throw fail("BUILD on a value that is not an object")
                }
            case 0x50: try push(lift(try policy.persistentLoad(.string(try utf8(try line()))), depth: 0))  // PERSID
            case 0x51: try push(lift(try policy.persistentLoad(try convert(try pop(), depth: 0)), depth: 0))  // BINPERSID
            default:
                if let name = Self.refused[opcode] { throw TorchFileError.forbiddenOpcode(file: file, name) }
                throw fail("invalid opcode 0x\(String(opcode, radix: 16))")
            }
        }
    }

    // MARK: Stack and memo

    private func push(_ item: PickleItem) throws {
        pushes += 1
        guard pushes <= limits.maxValues else { throw limit("more than \(limits.maxValues) values") }
        guard stack.count + marks.count < limits.maxStack else { throw limit("more than \(limits.maxStack) stack entries") }
        stack.append(item)
    }

    private func pop() throws -> PickleItem {
        guard stack.count > (marks.last ?? 0), let item = stack.popLast() else { throw fail("stack underflow") }
        return item
    }

    private func top() throws -> PickleItem {
        guard stack.count > (marks.last ?? 0), let item = stack.last else { throw fail("stack underflow") }
        return item
    }

    private func popMark() throws -> [PickleItem] {
        guard let mark = marks.popLast() else { throw fail("no MARK on the stack") }
        let items = Array(stack[mark...])
        stack.removeSubrange(mark...)
        return items
    }

    /// The box on top of the stack, which must be of `kind` (list or dict).
    private func container(_ kind: PickleBox.Kind) throws -> PickleBox {
        guard case let .box(box) = try top() else { throw fail("no container on the stack") }
        switch (kind, box.kind) {
        case (.list, .list), (.dict, .dict): return box
        default: throw fail("the container on the stack is of the wrong kind")
        }
    }

    private func setItems(_ box: PickleBox, _ items: [PickleItem]) throws {
        guard items.count % 2 == 0 else { throw fail("odd number of items for a dict") }
        for i in stride(from: 0, to: items.count, by: 2) { box.set(items[i], items[i + 1]) }
    }

    private func memoize(_ index: Int) throws {
        guard index >= 0 else { throw fail("negative memo index") }
        if memo[index] == nil, memo.count >= limits.maxMemo { throw limit("more than \(limits.maxMemo) memo entries") }
        memo[index] = try top()
    }

    private func recall(_ index: Int) throws {
        guard let item = memo[index] else { throw fail("memo entry \(index) is missing") }
        try push(item)
    }

    private func pushGlobal(_ module: String, _ name: String) throws {
        guard module.utf8.count + name.utf8.count <= 1024 else { throw fail("a global name is longer than 1024 bytes") }
        let module = module == "__builtin__" ? "builtins" : module  // Python 2 name, as `fix_imports` maps it
        try push(.global(module: module, name: name, callable: try policy.global(module, name)))
    }

    /// REDUCE / NEWOBJ: a whitelisted callable is evaluated; an inert class becomes a described object.
    private func apply(_ callable: PickleItem, _ arguments: PickleItem) throws -> PickleItem {
        guard case let .global(module, name, isCallable) = callable else { throw fail("REDUCE on a value that is not a global") }
        let items: [PickleItem]
        switch arguments {
        case let .box(box) where box.isTuple: items = box.items
        case let .value(.tuple(values)): items = values.map { .value($0) }
        default: throw fail("REDUCE arguments are not a tuple")
        }
        guard isCallable else { return .box(PickleBox(.object(module: module, name: name), items)) }
        let values = try items.map { try convert($0, depth: 1) }
        return try lift(try policy.call(module, name, values), depth: 0)
    }

    // MARK: Conversion between stack items and values

    /// The value of `item`, refusing cycles, nesting past `maxDepth` and more than `maxNodes` nodes in all.
    private func convert(_ item: PickleItem, depth: Int) throws -> PickleValue {
        nodes += 1
        guard nodes <= limits.maxNodes else { throw limit("more than \(limits.maxNodes) values built") }
        guard depth <= limits.maxDepth else { throw limit("values nested deeper than \(limits.maxDepth)") }
        switch item {
        case let .value(value): return value
        case let .global(module, name, _): return .object(module: module, name: name, args: [], state: nil)
        case let .box(box):
            let id = ObjectIdentifier(box)
            guard active.insert(id).inserted else { throw fail("a container contains itself") }
            defer { active.remove(id) }
            let items = try box.items.map { try convert($0, depth: depth + 1) }
            switch box.kind {
            case .list: return .list(items)
            case .tuple: return .tuple(items)
            case .dict:
                let keys = try box.keys.map { try convert($0, depth: depth + 1) }
                return .dict(zip(keys, items).map { (key: $0.0, value: $0.1) })
            case let .object(module, name):
                return .object(module: module, name: name, args: items, state: try box.state.map { try convert($0, depth: depth + 1) })
            }
        }
    }

    /// `value` as a stack item: containers become boxes again, so that nesting is always counted.
    private func lift(_ value: PickleValue, depth: Int) throws -> PickleItem {
        nodes += 1
        guard nodes <= limits.maxNodes else { throw limit("more than \(limits.maxNodes) values built") }
        guard depth <= limits.maxDepth else { throw limit("values nested deeper than \(limits.maxDepth)") }
        switch value {
        case let .list(items): return .box(PickleBox(.list, try items.map { try lift($0, depth: depth + 1) }))
        case let .tuple(items): return .box(PickleBox(.tuple, try items.map { try lift($0, depth: depth + 1) }))
        case let .dict(pairs):
            let box = PickleBox(.dict)
            for pair in pairs { box.set(try lift(pair.key, depth: depth + 1), try lift(pair.value, depth: depth + 1)) }
            return .box(box)
        case let .object(module, name, args, state):
            let box = PickleBox(.object(module: module, name: name), try args.map { try lift($0, depth: depth + 1) })
            box.state = try state.map { try lift($0, depth: depth + 1) }
            return .box(box)
        default: return .value(value)
        }
    }

    // MARK: Reading

    private func fail(_ reason: String) -> TorchFileError {
        .malformed(file: file, "pickle: \(reason) at byte \(opcodeStart)")
    }

    private func limit(_ reason: String) -> TorchFileError {
        .limitExceeded(file: file, "pickle: \(reason)")
    }

    private func byte() throws -> UInt8 {
        guard position < end else { throw fail("the pickle ends before STOP; truncated?") }
        defer { position += 1 }
        return bytes[position]
    }

    /// The next `count` bytes.
    private func take(_ count: Int) throws -> UnsafeRawBufferPointer {
        guard count >= 0, count <= end - position else { throw fail("a length of \(count) runs past the end; truncated?") }
        defer { position += count }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<(position + count)])
    }

    private func integer<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        let raw = try take(MemoryLayout<T>.size)
        return T(littleEndian: raw.loadUnaligned(as: T.self))
    }

    /// A length read from the pickle, which must fit in what is left of it.
    private func length<T: FixedWidthInteger>(_ value: T) throws -> Int {
        guard value >= 0, let count = Int(exactly: value), count <= end - position else {
            throw fail("a length of \(value) runs past the end; truncated?")
        }
        return count
    }

    /// The bytes up to the next newline (which is consumed).
    private func line() throws -> UnsafeRawBufferPointer {
        let start = position
        while position < end, bytes[position] != 0x0a { position += 1 }
        guard position < end else { throw fail("a text line has no newline; truncated?") }
        position += 1
        return UnsafeRawBufferPointer(rebasing: bytes[start..<(position - 1)])
    }

    private func lineText() throws -> String { try utf8(try line()) }

    private func decimal(_ text: String) throws -> Int {
        guard let value = Int(text.trimmingSpaces) else { throw fail("'\(text.prefix(40))' is not an integer that fits 64 bits") }
        return value
    }

    /// A little-endian two's complement integer, which must fit 64 bits.
    private func long(_ raw: UnsafeRawBufferPointer) throws -> Int {
        guard let last = raw.last else { return 0 }
        let negative = last & 0x80 != 0
        var value: UInt64 = 0
        for i in 0..<min(8, raw.count) { value |= UInt64(raw[i]) << (8 * UInt64(i)) }
        if raw.count < 8, negative { value |= ~0 << (8 * UInt64(raw.count)) }
        if raw.count > 8 {
            let fill: UInt8 = negative ? 0xFF : 0
            guard raw[8...].allSatisfy({ $0 == fill }), (raw[7] & 0x80 != 0) == negative else {
                throw fail("an integer of \(raw.count) bytes does not fit 64 bits")
            }
        }
        return Int(Int64(bitPattern: value))
    }

    private func account(_ count: Int) throws {
        byteTotal += count
        guard byteTotal <= limits.maxBytes else { throw limit("more than \(limits.maxBytes) bytes of strings") }
    }

    private func data(_ raw: UnsafeRawBufferPointer) throws -> [UInt8] {
        try account(raw.count)
        return Array(raw)
    }

    private func utf8(_ raw: UnsafeRawBufferPointer) throws -> String {
        try account(raw.count)
        let text = String(decoding: raw, as: UTF8.self)
        guard text.utf8.elementsEqual(raw) else { throw fail("a string is not valid UTF-8") }
        return text
    }

    /// A Python 2 byte string: text when it is valid UTF-8 (as `torch.load` decodes it), bytes otherwise.
    private func byteString(_ raw: UnsafeRawBufferPointer) throws -> PickleValue {
        if let text = try? utf8(raw) { return .string(text) }
        return .bytes(try data(raw))
    }

    private func byteString(_ raw: [UInt8]) throws -> PickleValue {
        try raw.withUnsafeBytes { try byteString($0) }
    }

    /// The bytes of a protocol-0 STRING argument: a quoted Python literal with backslash escapes.
    private func quoted(_ raw: UnsafeRawBufferPointer) throws -> [UInt8] {
        guard raw.count >= 2, let quote = raw.first, quote == raw.last, quote == 0x27 || quote == 0x22 else {
            throw fail("STRING argument is not quoted")
        }
        let body = Array(raw[1..<(raw.count - 1)])
        var out: [UInt8] = []
        var i = 0
        while i < body.count {
            let c = body[i]
            i += 1
            guard c == 0x5c, i < body.count else {
                out.append(c)
                continue
            }
            let e = body[i]
            i += 1
            switch e {
            case 0x6e: out.append(0x0a)  // \n
            case 0x72: out.append(0x0d)  // \r
            case 0x74: out.append(0x09)  // \t
            case 0x61: out.append(0x07)  // \a
            case 0x62: out.append(0x08)  // \b
            case 0x66: out.append(0x0c)  // \f
            case 0x76: out.append(0x0b)  // \v
            case 0x0a: break  // line continuation
            case 0x78:  // \xHH
                guard i + 2 <= body.count, let v = UInt8(String(decoding: body[i..<(i + 2)], as: UTF8.self), radix: 16) else {
                    throw fail("bad \\x escape in STRING")
                }
                out.append(v)
                i += 2
            case 0x30...0x37:  // up to three octal digits
                var v = Int(e - 0x30)
                var digits = 1
                while digits < 3, i < body.count, (0x30...0x37).contains(body[i]) {
                    v = v * 8 + Int(body[i] - 0x30)
                    i += 1
                    digits += 1
                }
                out.append(UInt8(truncatingIfNeeded: v))
            case 0x5c, 0x27, 0x22: out.append(e)
            default: out.append(contentsOf: [0x5c, e])
            }
        }
        return out
    }

    /// A protocol-0 UNICODE argument: latin-1 text with `\uXXXX` and `\UXXXXXXXX` escapes.
    private func rawUnicodeEscape(_ raw: UnsafeRawBufferPointer) throws -> String {
        try account(raw.count)
        var scalars = String.UnicodeScalarView()
        var i = 0
        while i < raw.count {
            let c = raw[i]
            if c == 0x5c, i + 1 < raw.count, raw[i + 1] == 0x75 || raw[i + 1] == 0x55 {
                let digits = raw[i + 1] == 0x75 ? 4 : 8
                guard i + 2 + digits <= raw.count,
                    let code = UInt32(String(decoding: raw[(i + 2)..<(i + 2 + digits)], as: UTF8.self), radix: 16),
                    let scalar = Unicode.Scalar(code)
                else { throw fail("bad \\u escape in UNICODE") }
                scalars.append(scalar)
                i += 2 + digits
            } else {
                scalars.append(Unicode.Scalar(c))
                i += 1
            }
        }
        return String(scalars)
    }
}

private extension String {
    /// The text without leading and trailing spaces.
    var trimmingSpaces: Substring {
        var text = self[...]
        while text.first == " " { text.removeFirst() }
        while text.last == " " { text.removeLast() }
        return text
    }
}
