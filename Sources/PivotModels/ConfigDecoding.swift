import Foundation

/// A config value that diffusers allows as either one integer or a list of integers (one per block).
public enum IntOrList: Decodable, Equatable, Sendable {
    case one(Int)
    case list([Int])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let v = try? c.decode(Int.self) { self = .one(v) } else { self = .list(try c.decode([Int].self)) }
    }

    /// The per-block values for `count` blocks, or nil when a list has the wrong length.
    public func expanded(_ count: Int) -> [Int]? {
        switch self {
        case .one(let v): return Array(repeating: v, count: count)
        case .list(let l): return l.count == count ? l : nil
        }
    }
}

/// Decodes a diffusers/transformers config, turning decoding failures into one-line `ModelError`s.
func decodeConfig<T: Decodable>(_ type: T.Type, from data: Data, file: String) throws -> T {
    do {
        return try JSONDecoder().decode(T.self, from: data)
    } catch let DecodingError.keyNotFound(key, _) {
        throw ModelError.invalidConfig(file: file, reason: "missing field '\(key.stringValue)'")
    } catch let DecodingError.typeMismatch(_, ctx), let DecodingError.valueNotFound(_, ctx) {
        let path = ctx.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        throw ModelError.invalidConfig(file: file, reason: "field '\(path)' has the wrong type")
    } catch let DecodingError.dataCorrupted(ctx) {
        let path = ctx.codingPath.map { $0.stringValue }.joined(separator: ".")
        throw ModelError.invalidConfig(file: file, reason: path.isEmpty ? "not valid JSON" : "field '\(path)' is invalid")
    } catch {
        throw ModelError.invalidConfig(file: file, reason: "cannot be read as a config")
    }
}

/// Fails with `unsupportedConfig` unless `value` equals the one pivot implements.
func require<T: Equatable>(_ value: T?, _ supported: T?, field: String, file: String) throws {
    guard value == supported else {
        throw ModelError.unsupportedConfig(file: file, field: field, value: value.map { "\($0)" } ?? "null")
    }
}
