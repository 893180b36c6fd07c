// What the serve tests share: a server of the library on a free port, requests over real sockets
// (FoundationNetworking's URLSession, and a raw HTTP/1.1 client for requests no well-behaved client sends:
// `..` in paths, other Host headers, lying lengths), multipart bodies and PNG checks.
import Foundation
import Pivot
import PivotImage
import PivotLoading
import PivotServe
import XCTest

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// The repository root (the tests' samples live there).
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
let samplePhoto = repositoryRoot + "/samples/shapes/red-circle.png"

/// The built `pivot` binary (beside the test bundle, as `swift test` builds it).
func pivotBinary() -> String? {
    var candidates = [URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("pivot").path]
    candidates += Bundle.allBundles.map { $0.bundleURL.deletingLastPathComponent().appendingPathComponent("pivot").path }
    candidates.append(repositoryRoot + "/.build/debug/pivot")
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
}

/// A server of the library, running in the test process on a free loopback port.
final class RunningServer: @unchecked Sendable {
    let server: PivotServer
    let url: String
    let port: Int
    private let task: Task<Void, Never>

    /// Loads `model` (a folder under samples/models) and serves it from a new work folder.
    init(model: String = "tiny-random", maxUploadBytes: Int = 50 * 1024 * 1024) throws {
        let sd = try StableDiffusion(model: try ModelFolder(path: repositoryRoot + "/samples/models/" + model))
        var c = ServeConfiguration()
        c.port = 0
        c.workdir = NSTemporaryDirectory() + "pivot-serve-test-\(UUID().uuidString.prefix(8))"
        c.cacheDirectory = NSTemporaryDirectory() + "pivot-serve-cache-\(UUID().uuidString.prefix(8))"
        c.maxUploadBytes = maxUploadBytes
        let server = try PivotServer(model: sd, configuration: c)
        let ready = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var bound = ""
        task = Task {
            try? await server.run { url in
                bound = url
                ready.signal()
            }
        }
        guard ready.wait(timeout: .now() + 60) == .success, let port = URL(string: bound)?.port else {
            throw XCTSkip("the server did not start")
        }
        self.server = server
        self.url = String(bound.dropLast())  // no trailing slash
        self.port = port
    }

    /// Files and folders under the work folder's `jobs/` (none before any job was stored).
    var storedJobs: [String] { (try? FileManager.default.contentsOfDirectory(atPath: server.workdir + "/jobs")) ?? [] }

    /// Stops the server and removes its work folder and inversion cache.
    func stop() {
        task.cancel()
        try? FileManager.default.removeItem(atPath: server.workdir)
        if let cache = server.configuration.cacheDirectory { try? FileManager.default.removeItem(atPath: cache) }
    }
}

/// One HTTP answer.
struct HTTPReply {
    var status: Int
    var headers: [String: String]
    var body: Data

    var text: String { String(decoding: body, as: UTF8.self) }
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
    var error: String? { json["error"] as? String }
}

/// `method path` through URLSession, with `headers` and `body`; waits up to `timeout` seconds.
func request(
    _ server: RunningServer, _ method: String, _ path: String, headers: [String: String] = [:], body: Data? = nil,
    timeout: TimeInterval = 120
) throws -> HTTPReply {
    var r = URLRequest(url: URL(string: server.url + path)!)
    r.httpMethod = method
    r.timeoutInterval = timeout
    for (k, v) in headers { r.setValue(v, forHTTPHeaderField: k) }
    r.httpBody = body
    let done = DispatchSemaphore(value: 0)
    nonisolated(unsafe) var result: Result<HTTPReply, Error> = .failure(URLError(.timedOut))
    URLSession.shared.dataTask(with: r) { data, response, error in
        if let error {
            result = .failure(error)
        } else if let http = response as? HTTPURLResponse {
            var h: [String: String] = [:]
            for (k, v) in http.allHeaderFields { h[String(describing: k).lowercased()] = String(describing: v) }
            result = .success(HTTPReply(status: http.statusCode, headers: h, body: data ?? Data()))
        }
        done.signal()
    }.resume()
    _ = done.wait(timeout: .now() + timeout + 5)
    return try result.get()
}

/// A multipart/form-data body: text fields in order, then files.
struct Multipart {
    let boundary = "pivot-test-\(UUID().uuidString)"
    var fields: [(String, String)] = []
    var files: [(name: String, filename: String, data: Data)] = []

    var contentType: String { "multipart/form-data; boundary=\(boundary)" }

    var body: Data {
        var d = Data()
        for (name, value) in fields {
            d += Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n".utf8)
        }
        for f in files {
            d += Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(f.name)\"; filename=\"\(f.filename)\"\r\n".utf8)
            d += Data("Content-Type: application/octet-stream\r\n\r\n".utf8) + f.data + Data("\r\n".utf8)
        }
        return d + Data("--\(boundary)--\r\n".utf8)
    }

    /// The edit of the sample photo the tests run (direct inversion, few steps).
    static func edit(
        target: String = "a blue circle on a white background", steps: Int = 3, extra: [(String, String)] = [],
        photo: Data? = nil
    ) -> Multipart {
        var m = Multipart()
        m.fields =
            [
                ("source", "a red circle on a white background"), ("target", target), ("method", "direct"), ("steps", String(steps)),
            ] + extra
        m.files = [("photo", "red-circle.png", photo ?? FileManager.default.contents(atPath: samplePhoto) ?? Data())]
        return m
    }
}

