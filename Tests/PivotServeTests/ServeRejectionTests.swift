// Every request the server must refuse, over real sockets: foreign origins and hosts (403), oversize uploads
// (413, nothing stored), malformed uploads and settings (400, the CLI's message), paths out of the work
// folder (404/403).
import Foundation
import PivotServe
import XCTest

final class ServeRejectionTests: XCTestCase {
    nonisolated(unsafe) static var shared: RunningServer?
    static let limit = 256 * 1024

    override class func tearDown() {
        shared?.stop()
        shared = nil
    }

    /// One server for the class, with a 256 KB upload limit.
    func server() throws -> RunningServer {
        if let s = Self.shared { return s }
        let s = try RunningServer(maxUploadBytes: Self.limit)
        Self.shared = s
        return s
    }

    /// A request from another origin is a 403 on POST and on GET, before any work; the server's own origin
    /// (either loopback name) is served.
    func testForeignOriginsAre403() throws {
        let s = try server()
        for origin in ["http://evil.example", "null", "http://127.0.0.1:\(s.port + 1)", "https://127.0.0.1:\(s.port)"] {
            let posted = try post(s, .edit(), headers: ["Origin": origin])
            XCTAssertEqual(posted.status, 403, origin)
            XCTAssertNotNil(posted.error)
            XCTAssertEqual(try request(s, "GET", "/api/edits", headers: ["Origin": origin]).status, 403, origin)
            XCTAssertEqual(try request(s, "GET", "/", headers: ["Origin": origin]).status, 403, origin)
        }
        XCTAssertEqual(s.storedJobs, [], "a refused POST stored something")
        XCTAssertEqual(try request(s, "GET", "/api/edits", headers: ["Origin": "http://127.0.0.1:\(s.port)"]).status, 200)
        let own = try raw(s.port, "GET /api/edits HTTP/1.1\r\nHost: localhost:\(s.port)\r\nOrigin: http://localhost:\(s.port)")
        XCTAssertEqual(own.status, 200)
    }

    /// A Host header that is not a loopback name with the bound port (a DNS-rebinding page) is a 403.
    func testForeignHostsAre403() throws {
        let s = try server()
        for host in ["evil.example:\(s.port)", "evil.example", "127.0.0.1:\(s.port + 1)", "localhost.evil.example:\(s.port)"] {
            let reply = try raw(s.port, "GET /api/edits HTTP/1.1\r\nHost: \(host)")
            XCTAssertEqual(reply.status, 403, host)
        }
        XCTAssertEqual(try raw(s.port, "GET /api/edits HTTP/1.1\r\nHost: 127.0.0.1:\(s.port)").status, 200)
    }

    /// The policy's choices for other bindings: a loopback `--host` keeps the Host check, a LAN address drops
    /// it (names pivot cannot know) but keeps the Origin check.
    func testPolicyForChosenHosts() {
        XCTAssertTrue(OriginPolicy.isLoopback("127.0.0.2"))
        XCTAssertTrue(OriginPolicy.isLoopback("::1"))
        XCTAssertTrue(OriginPolicy.isLoopback("localhost"))
        XCTAssertFalse(OriginPolicy.isLoopback("0.0.0.0"))
        XCTAssertFalse(OriginPolicy.isLoopback("192.168.1.5"))
        let lan = OriginPolicy(host: "0.0.0.0", port: 7860, anyHost: true)
        XCTAssertNil(lan.refusal(host: "studio.local:7860", origin: "http://studio.local:7860"))
        XCTAssertNil(lan.refusal(host: "192.168.1.5:7860", origin: nil))
        XCTAssertNotNil(lan.refusal(host: "studio.local:7860", origin: "http://evil.example"))
        let loopback = OriginPolicy(host: "::1", port: 7860, anyHost: false)
        XCTAssertNil(loopback.refusal(host: "[::1]:7860", origin: "http://[::1]:7860"))
        XCTAssertNil(loopback.refusal(host: "localhost:7860", origin: nil))
        XCTAssertNotNil(loopback.refusal(host: "[::1]:80", origin: nil))
        XCTAssertNotNil(loopback.refusal(host: "evil.example:7860", origin: "http://evil.example:7860"))
    }

