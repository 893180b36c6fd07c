// The page ships as a resource of PivotServe and an installed `pivot` (scripts/install.sh's layout: the binary
// with its pivot_*.resources beside it) serves it from there, wherever it runs from.
import Foundation
import XCTest

final class ServeInstallTests: XCTestCase {
    /// A copy of the binary and its resource bundles, whose page carries a marker, serves the marked page:
    /// it read the resources beside it, not the build folder's.
    func testInstalledBinaryServesThePageBesideIt() throws {
        guard let pivot = pivotBinary() else { throw XCTSkip("the pivot binary is not built beside the tests") }
        let dir = NSTemporaryDirectory() + "pivot-serve-install-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let buildDir = (pivot as NSString).deletingLastPathComponent
        for name in ["pivot", "pivot_PivotLoading.resources", "pivot_PivotText.resources", "pivot_PivotServe.resources"] {
            try FileManager.default.copyItem(atPath: buildDir + "/" + name, toPath: dir + "/" + name)
        }
        let page = dir + "/pivot_PivotServe.resources/Resources/editor.html"
        let marker = "<!-- installed copy \(UUID().uuidString) -->"
        try Data((String(decoding: try Data(contentsOf: URL(fileURLWithPath: page)), as: UTF8.self) + marker).utf8).write(
            to: URL(fileURLWithPath: page))
        let serve = Process()
        serve.executableURL = URL(fileURLWithPath: dir + "/pivot")
        serve.arguments = ["serve", "--model", repositoryRoot + "/samples/models/tiny-random", "--port", "0", "--workdir", dir + "/work", "--quiet"]
        serve.currentDirectoryURL = URL(fileURLWithPath: "/")
        let out = Pipe()
        serve.standardOutput = out
        try serve.run()
        defer { serve.terminate() }
        let url = try XCTUnwrap(firstLine(out.fileHandleForReading, timeout: 60), "pivot serve printed no URL")
        let port = try XCTUnwrap(URL(string: url)?.port)
        let reply = try raw(port, "GET / HTTP/1.1\r\nHost: 127.0.0.1:\(port)")
        XCTAssertEqual(reply.status, 200)
        XCTAssertTrue(reply.text.hasSuffix(marker), "the installed binary served another copy of the page")
    }
}