extension Multipart {
    /// The form with field `name` set to `value` (replacing every earlier value).
    func replacing(_ name: String, _ value: String) -> Multipart {
        var m = self
        m.fields = m.fields.filter { $0.0 != name } + [(name, value)]
        return m
    }
}

/// `POST /api/edits` with `form`.
func post(_ server: RunningServer, _ form: Multipart, headers: [String: String] = [:]) throws -> HTTPReply {
    try request(server, "POST", "/api/edits", headers: ["Content-Type": form.contentType].merging(headers) { $1 }, body: form.body)
}

/// Polls `GET /api/edits/{id}` until `until` holds (or `timeout` seconds pass); returns the last job.
func poll(_ server: RunningServer, _ id: String, timeout: TimeInterval = 90, until: ([String: Any]) -> Bool) throws -> [String: Any] {
    let end = Date().addingTimeInterval(timeout)
    var job: [String: Any] = [:]
    while Date() < end {
        job = try request(server, "GET", "/api/edits/\(id)").json
        if until(job) { return job }
        Thread.sleep(forTimeInterval: 0.1)
    }
    return job
}

func isFinal(_ job: [String: Any]) -> Bool { ["done", "failed", "cancelled"].contains(job["status"] as? String ?? "") }

/// Decodes PNG bytes with pivot's own reader (a real decode, not a magic-byte check).
func decodePNG(_ data: Data) throws -> RGBImage {
    XCTAssertEqual(Array(data.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
    let path = NSTemporaryDirectory() + "pivot-serve-png-\(UUID().uuidString).png"
    try data.write(to: URL(fileURLWithPath: path))
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try RGBImage.read(path)
}

/// A raw HTTP/1.1 exchange over a loopback socket: `head` (request line and headers, without the blank
/// line; `Connection: close` is added), then `body` in `chunks` pieces; the reply is read until the server
/// closes or `timeout` seconds pass. For requests URLSession would rewrite or refuse to send.
func raw(_ port: Int, _ head: String, body: [UInt8] = [], timeout: Int = 30) throws -> HTTPReply {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw POSIXError(.EIO) }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { throw POSIXError(.ECONNREFUSED) }
    var tv = timeval(tv_sec: timeout, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    let request = Array((head + "\r\nConnection: close\r\n\r\n").utf8) + body
    var sent = 0
    while sent < request.count {
        let n = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if n <= 0 { break }  // the server may answer and close before it has read everything
        sent += n
    }
    var reply: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = recv(fd, &buffer, buffer.count, 0)
        if n <= 0 { break }
        reply += buffer[0..<n]
    }
    return parseReply(reply)
}

/// Status, headers and (de-chunked) body of a raw reply.
func parseReply(_ bytes: [UInt8]) -> HTTPReply {
    let separator: [UInt8] = [13, 10, 13, 10]
    guard let split = (0..<max(bytes.count - 3, 0)).first(where: { Array(bytes[$0..<$0 + 4]) == separator }) else {
        return HTTPReply(status: 0, headers: [:], body: Data(bytes))
    }
    let lines = String(decoding: bytes[..<split], as: UTF8.self).components(separatedBy: "\r\n")
    let status = lines.first.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
    var headers: [String: String] = [:]
    for line in lines.dropFirst() {
        let kv = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
        if kv.count == 2 { headers[kv[0].lowercased()] = kv[1] }
    }
    var body = Array(bytes[(split + 4)...])
    if headers["transfer-encoding"]?.lowercased() == "chunked" {
        var out: [UInt8] = [], i = 0
        while let end = (i..<max(body.count - 1, i)).first(where: { body[$0] == 13 && body[$0 + 1] == 10 }),
            let size = Int(String(decoding: body[i..<end], as: UTF8.self), radix: 16), size > 0, end + 2 + size <= body.count
        {
            out += body[(end + 2)..<(end + 2 + size)]
            i = end + 4 + size
        }
        body = out
    }
    return HTTPReply(status: status, headers: headers, body: Data(body))
}

/// The first line `handle` gives within `timeout` seconds.
func firstLine(_ handle: FileHandle, timeout: TimeInterval) -> String? {
    let fd = handle.fileDescriptor
    var line: [UInt8] = []
    let end = Date().addingTimeInterval(timeout)
    while Date() < end {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, 200) > 0 else { continue }
        var byte: UInt8 = 0
        guard read(fd, &byte, 1) == 1 else { return nil }
        if byte == 10 { return String(decoding: line, as: UTF8.self) }
        line.append(byte)
    }
    return nil
}
