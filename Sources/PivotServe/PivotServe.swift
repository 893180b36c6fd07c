// PivotServe owns `pivot serve`, the local web editor: the HTTP server and its routes, the one-at-a-time job
// queue and its worker, the parsing of uploads, the checks every request passes (origin, host, size, paths in
// the work folder) and the embedded page (Resources/editor.html, one file with its CSS and JavaScript inline).
//
// It must not hold pipeline logic: every edit runs through `StableDiffusion.edit` (Pivot), the orchestration
// `pivot edit` and `pivot batch` use, with the same settings parsing (`EditSettings.set`) and the same
// inversion cache. It never imports ArgumentParser; its messages name settings by their form-field keys
// (`cross_replace`), as `oneLineDescription(of:naming:)` spells them.
import Foundation

/// How `pivot serve` listens and where it keeps its files.
public struct ServeConfiguration: Sendable {
    /// The address to bind: loopback unless told otherwise.
    public var host = "127.0.0.1"
    /// The port to bind; 0 picks a free one (the URL `PivotServer.run` reports has it).
    public var port = 7860
    /// Whether the host was chosen by the user: then, if it is not a loopback address, any `Host` header is
    /// accepted (a server on a LAN address is reached by names pivot cannot know); bound to a loopback
    /// address, only loopback names are (the defence against DNS rebinding).
    public var hostChosen = false
    /// The work folder: uploads and each job's outputs, in `jobs/<id>/`. Nil: a new folder in the system's
    /// temporary directory.
    public var workdir: String?
    /// The largest request body accepted (uploads), in bytes; larger ones get 413 before anything is stored.
    public var maxUploadBytes = 50 * 1024 * 1024
    /// The inversion cache's folder (nil: `InversionCache`'s default, shared with `pivot edit`).
    public var cacheDirectory: String?
    /// Whether inversions are cached at all.
    public var useCache = true

    public init() {}
}

/// Why `pivot serve` could not start.
public enum ServeStartError: Error, CustomStringConvertible {
    /// The work folder could not be made or is not a folder.
    case workFolder(String, why: String)
    /// The page is missing from the installation.
    case missingPage(String)
    /// A setting of the server itself is out of range.
    case badSetting(String)

    public var description: String {
        switch self {
        case .workFolder(let path, let why): return "work folder \(path): \(why)"
        case .missingPage(let why): return "the web page is missing: \(why)"
        case .badSetting(let why): return why
        }
    }
}
