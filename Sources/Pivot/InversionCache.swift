import Foundation
import PivotFormats

/// Inversions kept between edits of the same photo, keyed by photo, model, prompt and settings, in
/// `$PIVOT_CACHE_DIR` or `~/.cache/pivot/inversions`.
public struct InversionCache {
    public let directory: String

    public init(directory: String? = nil) {
        let env = ProcessInfo.processInfo.environment
        self.directory = directory ?? env["PIVOT_CACHE_DIR"]
            ?? ((env["XDG_CACHE_HOME"] ?? (NSHomeDirectory() + "/.cache")) + "/pivot/inversions")
    }

    /// The cache key: a SHA-256 of everything that shapes the inversion.
    public static func key(photoHash: String, modelFingerprint: String, prompt: String, settings s: InversionSettings) -> String {
        let crop = s.crop.map { "\($0.left),\($0.top),\($0.right),\($0.bottom)" } ?? "-"
        let text = [pivotVersion, photoHash, modelFingerprint, prompt, s.method.rawValue, String(s.steps),
                    String(s.guidance), String(s.innerSteps), crop].joined(separator: "\u{1F}")
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
