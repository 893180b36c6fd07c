// The work folder: where uploads and outputs live (`jobs/<id>/`), and the only folder files are served
// from. A requested path is checked name by name (no `..`, `.`, empty, absolute or hidden names), then its
// real path (symlinks resolved) must lie inside the folder's real path and be a regular file.
import Foundation
import HTTPTypes
import Hummingbird

/// The server's work folder.
struct WorkFolder: Sendable {
    /// The folder's real path (symlinks resolved).
    let root: String

    /// Makes (or reuses) `path`, or a new folder in the system's temporary directory when nil.
    init(path: String?) throws(ServeStartError) {
        let fm = FileManager.default
        let chosen: String
        if let path {
            chosen = path
            do { try fm.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
                throw .workFolder(path, why: "cannot create it (\(error.localizedDescription))")
            }
        } else {
            let base = (NSTemporaryDirectory() as NSString).appendingPathComponent("pivot-serve-\(getpid())-\(UUID().uuidString.prefix(8))")
            chosen = base
            do { try fm.createDirectory(atPath: base, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]) } catch {
                throw .workFolder(base, why: "cannot create it (\(error.localizedDescription))")
            }
        }
        guard let real = Self.realPath(chosen) else { throw .workFolder(chosen, why: "cannot resolve its path") }
        var isFolder: ObjCBool = false
        guard fm.fileExists(atPath: real, isDirectory: &isFolder), isFolder.boolValue else { throw .workFolder(chosen, why: "not a folder") }
        root = real
    }

    /// A new job's folder, `jobs/<id>` (owner-only permissions).
    func makeJobFolder(_ id: String) throws(APIError) -> String {
        let path = (root as NSString).appendingPathComponent("jobs/\(id)")
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw APIError(500, "cannot make the job's folder")
        }
        return path
    }

    /// The URL path of a file inside the folder (`jobs/<id>/edit.png` → `/files/jobs/<id>/edit.png`).
    static func url(_ relative: String) -> String { "/files/" + relative }

    /// The real path of the regular file `components` name under the folder: 404 for a name that is not
    /// plain (`..`, `.`, empty, hidden, holding `/`, `\` or NUL, after percent-decoding) or a file that is not
    /// there, 403 for a path whose real location is outside the folder (a symlink pointing out).
    func resolve(_ components: [Substring]) throws(APIError) -> String {
        guard !components.isEmpty, components.count <= 8 else { throw .notFound() }
        var names: [String] = []
        for raw in components {
            guard let name = String(raw).removingPercentEncoding, !name.isEmpty, !name.hasPrefix("."),
                !name.contains("/"), !name.contains("\\"), !name.contains("\0")
            else { throw .notFound() }
            names.append(name)
        }
        let joined = (root as NSString).appendingPathComponent(names.joined(separator: "/"))
        guard let real = Self.realPath(joined) else { throw .notFound() }
        guard real.hasPrefix(root + "/") else { throw .forbidden("outside the work folder") }
        var info = stat()
        guard stat(real, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { throw .notFound() }
        return real
    }

    /// `realpath(3)`: nil when the path does not exist.
    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// A response with the file's bytes and a content type from its first bytes (images) or none.
    static func fileResponse(_ path: String) throws(APIError) -> Response {
        guard let data = FileManager.default.contents(atPath: path) else { throw .notFound() }
        var headers = HTTPFields()
        headers[.contentType] = contentType(Array(data.prefix(16)))
        headers[.cacheControl] = "no-store"
        if let nosniff = HTTPField.Name("X-Content-Type-Options") { headers[nosniff] = "nosniff" }
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// The image type of a file from its magic bytes; anything else is served as bytes.
    static func contentType(_ head: [UInt8]) -> String {
        func starts(_ magic: [UInt8], at offset: Int = 0) -> Bool {
            head.count >= offset + magic.count && Array(head[offset..<offset + magic.count]) == magic
        }
        if starts([0x89, 0x50, 0x4E, 0x47]) { return "image/png" }
        if starts([0xFF, 0xD8, 0xFF]) { return "image/jpeg" }
        if starts(Array("RIFF".utf8)) && starts(Array("WEBP".utf8), at: 8) { return "image/webp" }
        if starts([0x49, 0x49, 0x2A, 0x00]) || starts([0x4D, 0x4D, 0x00, 0x2A]) { return "image/tiff" }
        return "application/octet-stream"
    }
}
