// Uploads: the request body read with its size bounded (413 before anything is stored) and parsed as
// multipart/form-data (MultipartKit's parser) into fields and files; anything malformed is a 400.
import Foundation
import Hummingbird
import MultipartKit

/// A parsed multipart/form-data body: text fields in order (repeatable names keep every value) and files.
struct UploadedForm {
    /// One file part: the name the client gave it and its bytes.
    struct File {
        var filename: String
        var bytes: [UInt8]
    }

    var fields: [(name: String, value: String)] = []
    var files: [String: File] = [:]

    /// Every value of field `name`, in order.
    func values(_ name: String) -> [String] { fields.filter { $0.name == name }.map(\.value) }

    /// The one value of field `name`; a 400 when it is given more than once.
    func value(_ name: String) throws(APIError) -> String? {
        let all = values(name)
        guard all.count <= 1 else { throw .badRequest("\(name) is given \(all.count) times; give it once") }
        return all.first
    }
}

enum Upload {
    /// At most this many parts in one form.
    static let maxParts = 256
    /// A text field longer than this is refused (prompts are far shorter).
    static let maxFieldBytes = 64 * 1024

    /// The body of `request`, refused with 413 as soon as its declared length or the bytes received pass
    /// `limit` (nothing has been stored then).
    static func body(of request: Request, limit: Int) async throws(APIError) -> [UInt8] {
        if let declared = request.headers[.contentLength] {
            guard let length = Int(declared), length >= 0 else { throw .badRequest("Content-Length is not a number") }
            guard length <= limit else { throw .tooLarge(limit: limit) }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(min(Int(request.headers[.contentLength] ?? "") ?? 0, limit))
        do {
            for try await buffer in request.body {
                guard bytes.count + buffer.readableBytes <= limit else { throw APIError.tooLarge(limit: limit) }
                bytes += buffer.readableBytesView
            }
        } catch let error as APIError {
            throw error
        } catch {
            throw .badRequest("the upload was cut off (\(error))")
        }
        return bytes
    }

    /// The multipart boundary of a `multipart/form-data` content type; a 400 for any other.
    static func boundary(contentType: String?) throws(APIError) -> String {
        guard let contentType else { throw .badRequest("expected a multipart/form-data upload (no Content-Type)") }
        let parts = contentType.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.first?.lowercased() == "multipart/form-data" else {
            throw .badRequest("expected a multipart/form-data upload, got \(parts.first ?? "")")
        }
        for p in parts.dropFirst() {
            let kv = p.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2, kv[0].lowercased() == "boundary" else { continue }
            var b = kv[1]
            if b.count >= 2, b.hasPrefix("\""), b.hasSuffix("\"") { b = String(b.dropFirst().dropLast()) }
            guard (1...70).contains(b.count) else { break }
            return b
        }
        throw .badRequest("the multipart/form-data upload has no valid boundary")
    }

    /// Parses `body` as multipart/form-data with `boundary`.
    static func parse(_ body: [UInt8], boundary: String) throws(APIError) -> UploadedForm {
        let malformed = APIError.badRequest("malformed multipart/form-data upload")
        var form = UploadedForm()
        var headers: [String: String] = [:]
        var data: [UInt8] = []
        var open = false, parts = 0, problem: APIError?
        let parser = MultipartParser(boundary: boundary)
        parser.onHeader = { name, value in
            open = true
            headers[name.lowercased()] = value
        }
        parser.onBody = { buffer in
            open = true
            data += buffer.readableBytesView
        }
        parser.onPartComplete = {
            defer { (headers, data, open) = ([:], [], false) }
            guard problem == nil else { return }
            parts += 1
            guard parts <= maxParts else { return problem = .badRequest("the upload has more than \(maxParts) parts") }
            guard let disposition = headers["content-disposition"].map(Self.dispositionParameters),
                disposition.type == "form-data", let name = disposition.parameters["name"], !name.isEmpty
            else { return problem = .badRequest("a part of the upload has no form-data name") }
            if let filename = disposition.parameters["filename"] {
                guard form.files[name] == nil else { return problem = .badRequest("\(name) is given more than once") }
                form.files[name] = UploadedForm.File(filename: filename, bytes: data)
            } else {
                guard data.count <= maxFieldBytes else { return problem = .badRequest("\(name) is longer than \(maxFieldBytes) bytes") }
                guard let text = String(validating: data, as: UTF8.self) else { return problem = .badRequest("\(name) is not UTF-8 text") }
                form.fields.append((name, text))
            }
        }
        do { try parser.execute(body) } catch { throw malformed }
        if let problem { throw problem }
        // A whole body ends with the close delimiter; a cut-off one (its last part unfinished) does not.
        guard !open, parts > 0, Self.contains(body, Array("--\(boundary)--".utf8)) else { throw malformed }
        return form
    }

    /// Whether `bytes` holds `needle`, searched from the end (where the close delimiter is).
    static func contains(_ bytes: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, bytes.count >= needle.count else { return false }
        for start in stride(from: bytes.count - needle.count, through: 0, by: -1) where bytes[start] == needle[0] {
            if bytes[start..<start + needle.count].elementsEqual(needle) { return true }
        }
        return false
    }

    /// `form-data; name="photo"; filename="a.png"` → ("form-data", ["name": "photo", "filename": "a.png"]).
    /// Quoted values may hold `;` and backslash escapes.
    static func dispositionParameters(_ header: String) -> (type: String, parameters: [String: String]) {
        var items: [String] = [], current = "", quoted = false, escaped = false
        for c in header {
            if escaped {
                current.append(c)
                escaped = false
            } else if quoted && c == "\\" {
                escaped = true
            } else if c == "\"" {
                quoted.toggle()
            } else if c == ";" && !quoted {
                items.append(current)
                current = ""
            } else {
                current.append(c)
            }
        }
        items.append(current)
        var parameters: [String: String] = [:]
        for item in items.dropFirst() {
            let kv = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if kv.count == 2 { parameters[kv[0].lowercased()] = kv[1] }
        }
        return (items[0].trimmingCharacters(in: .whitespaces).lowercased(), parameters)
    }
}
