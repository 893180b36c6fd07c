import PivotTensor

/// Errors raised while building a network from a config and a parameter store.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    case missingTensor(String)
    case shapeMismatch(String, expected: [Int], found: [Int])
    case unexpectedTensors([String])
    case unsupportedConfig(file: String, field: String, value: String)
    case invalidConfig(file: String, reason: String)
    case invalidInput(String)

    public var description: String {
        switch self {
        case .missingTensor(let n): return "missing tensor '\(n)'"
        case .shapeMismatch(let n, let e, let f): return "tensor '\(n)' has shape \(f), expected \(e)"
        case .unexpectedTensors(let names):
            let shown = names.prefix(5).map { "'\($0)'" }.joined(separator: ", ")
            return "unexpected tensor\(names.count == 1 ? "" : "s") \(shown)"
                + (names.count > 5 ? " and \(names.count - 5) more" : "")
        case .unsupportedConfig(let file, let field, let value):
            return "\(file): \(field) = \(value) is not supported by pivot"
        case .invalidConfig(let file, let reason): return "\(file): \(reason)"
        case .invalidInput(let reason): return reason
        }
    }
}

/// Where networks get their weights. Implementations convert stored dtypes to fp32 and remember which
/// names were taken, so a loader can refuse tensors that no layer used.
public protocol ParameterStore: AnyObject {
    /// The fp32 tensor stored under `name`; throws `ModelError.missingTensor` or `.shapeMismatch`.
    func tensor(_ name: String, shape: [Int]) throws -> Tensor
}

/// A parameter store seen under a key prefix ("down_blocks.0.resnets.1").
public struct Params {
    public let store: ParameterStore
    public let prefix: String

    public init(_ store: ParameterStore, prefix: String = "") {
        self.store = store
        self.prefix = prefix
    }

    /// The full key of `name` under this prefix.
    public func key(_ name: String) -> String { prefix.isEmpty ? name : prefix + "." + name }

    /// The parameters under `name`.
    public func scope(_ name: String) -> Params { Params(store, prefix: key(name)) }
    /// The parameters under `name.index`.
    public func scope(_ name: String, _ index: Int) -> Params { scope("\(name).\(index)") }

    /// Loads `name` with the expected shape.
    public func callAsFunction(_ name: String, _ shape: [Int]) throws -> Tensor {
        try store.tensor(key(name), shape: shape)
    }
}
