import CPivotIO
import Foundation

/// Atomic file replacement: content is written to a temporary file beside the destination, synced, and
/// renamed over it, so a reader (or a crash) sees the old file or the new one, never a part. The
/// temporary file is removed when anything fails, and when the process is interrupted (SIGINT, SIGTERM,
/// SIGHUP) while it exists.
public enum AtomicFile {
    /// A failure of the mechanics (not of the caller's `body`, whose errors pass through unchanged).
    public enum Failure: Error, Equatable {
        /// The path names no file (empty, "." or "..").
        case notAFile
        /// The destination exists and is a directory.
        case isDirectory
        /// The destination is (a link to) one of the protected inputs.
        case protectedInput(String)
        /// `step` ("create a temporary file in DIR", "fsync", "close", "rename") failed for `reason`.
        case failed(step: String, reason: String)
    }

    /// Runs `body` on a new temporary file next to `path`, then fsyncs it, renames it over `path` and
    /// fsyncs the directory. Refuses a destination that is a directory or the same file (device and inode,
    /// so also through links) as one of `inputs`.
    public static func write(to path: String, protecting inputs: [String] = [], _ body: (Int32) throws -> Void) throws {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        guard !name.isEmpty, name != ".", name != ".." else { throw Failure.notAFile }
        var destination = stat()
        if stat(path, &destination) == 0 {
            if (destination.st_mode & S_IFMT) == S_IFDIR { throw Failure.isDirectory }
            for input in inputs {
                var original = stat()
                if stat(input, &original) == 0, original.st_dev == destination.st_dev, original.st_ino == destination.st_ino {
                    throw Failure.protectedInput(input)
                }
            }
        }
        let prefix = directory == "/" ? "/" : directory + "/"
        let temporary = prefix + ".\(name).tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        pv_install_cleanup_handlers()
        let slot = pv_register_temp(temporary)
        defer { pv_unregister_temp(slot) }
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
        guard fd >= 0 else { throw Failure.failed(step: "create a temporary file in '\(directory)'", reason: lastError()) }
        var isOpen = true
        do {
            try body(fd)
            guard fsync(fd) == 0 else { throw Failure.failed(step: "fsync", reason: lastError()) }
            isOpen = false
            guard close(fd) == 0 else { throw Failure.failed(step: "close", reason: lastError()) }
            guard rename(temporary, path) == 0 else { throw Failure.failed(step: "rename from temporary file", reason: lastError()) }
        } catch {
            if isOpen { close(fd) }
            unlink(temporary)
            throw error
        }
        // Make the rename itself durable; failure here does not undo a completed write.
        let directoryFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryFD >= 0 {
            _ = fsync(directoryFD)
            close(directoryFD)
        }
    }

    /// The message of the current `errno`.
    public static func lastError() -> String { String(cString: strerror(errno)) }
}

/// `text` with line breaks and other control characters escaped as `\u{…}`, so that a message that quotes
/// user-controlled paths or names stays on one line.
public func escapedForOneLine(_ text: String) -> String {
    guard text.unicodeScalars.contains(where: isLineBreaking) else { return text }
    var out = String.UnicodeScalarView()
    for scalar in text.unicodeScalars {
        if isLineBreaking(scalar) {
            out.append(contentsOf: "\\u{\(String(scalar.value, radix: 16))}".unicodeScalars)
        } else {
            out.append(scalar)
        }
    }
    return String(out)
}

private func isLineBreaking(_ scalar: Unicode.Scalar) -> Bool {
    let v = scalar.value
    return v < 0x20 || v == 0x7F || v == 0x85 || v == 0x2028 || v == 0x2029
}
