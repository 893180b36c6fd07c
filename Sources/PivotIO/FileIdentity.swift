import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Whether two paths name the same existing file (device and inode), or the same standardized path.
public func sameFile(_ a: String, _ b: String) -> Bool {
    var sa = stat(), sb = stat()
    if stat(a, &sa) == 0, stat(b, &sb) == 0 { return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino }
    return URL(fileURLWithPath: a).standardizedFileURL == URL(fileURLWithPath: b).standardizedFileURL
}

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
