import Foundation
import PivotLoading
import PivotFormats

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

    /// The cached record, if any and readable (a damaged entry counts as absent).
    public func load(_ key: String) -> InversionRecord? {
        let p = path(for: key)
        guard FileManager.default.fileExists(atPath: p) else { return nil }
        return try? InversionRecord(path: p)
    }

    /// Stores a record (atomically); failures to cache are reported, not fatal, by the caller.
    public func store(_ record: InversionRecord, key: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try record.write(to: path(for: key))
    }
}

extension StableDiffusion {
    /// The inversion of a photo under `prompt`: from `cache` when it holds one made with the same photo
    /// (by content), model, prompt, settings and embeddings, else computed (and stored there; a failure to
    /// store is passed to `warn`, not thrown); `photoHash`, when the caller has it, saves hashing the photo
    /// again. Returns the record and, when it came from the cache, its path.
    public func inversion(
        photo: String, prompt: String, settings: InversionSettings, cache: InversionCache?,
        photoHash knownHash: String? = nil, onEvent: (InversionEvent) -> Void = { _ in },
        warn: (String) -> Void = { _ in }
    ) throws -> (record: InversionRecord, cachedAt: String?) {
        let fingerprint = try modelFingerprint()
        let photoHash = try knownHash ?? SHA256.hexDigest(ofFile: photo)
        let key = InversionCache.key(
            photoHash: photoHash, modelFingerprint: fingerprint, prompt: prompt, settings: settings,
            embeddings: embeddingsDescription, precisionTag: precision.hashTag)
        // A cached record that does not fit this model at the size it records (damaged, hand-edited) counts as
        // absent. The key holds the photo and the sizing, so the recorded size is the one this photo inverts at.
        if let cache, let record = cache.load(key),
            (try? record.validate(against: inversionShape(size: recordedSize(of: record, file: cache.path(for: key))), file: cache.path(for: key)))
                != nil
        {
            return (record, cache.path(for: key))
        }
        var record = try invert(photo: photo, prompt: prompt, settings: settings, onEvent: onEvent)
        record.metadata["model_fingerprint"] = fingerprint
        record.metadata["photo_sha256"] = photoHash
        if let cache {
            do { try cache.store(record, key: key) } catch { warn("could not cache the inversion: \(error)") }
        }
        return (record, nil)
    }
}
