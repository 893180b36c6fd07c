import Foundation
import XCTest

/// What `scripts/install.sh` relies on.
final class InstallLayoutTests: XCTestCase, CLIRunning {
    /// The installed layout (scripts/install.sh): the binary finds its resources beside itself, wherever it
    /// runs from. Proved by a copy of the binary whose built-in UNet config is broken: the copy reports it,
    /// so it read its own resources, not the build folder's; an intact copy runs.
    func testBinaryReadsTheResourcesBesideIt() throws {
        let dir = NSTemporaryDirectory() + "pivot-install-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        let buildDir = (binary as NSString).deletingLastPathComponent
        for name in ["pivot", "pivot_PivotLoading.resources", "pivot_PivotText.resources"] {
            try FileManager.default.copyItem(atPath: buildDir + "/" + name, toPath: dir + "/" + name)
        }
        let single = try XCTUnwrap(Bundle.module.path(forResource: "Fixtures/single/sd1-tiny.safetensors", ofType: nil))
        func run(_ args: [String]) throws -> CLIRun {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: dir + "/pivot")
            p.arguments = args
            p.currentDirectoryURL = URL(fileURLWithPath: NSTemporaryDirectory())
            let err = Pipe(), out = Pipe()
            (p.standardError, p.standardOutput) = (err, out)
            try p.run()
            let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return CLIRun(status: p.terminationStatus, out: String(decoding: o, as: UTF8.self), err: String(decoding: e, as: UTF8.self))
        }
        let intact = try run(["info", "--model", single, "--json"])
        XCTAssertEqual(intact.status, 0, intact.err)
        try Data("{ not json".utf8).write(to: URL(fileURLWithPath: dir + "/pivot_PivotLoading.resources/Resources/sd1/unet.json"))
        let broken = try run(["info", "--model", single])
        XCTAssertEqual(broken.status, 1, broken.err)
        XCTAssertTrue(broken.err.hasPrefix("pivot: error: "), broken.err)
    }
}
