import Foundation

// One-line messages for every front end: errors that name settings say so, and each front end spells the
// names its own way (batch manifests by key, the command line as flags).

/// An error that names settings (`steps`, `inner_steps`, `cross_replace`, …: the keys of batch manifests).
/// Its plain `description` names them as keys; a front end passes `naming` to show its own spelling (the
/// command line shows `--inner-steps`), so the library never speaks of flags.
public protocol SettingsNamingError: Error, CustomStringConvertible {
    /// The message with every setting key `k` written as `naming(k)`.
    func description(naming: (String) -> String) -> String
}

extension SettingsNamingError {
    public var description: String { description(naming: { $0 }) }
}

/// An error's description on one line (line breaks become spaces), for messages and journals; `naming`
/// spells the settings a `SettingsNamingError` names (keys by default).
public func oneLineDescription(of error: Error, naming: ((String) -> String)? = nil) -> String {
    let text: String
    if let naming, let e = error as? SettingsNamingError { text = e.description(naming: naming) } else { text = String(describing: error) }
    return text.split(whereSeparator: \.isNewline).joined(separator: " ")
}

/// A setting (or several) outside what it takes: `steps` "must be between 1 and 1000".
public struct SettingError: SettingsNamingError, Equatable {
    /// The settings' keys (`steps`, `inner_steps`, …).
    public let keys: [String]
    /// What is wrong, after the names: "must be a finite number".
    public let problem: String

    public init(_ keys: String..., problem: String) {
        self.keys = keys
        self.problem = problem
    }

    public func description(naming: (String) -> String) -> String {
        let names = keys.map(naming)
        let list = names.count <= 1 ? names.joined() : names.dropLast().joined(separator: ", ") + " and " + names[names.count - 1]
        return "\(list) \(problem)"
    }
}
