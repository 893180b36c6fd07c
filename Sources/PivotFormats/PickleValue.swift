/// A value decoded by the restricted unpickler; nothing in it can run code.
public indirect enum PickleValue: Sendable {
    /// Python's `None`.
    case none
    /// A `bool`.
    case bool(Bool)
    /// An `int` that fits 64 bits.
    case int(Int)
    /// A `float`.
    case float(Double)
    /// A `str` (also a protocol-0/2 byte string that is valid UTF-8).
    case string(String)
    /// `bytes` or `bytearray`.
    case bytes([UInt8])
    /// A `list`, `set` or `frozenset`.
    case list([PickleValue])
    /// A `tuple` (also `torch.Size`).
    case tuple([PickleValue])
    /// A `dict` or `OrderedDict`, in insertion order.
    case dict([(key: PickleValue, value: PickleValue)])
    /// A tensor (or a bare storage, as a one-dimensional tensor over all of it).
    case tensor(TorchTensorRef)
    /// An instance of a class on the inert list, or the bare class: never constructed, only described.
    case object(module: String, name: String, args: [PickleValue], state: PickleValue?)

    /// The value stored under the string `key` when this is a dict; nil otherwise.
    public subscript(key: String) -> PickleValue? {
        guard case let .dict(pairs) = self else { return nil }
        for pair in pairs {
            if case let .string(name) = pair.key, name == key { return pair.value }
        }
        return nil
    }

    /// The text of a `.string`.
    public var stringValue: String? {
        if case let .string(text) = self { return text }
        return nil
    }

    /// The number of an `.int`.
    public var intValue: Int? {
        if case let .int(value) = self { return value }
        return nil
    }

    /// The reference of a `.tensor`.
    public var tensorValue: TorchTensorRef? {
        if case let .tensor(ref) = self { return ref }
        return nil
    }
}

/// Limits that keep a hostile pickle from exhausting memory, time or the call stack.
struct PickleLimits {
    /// Items on the stack plus open marks.
    var maxStack = 1 << 20
    /// Memo entries.
    var maxMemo = 1 << 20
    /// Container nesting depth of any value.
    var maxDepth = 100
    /// Values pushed over the whole run.
    var maxValues = 1 << 23
    /// Value nodes built when turning the pickle's containers into `PickleValue`s (shared ones count each time).
    var maxNodes = 1 << 22
    /// Bytes of all strings and byte strings together.
    var maxBytes = 1 << 28
}

/// How the unpickler treats globals and persistent ids (the torch reader supplies the whitelist).
struct PicklePolicy {
    /// Classifies a global: true for a callable that `call` evaluates, false for an inert class; throws to refuse it.
    var global: (_ module: String, _ name: String) throws -> Bool
    /// Evaluates a callable global on its arguments.
    var call: (_ module: String, _ name: String, _ args: [PickleValue]) throws -> PickleValue
    /// The value a persistent id stands for.
    var persistentLoad: (_ pid: PickleValue) throws -> PickleValue
}
