import Foundation
import PivotFormats
import PivotModels
import PivotTensor
import XCTest
import Pivot
import PivotLoading

/// Golden-value parity with diffusers/transformers on tiny random-weight models
/// (fixtures built by scripts/fixtures/make_fixtures.py). Bound: max|Δ| ≤ 1e-4 · max(1, max|ref|).
final class ParityTests: XCTestCase {
    static let cases = ["sd1-tiny", "sd2-tiny", "sd1-bf16"]

    func testTextEncoder() throws { try checkAll(.textEncoder, output: "last_hidden_state") }
    func testUNet() throws { try checkAll(.unet, output: "out") }
    func testVAEEncode() throws { try checkAll(.vaeEncode, output: "mean") }
    func testVAEDecode() throws { try checkAll(.vaeDecode, output: "image") }

    /// Gradients against torch.autograd (fixtures by scripts/fixtures/make_vjp_fixtures.py).
    func testUNetVJP() throws {
        for name in ["out", "grad_encoder_hidden_states", "grad_sample"] { try checkAll(.unetVJP, output: name) }
    }

    func testTextEncoderVJP() throws {
        for name in ["last_hidden_state", "grad_inputs_embeds"] { try checkAll(.textEncoderVJP, output: name) }
    }

    /// The hub layout of the text encoder (`text_model.` prefix, int64 `position_ids`) gives the same output.
    func testPrefixedTextEncoder() throws {
        let dir = fixture("sd1-tiny")
        let prefixed = try XCTUnwrap(Bundle.module.path(forResource: "Fixtures/sd1-tiny/model-prefixed", ofType: nil))
        let model = try ModelFolder(path: prefixed)
        try compare(.textEncoder, model: model, dir: dir, output: "last_hidden_state")
    }

    func checkAll(_ component: Component, output: String) throws {
        for name in Self.cases {
            let dir = fixture(name)
            let model = try ModelFolder(path: dir + "/model")
            try compare(component, model: model, dir: dir, output: output, label: name)
        }
    }

    func fixture(_ name: String) -> String {
        Bundle.module.path(forResource: "Fixtures/\(name)", ofType: nil) ?? "missing-fixture-\(name)"
    }
}

extension XCTestCase {
    /// Runs a component on a fixture's input and checks its output against the fixture (1e-4 · max(1, max|ref|)).
    func compare(_ component: Component, model: ModelFolder, dir: String, output: String, label: String = "") throws {
        let out = NSTemporaryDirectory() + "pivot-parity-\(UUID().uuidString).safetensors"
        defer { try? FileManager.default.removeItem(atPath: out) }
        try ComponentRunner.run(component, model: model, input: "\(dir)/\(component.rawValue).in.safetensors", output: out)
        let ref = try SafeTensorsFile(path: "\(dir)/\(component.rawValue).out.safetensors").floatTensor(output)
        let got = try SafeTensorsFile(path: out).floatTensor(output)
        XCTAssertEqual(got.shape, ref.shape, "\(label) \(component)")
        guard got.shape == ref.shape else { return }
        var maxDiff: Float = 0, maxRef: Float = 0
        for i in 0..<ref.count {
            let d = abs(got.data[i] - ref.data[i])
            maxDiff = d.isNaN ? .infinity : max(maxDiff, d)
            maxRef = max(maxRef, abs(ref.data[i]))
        }
        let bound = 1e-4 * max(1, maxRef)
        XCTAssertLessThanOrEqual(maxDiff, bound, "\(label) \(component): max|Δ| \(maxDiff), max|ref| \(maxRef)")
        print("parity \(label) \(component.rawValue) \(output): max|Δ| = \(maxDiff), max|ref| = \(maxRef), bound \(bound)")
    }
}
