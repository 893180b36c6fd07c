import Foundation
import PivotDiffusion
import Pivot
import PivotLoading
import PivotFormats
import XCTest

/// `pivot invert` and the inversion file format.
final class InvertCommandTests: XCTestCase {
    var model: String { Bundle.module.path(forResource: "Fixtures/sd1-tiny/model", ofType: nil) ?? "missing" }
    var photo: String { Bundle.module.path(forResource: "Fixtures/inversion/photo.png", ofType: nil) ?? "missing" }

    func testEveryMethodWritesAReadableRecord() throws {
        let sd = try StableDiffusion(model: ModelFolder(path: model))
        for method in InversionMethod.allCases {
            var s = InversionSettings()
            s.method = method
            s.steps = 3
            s.innerSteps = 2
            var events = 0
            let record = try sd.invert(photo: photo, prompt: "a red circle", settings: s) { _ in events += 1 }
            XCTAssertGreaterThanOrEqual(events, 3, "\(method)")
            let path = NSTemporaryDirectory() + "pivot-inv-\(UUID().uuidString).safetensors"
            defer { try? FileManager.default.removeItem(atPath: path) }
            try record.write(to: path)
            let back = try InversionRecord(path: path)
            XCTAssertEqual(back.method, method)
            XCTAssertEqual(back.latents.count, 4)
            XCTAssertEqual(back.latents[0].shape, [1, 4, 16, 16])
            XCTAssertEqual(back.nullEmbeddings?.count, method == .nullText ? 3 : nil)
            XCTAssertEqual(back.nullEmbeddings?.first?.shape, method == .nullText ? [1, 77, 32] : nil)
            XCTAssertEqual(back.offsets?.count, method.usesOffsets ? 3 : nil)
            XCTAssertEqual(back.noiseMaps?.count, method == .ddpm ? 3 : nil)
            XCTAssertEqual(back.metadata["prompt"], "a red circle")
            XCTAssertEqual(back.latents[3].scalars, record.latents[3].scalars)
        }
    }

    func testNotAnInversionFile() throws {
        let input = try XCTUnwrap(Bundle.module.path(forResource: "Fixtures/sd1-tiny/unet.in.safetensors", ofType: nil))
        XCTAssertThrowsError(try InversionRecord(path: input)) { XCTAssertTrue("\($0)".contains("not a pivot inversion file")) }
    }

    func testBadSettingsAreRefused() throws {
        let sd = try StableDiffusion(model: ModelFolder(path: model))
        var s = InversionSettings()
        s.steps = 0
        XCTAssertThrowsError(try sd.invert(photo: photo, prompt: "x", settings: s))
        s.steps = 2
        XCTAssertThrowsError(try sd.invert(photo: model + "/model_index.json", prompt: "x", settings: s)) {
            XCTAssertFalse("\($0)".contains("\n"))
        }
    }

    func testFingerprintIsStableAndSensitive() throws {
        let folder = try ModelFolder(path: model)
        XCTAssertEqual(try folder.fingerprint(), try folder.fingerprint())
        let copy = NSTemporaryDirectory() + "pivot-fp-\(UUID().uuidString)"
        try FileManager.default.copyItem(atPath: model, toPath: copy)
        defer { try? FileManager.default.removeItem(atPath: copy) }
        let config = copy + "/scheduler/scheduler_config.json"
        var text = try String(contentsOfFile: config, encoding: .utf8)
        text = text.replacingOccurrences(of: "\"steps_offset\": 1", with: "\"steps_offset\": 0")
        try text.write(toFile: config, atomically: true, encoding: .utf8)
        XCTAssertNotEqual(try ModelFolder(path: copy).fingerprint(), try folder.fingerprint())
    }
}
