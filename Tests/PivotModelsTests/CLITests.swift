import Foundation
import PivotImage
import XCTest

/// The `pivot` executable: results on standard output, one-line errors on standard error, exit status.
final class CLITests: XCTestCase, CLIRunning {
    var model: String { Bundle.module.path(forResource: "Fixtures/sd1-tiny/model", ofType: nil) ?? "missing" }
    var fixtures: String { Bundle.module.path(forResource: "Fixtures/sd1-tiny", ofType: nil) ?? "missing" }

    func testInfoJSON() throws {
        let r = try pivot(["info", "--model", model, "--json"])
        XCTAssertEqual(r.status, 0, r.err)
        let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
        XCTAssertEqual(obj["native_resolution"] as? Int, 32)
    }

    func testComponentWritesOutput() throws {
        let out = NSTemporaryDirectory() + "pivot-cli-\(UUID().uuidString).safetensors"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let r = try pivot(["component", "vae-decode", "--model", model, "--in", fixtures + "/vae-decode.in.safetensors", "--out", out])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out))
    }

    func testErrorsAreOneLineWithNonZeroExit() throws {
        let notSafetensors = NSTemporaryDirectory() + "pivot-cli-\(UUID().uuidString).safetensors"
        try Data(repeating: 0xFF, count: 64).write(to: URL(fileURLWithPath: notSafetensors))
        defer { try? FileManager.default.removeItem(atPath: notSafetensors) }
        let cases: [[String]] = [
            ["info", "--model", "/nonexistent/model"],
            ["component", "unet", "--model", model, "--in", notSafetensors, "--out", "/tmp/x.safetensors"],
            ["component", "unet", "--model", model, "--in", fixtures + "/vae-decode.in.safetensors", "--out", "/tmp/x.safetensors"],
        ]
        for args in cases {
            let r = try pivot(args)
            XCTAssertEqual(r.status, 1, "\(args)")
            XCTAssertTrue(r.err.hasPrefix("pivot: error: "), "\(args): \(r.err)")
            XCTAssertEqual(r.err.split(separator: "\n").count, 1, "\(args): \(r.err)")
            XCTAssertEqual(r.out, "")
        }
    }

    func testTokenizeJSON() throws {
        let r = try pivot(["tokenize", "--model", model, "--json", "a red circle", ""])
        XCTAssertEqual(r.status, 0, r.err)
        let lines = r.out.split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        let first = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        XCTAssertEqual(first["prompt"] as? String, "a red circle")
        XCTAssertEqual((first["ids"] as? [Int])?.count, 77)
        XCTAssertEqual((first["ids"] as? [Int])?.first, 998)  // the tiny vocabulary's BOS
        XCTAssertEqual(first["truncated"] as? Bool, false)
    }

    func testGenerateWritesPNGWithParameters() throws {
        let out = NSTemporaryDirectory() + "pivot-cli-\(UUID().uuidString).png"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let r = try pivot(["generate", "a red circle", "--model", model, "--steps", "2", "--seed", "5", "-o", out])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.err.contains("sampling 2/2"), r.err)  // plain progress lines when not on a terminal
        let text = try readPNGText(out)
        let parameters = try XCTUnwrap(text.first { $0.key == "parameters" }?.value)
        XCTAssertTrue(parameters.contains("Steps: 2") && parameters.contains("Seed: 5"), parameters)
        let bad = try pivot(["generate", "x", "--model", model, "--size", "30x32", "-o", out + ".png"])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.err.hasPrefix("pivot: error: "), bad.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + ".png"))
    }

    func testUsageErrors() throws {
        let r = try pivot(["bench", "--model", model, "--network", "nope"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("unknown network 'nope'"), r.err)
        let help = try pivot(["component", "--help"])
        XCTAssertEqual(help.status, 0)
        XCTAssertTrue(help.out.contains("encoder_hidden_states"))
    }
}