    /// An upload over the limit is a 413 before anything is stored: by its declared length (nothing of the
    /// body sent), by a real body, and by the bytes of a chunked body that declares no length.
    func testOversizeUploadsAre413AndStoreNothing() throws {
        let s = try server()
        let declared = try raw(
            s.port,
            "POST /api/edits HTTP/1.1\r\nHost: 127.0.0.1:\(s.port)\r\nContent-Type: multipart/form-data; boundary=x\r\nContent-Length: \(60 << 20)")
        XCTAssertEqual(declared.status, 413)
        let big = Multipart.edit(photo: Data(repeating: 7, count: Self.limit + 1))
        let real = try post(s, big)
        XCTAssertEqual(real.status, 413, real.text)
        XCTAssertTrue(real.error?.contains("limit") ?? false)
        var chunked: [UInt8] = []
        let body = Array(big.body)
        for start in stride(from: 0, to: body.count, by: 16384) {
            let piece = body[start..<min(start + 16384, body.count)]
            chunked += Array((String(piece.count, radix: 16) + "\r\n").utf8) + piece + Array("\r\n".utf8)
        }
        chunked += Array("0\r\n\r\n".utf8)
        let streamed = try raw(
            s.port,
            "POST /api/edits HTTP/1.1\r\nHost: 127.0.0.1:\(s.port)\r\nContent-Type: \(big.contentType)\r\nTransfer-Encoding: chunked",
            body: chunked)
        XCTAssertEqual(streamed.status, 413)
        XCTAssertEqual(s.storedJobs, [], "an oversize upload was stored")
    }

