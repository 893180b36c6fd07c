import Foundation
import PivotLoading
import PivotFormats
import PivotIO
import PivotTensor

/// Inversions kept between edits of the same photo, keyed by photo, model, prompt and settings, in
/// `$PIVOT_CACHE_DIR` or `~/.cache/pivot/inversions`.
public struct InversionCache {
    public let directory: String

    public init(directory: String? = nil) {
        let env = ProcessInfo.processInfo.environment
        self.directory =
            directory ?? env["PIVOT_CACHE_DIR"]
            ?? ((env["XDG_CACHE_HOME"] ?? (NSHomeDirectory() + "/.cache")) + "/pivot/inversions")
    }

    /// The cache key: a SHA-256 of everything that shapes the inversion.
    public static func key(
        photoHash: String, modelFingerprint: String, prompt: String, settings s: InversionSettings,
        embeddings: String = "", precisionTag: String? = nil
    ) -> String {
        let parts =
            [pivotVersion, photoHash, modelFingerprint, prompt, s.canonical, embeddings]
            + (precisionTag.map { [$0] } ?? [])
        let text = parts.joined(separator: "\u{1F}")
        return SHA256.hex(SHA256.hash(Array(text.utf8)))
    }

    public func path(for key: String) -> String { (directory as NSString).appendingPathComponent(key + ".safetensors") }

    /// What a cache lookup found.
    public enum Lookup {
        /// No entry for the key.
        case absent
        /// An entry whose content matches the hash it was stored with.
        case hit(InversionRecord)
        /// An entry that cannot be trusted (unreadable, no content hash, or content that does not match it).
        case damaged(String)
    }

    /// The cached record for `key`, checked against the SHA-256 of its tensors stored beside them
    /// (`content_sha256`): a flipped bit, a truncated or hand-edited entry is reported as damaged, never used.
    public func lookup(_ key: String) -> Lookup {
        let p = path(for: key)
        guard FileManager.default.fileExists(atPath: p) else { return .absent }
        let record: InversionRecord
        do { record = try InversionRecord(path: p) } catch { return .damaged(oneLineDescription(of: error)) }
        guard let stored = record.metadata[Self.contentHashKey] else { return .damaged("\(p): no content hash") }
        guard stored == record.contentHash() else { return .damaged("\(p): its content does not match its hash") }
        return .hit(record)
    }

    /// The cached record, if any and intact (a damaged entry counts as absent; see `lookup`).
    public func load(_ key: String) -> InversionRecord? {
        if case .hit(let record) = lookup(key) { return record }
        return nil
    }

    /// Stores a record (atomically) with the hash of its content; failures to cache are reported, not fatal,
    /// by the caller.
    public func store(_ record: InversionRecord, key: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var record = record
        record.metadata[Self.contentHashKey] = record.contentHash()
        try record.write(to: path(for: key))
    }

    /// The metadata key of an entry's content hash.
    public static let contentHashKey = "content_sha256"

    /// Runs `body` holding an exclusive lock on `key` (flock on `.locks/<key>` in the cache folder), so that
    /// two processes inverting the same photo the same way compute it once: the second waits, then finds the
    /// first one's entry. The lock goes with the process (a killed holder leaves no stale lock). When the lock
    /// file cannot be made (read-only cache), `body` runs unlocked.
    public func withLock<T>(_ key: String, _ body: () throws -> T) rethrows -> T {
        let locks = (directory as NSString).appendingPathComponent(".locks")
        try? FileManager.default.createDirectory(atPath: locks, withIntermediateDirectories: true)
        let fd = open((locks as NSString).appendingPathComponent(key), O_RDWR | O_CREAT | O_CLOEXEC, 0o666)
        guard fd >= 0 else { return try body() }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 && errno == EINTR {}
        defer { flock(fd, LOCK_UN) }
        return try body()
    }
}

extension InversionRecord {
    /// SHA-256 over the method and every tensor's name, shape and fp32 values, in a fixed order: what a cache
    /// entry is checked against.
    public func contentHash() -> String {
        var h = SHA256()
        func add(_ name: String, _ tensors: [Tensor]?) {
            guard let tensors else { return }
            h.update(Array("\(name)\u{1F}\(tensors.count)\u{1F}".utf8))
            for t in tensors {
                h.update(Array("\(t.shape)".utf8))
                withExtendedLifetime(t) { h.update(UnsafeRawBufferPointer(start: t.data, count: t.count * MemoryLayout<Float>.size)) }
            }
        }
        h.update(Array(method.rawValue.utf8))
        add("latents", latents)
        add("null_embeddings", nullEmbeddings)
        add("offsets", offsets)
        add("noise_maps", noiseMaps)
        return SHA256.hex(h.finalize())
    }
}

extension StableDiffusion {
    /// The inversion of a photo under `prompt`: from `cache` when it holds one made with the same photo
    /// (by content), model, prompt, settings and embeddings, else computed (and stored there; a failure to
    /// store is passed to `warn`, not thrown); `photoHash`, when the caller has it, saves hashing the photo
    /// again. Returns the record and, when it came from the cache, its path.
    public func inversion(
        photo: String, prompt: String, settings: InversionSettings, cache: InversionCache?,
        photoHash knownHash: String? = nil, onEvent: (InversionEvent) throws -> Void = { _ in },
        warn: (String) -> Void = { _ in }
    ) throws -> (record: InversionRecord, cachedAt: String?) {
        let fingerprint = try modelFingerprint()
        let photoHash = try knownHash ?? SHA256.hexDigest(ofFile: photo)
        let key = InversionCache.key(
            photoHash: photoHash, modelFingerprint: fingerprint, prompt: prompt, settings: settings,
            embeddings: embeddingsDescription, precisionTag: precision.hashTag)
        guard let cache else {
            return (
                try fresh(photo: photo, prompt: prompt, settings: settings, fingerprint: fingerprint, photoHash: photoHash, onEvent: onEvent), nil
            )
        }
        // Under the key's lock: a second process asking for the same inversion waits and then finds it cached.
        return try cache.withLock(key) {
            let entry = cache.path(for: key)
            switch cache.lookup(key) {
            case .hit(let record):
                // A record that does not fit this model at the size it records counts as absent. The key holds the
                // photo and the sizing, so the recorded size is the one this photo inverts at.
                if (try? record.validate(against: inversionShape(size: recordedSize(of: record, file: entry)), file: entry)) != nil {
                    return (record, entry)
                }
                warn("the cached inversion \(entry) does not fit this model; computing it again")
            case .damaged(let why):
                warn("the cached inversion is damaged (\(why)); computing it again")
            case .absent:
                break
            }
            let record = try fresh(photo: photo, prompt: prompt, settings: settings, fingerprint: fingerprint, photoHash: photoHash, onEvent: onEvent)
            do { try cache.store(record, key: key) } catch { warn("could not cache the inversion: \(oneLineDescription(of: error))") }
            return (record, nil)
        }
    }

    private func fresh(
        photo: String, prompt: String, settings: InversionSettings, fingerprint: String, photoHash: String,
        onEvent: (InversionEvent) throws -> Void
    ) throws -> InversionRecord {
        var record = try invert(photo: photo, prompt: prompt, settings: settings, onEvent: onEvent)
        record.metadata["model_fingerprint"] = fingerprint
        record.metadata["photo_sha256"] = photoHash
        return record
    }
}
