import Foundation
import Pivot
import PivotLoading
import PivotFormats
#if canImport(Glibc)
    import Glibc
#endif

/// What became of one batch row, as a line of `pivot-batch.jsonl`.
public struct BatchOutcome: Codable, Sendable, Equatable {
    public enum Status: String, Codable, Sendable { case ok, error, skipped }
    public var row: Int
    public var image: String
    /// The output path relative to the output folder ("" when the row never got one).
    public var output: String
    public var status: Status
    public var seconds: Double
    public var message: String
    /// SHA-256 of everything that shapes the row's output (photo content, model, embeddings, prompts,
    /// settings, output path, pivot version).
    public var settings: String

    public init(row: Int, image: String, output: String, status: Status, seconds: Double, message: String, settings: String) {
        self.row = row
        self.image = image
        self.output = output
        self.status = status
        self.seconds = seconds
        self.message = message
        self.settings = settings
    }
}

/// The append-only record of a batch in `OUT_DIR/pivot-batch.jsonl`: one JSON object per line, each written
/// with a single `write` and `fsync`ed after the row's output was renamed into place. A line cut short by
/// a crash is ignored when read back (and the next line starts on a fresh one), so a rerun knows exactly
/// which rows finished: a row counts as done when its latest line is `ok` with the same settings hash and
/// its output exists.
public final class BatchJournal {
    public static let fileName = "pivot-batch.jsonl"
    public let path: String
    /// The latest outcome per output path.
    public private(set) var latest: [String: BatchOutcome] = [:]
    private let fd: Int32

    public init(directory: String) throws {
        path = (directory as NSString).appendingPathComponent(Self.fileName)
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ManifestError(path: path, why: "cannot open the batch journal: \(String(cString: strerror(errno)))") }
        // Read under the lock, so another shard's line is never seen half written.
        while flock(fd, LOCK_EX) != 0 && errno == EINTR {}
        defer { flock(fd, LOCK_UN) }
        let existing = FileManager.default.contents(atPath: path) ?? Data()
        let decoder = JSONDecoder()
        for line in existing.split(separator: UInt8(ascii: "\n")) {
            if let o = try? decoder.decode(BatchOutcome.self, from: Data(line)), !o.output.isEmpty, o.status != .skipped {
                latest[o.output] = o
            }
        }
        // A crash mid-line leaves no newline at the end: start the next record on a line of its own.
        if let last = existing.last, last != UInt8(ascii: "\n") {
            try appendLocked(Array("\n".utf8))  // on failure, deinit closes the descriptor
        }
    }

    deinit { close(fd) }

    /// Whether `output` was written by a finished row with settings hash `settings` and is still there.
    public func isDone(output: String, settings: String, in directory: String) -> Bool {
        guard let o = latest[output], o.status == .ok, o.settings == settings else { return false }
        return FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent(output))
    }

    /// Appends one outcome (one line, synced to disk).
    public func append(_ outcome: BatchOutcome) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        try write(Array(try encoder.encode(outcome)) + [UInt8(ascii: "\n")])
        if outcome.status != .skipped, !outcome.output.isEmpty { latest[outcome.output] = outcome }
    }

    /// Appends `bytes` whole or not at all: a write cut short (disk full, file-size limit) is truncated away,
    /// so the journal never keeps half a line and every earlier line stays as it was. Shards writing one
    /// journal at once take turns (an exclusive flock per line), so the truncation can only remove this line.
    private func write(_ bytes: [UInt8]) throws {
        while flock(fd, LOCK_EX) != 0 && errno == EINTR {}
        defer { flock(fd, LOCK_UN) }
        try appendLocked(bytes)
    }

    /// `write` with the lock already held.
    private func appendLocked(_ bytes: [UInt8]) throws {
        let start = lseek(fd, 0, SEEK_END)
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let reason = String(cString: strerror(errno))
                if start >= 0 { _ = ftruncate(fd, start) }
                throw ManifestError(path: path, why: "cannot write the batch journal: \(reason)")
            }
            done += n
        }
        guard fsync(fd) == 0 else {
            let reason = String(cString: strerror(errno))
            if start >= 0 { _ = ftruncate(fd, start) }
            throw ManifestError(path: path, why: "cannot write the batch journal: \(reason)")
        }
    }
}

/// `--shard K/N`: rows are spread over N shards by their image path (so an image's rows, which share
/// one inversion, stay together); shard K (1-based) takes those whose path hashes to K − 1 modulo N.
public struct BatchShard: Sendable, Equatable {
    public let index: Int
    public let count: Int

    /// "K/N" with 1 ≤ K ≤ N; nil otherwise.
    public init?(parsing s: String) {
        let parts = s.split(separator: "/").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 2, let k = parts[0], let n = parts[1], n >= 1, (1...n).contains(k) else { return nil }
        index = k - 1
        count = n
    }

    public func contains(image: String) -> Bool {
        let digest = SHA256.hash(Array(image.utf8))
        let value = digest.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return Int(value % UInt64(count)) == index
    }
}