    /// Malformed uploads are 400s with a one-line JSON error, never a crash: another content type, a body that
    /// is not multipart, a cut-off body, no photo, a photo that does not decode, an unknown field, numbers
    /// that are not numbers. Nothing stays in the work folder.
    func testMalformedUploadsAre400() throws {
        let s = try server()
        func expect400(_ reply: HTTPReply, _ contains: String, _ what: String) {
            XCTAssertEqual(reply.status, 400, "\(what): \(reply.text)")
            XCTAssertTrue(reply.error?.contains(contains) ?? false, "\(what): \(reply.error ?? reply.text)")
            XCTAssertFalse(reply.error?.contains("\n") ?? true, what)
        }
        expect400(
            try request(s, "POST", "/api/edits", headers: ["Content-Type": "application/json"], body: Data("{}".utf8)), "multipart",
            "JSON body")
        let form = Multipart.edit()
        expect400(
            try request(s, "POST", "/api/edits", headers: ["Content-Type": form.contentType], body: Data("not multipart at all".utf8)),
            "malformed", "garbage body")
        expect400(
            try request(s, "POST", "/api/edits", headers: ["Content-Type": form.contentType], body: form.body.prefix(200)), "malformed",
            "cut-off body")
        expect400(
            try request(s, "POST", "/api/edits", headers: ["Content-Type": "multipart/form-data"], body: form.body), "boundary",
            "no boundary")
        var noPhoto = form
        noPhoto.files = []
        expect400(try post(s, noPhoto), "photo", "no photo")
        expect400(try post(s, .edit(photo: Data("this is not an image".utf8))), "photo: ", "undecodable photo")
        expect400(try post(s, .edit(photo: Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0]))), "photo: ", "truncated PNG")
        expect400(try post(s, .edit(extra: [("colour", "red")])), "unknown field 'colour'", "unknown field")
        expect400(try post(s, .edit(extra: [("self_replace", "abc")])), "self_replace takes", "bad number")
        expect400(try post(s, .edit(extra: [("cross_replace", "1.5")])), "take fractions between 0 and 1", "out of range")
        expect400(try post(s, .edit(steps: 0)), "steps takes a positive whole number", "zero steps")
        var emptySource = form
        emptySource.fields[0].1 = "  "
        expect400(try post(s, emptySource), "source", "empty source")
        XCTAssertEqual(s.storedJobs, [], "a refused upload was stored")
    }

    /// An invalid setting gets the CLI's message for the same mistake, its flag named by the form field's key.
    func testInvalidSettingsGetTheCLIMessage() throws {
        let s = try server()
        let cases: [(field: String, value: String, flag: String)] = [
            ("cross_replace", "abc", "--cross-replace"), ("reweight", "purple=2", "--reweight"), ("reweight", "blue", "--reweight"),
            ("blend", "square", "--blend"),
        ]
        for c in cases {
            let reply = try post(s, .edit(extra: [(c.field, c.value)]))
            XCTAssertEqual(reply.status, 400, reply.text)
            let cli = try runCLI([
                "edit", samplePhoto, "--model", repositoryRoot + "/samples/models/tiny-random", "--source", "a red circle on a white background",
                "--target", "a blue circle on a white background", "--method", "direct", "--steps", "1", c.flag, c.value,
                "-o", NSTemporaryDirectory() + "pivot-serve-cli-\(UUID().uuidString).png", "--no-cache", "--quiet",
            ])
            XCTAssertNotEqual(cli.status, 0)
            let line = try XCTUnwrap(
                cli.err.split(separator: "\n").first { $0.hasPrefix("Error: ") || $0.hasPrefix("pivot: error: ") }, cli.err)
            let message = line.replacingOccurrences(of: "pivot: error: ", with: "").replacingOccurrences(of: "Error: ", with: "")
            XCTAssertEqual(reply.error, message.replacingOccurrences(of: c.flag, with: c.field), "\(c.field)=\(c.value)")
        }
    }

    /// Files are served only from the work folder: `..` (plain or percent-encoded), hidden and absolute
    /// names are 404; a symlink pointing out of it (a file or a folder) is 403; a file inside is served.
    func testPathsOutOfTheWorkFolderAreRefused() throws {
        let s = try server()
        let root = s.server.workdir
        let outside = NSTemporaryDirectory() + "pivot-serve-outside-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: outside) }
        try Data("secret".utf8).write(to: URL(fileURLWithPath: outside + "/secret.txt"))
        try Data("inside".utf8).write(to: URL(fileURLWithPath: root + "/inside.txt"))
        try FileManager.default.createSymbolicLink(atPath: root + "/escape.txt", withDestinationPath: outside + "/secret.txt")
        try FileManager.default.createSymbolicLink(atPath: root + "/escape-dir", withDestinationPath: outside)
        defer {
            for name in ["inside.txt", "escape.txt", "escape-dir"] { try? FileManager.default.removeItem(atPath: root + "/" + name) }
        }
        let host = "Host: 127.0.0.1:\(s.port)"
        XCTAssertEqual(try raw(s.port, "GET /files/inside.txt HTTP/1.1\r\n\(host)").text, "inside")
        for path in [
            "/files/../../../../etc/passwd", "/files/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/files/jobs/..%2f..%2f..%2fetc%2fpasswd",
            "/files/%2fetc%2fpasswd", "/files//etc/passwd", "/files/.hidden", "/files/", "/files/inside.txt%00.png",
        ] {
            let reply = try raw(s.port, "GET \(path) HTTP/1.1\r\n\(host)")
            XCTAssertTrue([403, 404].contains(reply.status), "\(path): \(reply.status)")
            XCTAssertFalse(reply.text.contains("root:"), path)
        }
        for path in ["/files/escape.txt", "/files/escape-dir/secret.txt"] {
            let reply = try raw(s.port, "GET \(path) HTTP/1.1\r\n\(host)")
            XCTAssertEqual(reply.status, 403, path)
            XCTAssertFalse(reply.text.contains("secret"), path)
        }
    }

    /// Runs the built `pivot` with `args`.
    func runCLI(_ args: [String]) throws -> (status: Int32, err: String) {
        guard let binary = pivotBinary() else { throw XCTSkip("the pivot binary is not built beside the tests") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = args
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: e, as: UTF8.self))
    }
}
