import Foundation

// Limits on text inputs made by strangers (batch manifests, prompt files, template files, JSON configs):
// checked against the file's size before it is read and against its line count before it is parsed, so a
// hostile or mistaken file is refused with one line instead of spending the memory. Binary formats keep
// their own limits beside their readers (`ImageLimits`, the safetensors header and pickle limits).

/// How much of a text input pivot accepts. Both limits are settings (keys in `bytesKey`/`linesKey`) that a
/// front end may expose; the defaults are generous for real use and far below what would exhaust memory.
public struct TextLimits: Sendable, Equatable {
    /// The largest file accepted, in bytes.
    public var maxBytes: Int
    /// The most lines (rows of a manifest, prompts of a prompt file) accepted.
    public var maxLines: Int
    /// What a line is called in messages ("rows", "prompts", "lines").
    public var unit: String
    /// The setting key that raises `maxLines` (named in the message; nil when it is fixed).
    public var linesKey: String?

    public init(maxBytes: Int, maxLines: Int, unit: String = "lines", linesKey: String? = nil) {
        self.maxBytes = maxBytes
        self.maxLines = maxLines
        self.unit = unit
        self.linesKey = linesKey
    }

    /// Batch manifests: 64 MiB and 100,000 rows (a row is an edit of minutes; more is a mistake or an attack).
    public static let manifest = TextLimits(maxBytes: 64 << 20, maxLines: 100_000, unit: "rows", linesKey: "max_rows")
    /// Prompt files (`tokenize --file`): 64 MiB and 100,000 prompts.
    public static let prompts = TextLimits(maxBytes: 64 << 20, maxLines: 100_000, unit: "prompts", linesKey: "max_lines")
    /// Template files of textual-inversion learning: 16 MiB and 10,000 templates.
    public static let templates = TextLimits(maxBytes: 16 << 20, maxLines: 10_000, unit: "lines")
    /// JSON configs and tokenizer files (SD's largest, tokenizer.json, is ~3.5 MB): 64 MiB, lines not counted.
    public static let config = TextLimits(maxBytes: 64 << 20, maxLines: .max, unit: "lines")
}

/// A text input over its `TextLimits`; one line naming the file, what it holds and the limit.
public struct InputLimitError: SettingsNamingError, Equatable {
    public let path: String
    /// "is 80000000 bytes" or "has more than 100000 rows".
    public let found: String
    /// "the limit is 67108864 bytes".
    public let limit: String
    /// The setting that raises the limit, if any.
    public let key: String?

    public func description(naming: (String) -> String) -> String {
        let raise = key.map { "; raise it with \(naming($0))" } ?? ""
        return "\(escapedForOneLine(path)): \(found), over the limit of \(limit)\(raise)"
    }
}

/// Reads the text file at `path` within `limits`: its size is checked (fstat) before a byte is read and its
/// line count before it is returned. Throws `InputLimitError` over the limits and `why` (a closure making
/// the caller's own error from a reason) when the file cannot be read or is not UTF-8.
public func readLimitedText(_ path: String, limits: TextLimits, unreadable why: (String) -> Error) throws -> (text: String, data: Data) {
    let data = try readLimitedData(path, limits: limits, unreadable: why)
    let lines = data.reduce(into: 0) { count, byte in if byte == 0x0A { count += 1 } } + (data.last == 0x0A || data.isEmpty ? 0 : 1)
    if lines > limits.maxLines {
        throw InputLimitError(
            path: path, found: "has \(lines) \(limits.unit)", limit: "\(limits.maxLines) \(limits.unit)", key: limits.linesKey)
    }
    guard let text = String(data: data, encoding: .utf8) else { throw why("not UTF-8 text") }
    return (text, data)
}

/// Reads the file at `path` if it is at most `limits.maxBytes` long (checked before reading); see
/// `readLimitedText`.
public func readLimitedData(_ path: String, limits: TextLimits, unreadable why: (String) -> Error) throws -> Data {
    let handle: FileHandle
    do { handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path)) } catch { throw why("cannot be read") }
    defer { try? handle.close() }
    var info = stat()
    guard fstat(handle.fileDescriptor, &info) == 0 else { throw why("cannot be read") }
    guard (info.st_mode & S_IFMT) == S_IFREG || (info.st_mode & S_IFMT) == S_IFIFO else { throw why("not a regular file") }
    if Int(info.st_size) > limits.maxBytes {
        throw InputLimitError(path: path, found: "is \(info.st_size) bytes", limit: "\(limits.maxBytes) bytes", key: nil)
    }
    // Read at most one byte past the limit, so a file that grows (or a pipe) cannot exceed it either.
    let data: Data
    do { data = try handle.read(upToCount: limits.maxBytes + 1) ?? Data() } catch { throw why("cannot be read") }
    if data.count > limits.maxBytes {
        throw InputLimitError(path: path, found: "is over \(limits.maxBytes) bytes", limit: "\(limits.maxBytes) bytes", key: nil)
    }
    return data
}
