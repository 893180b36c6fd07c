import Foundation
import Pivot
import PivotLoading
import PivotDiffusion
import PivotFormats
import PivotTensor
import XCTest

/// Edited latents against the Python port of Prompt-to-Prompt's controllers (scripts/reference/p2p.py,
/// fixtures by scripts/fixtures/make_p2p_fixtures.py): the null-text inversion fixture of "a red circle" on sd1-tiny
/// (10 steps) rendered under word swaps, a refinement, reweighting and local blends. The table mirrors the
/// script's. Tolerance 1e-4 · max(1, max|ref|): ten steps at guidance 7.5 amplify float32 rounding; measured
/// ≤ 3.6e-4 on latents up to 10 (4e-5 relative).
final class PromptToPromptParityTests: XCTestCase {
    struct Case {
        let targets: [String]
        let mode: EditOptions.Mode
        var configure: (inout EditOptions) -> Void = { _ in }
    }

    let cases: [String: Case] = [
        "replace": Case(targets: ["a blue circle"], mode: .replace),
        "replace2": Case(targets: ["a blue circle", "a green circle"], mode: .replace) {
            $0.crossReplace = 0.6
            $0.selfReplace = (0.1, 0.5)
        },
        "refine": Case(targets: ["a red circle on grey"], mode: .refine),
        "reweight": Case(targets: ["a red circle"], mode: .auto) { $0.reweight = ["red": 3] },
        "replace_reweight": Case(targets: ["a blue circle"], mode: .replace) {
            $0.crossReplaceWords = ["blue": 0.4]
            $0.reweight = ["blue": 2]
        },
        "blend": Case(targets: ["a blue circle"], mode: .replace) {
            $0.blend = ["circle"]
            $0.blendThreshold = 0.95
        },
        "refine_blend": Case(targets: ["a big red circle"], mode: .refine) {
            $0.blend = ["big", "red"]
            $0.blendThreshold = 0.96
        },
    ]

    func testEditedLatentsMatchReference() throws {
        let dir = try XCTUnwrap(Bundle.module.path(forResource: "Fixtures/inversion", ofType: nil))
        let model = try XCTUnwrap(Bundle.module.path(forResource: "Fixtures/sd1-tiny/model", ofType: nil))
        let sd = try StableDiffusion(model: ModelFolder(path: model))
        let inversion = try SafeTensorsFile(path: dir + "/reference.safetensors")
        let expected = try SafeTensorsFile(path: dir + "/p2p.safetensors")
        let source = try XCTUnwrap(expected.metadata["source"])
        let record = InversionRecord(
            method: .nullText, latents: unstackBatch(try inversion.floatTensor("latents")),
            nullEmbeddings: unstackBatch(try inversion.floatTensor("nulls")), metadata: [:])
        let side = record.latents[0].dim(2)
        XCTAssertEqual(Set(cases.keys), Set(expected.names), "the case tables of the script and the test differ")
        for (name, c) in cases.sorted(by: { $0.key < $1.key }) {
            var options = EditOptions()
            options.mode = c.mode
            c.configure(&options)
            let controller = try sd.promptToPrompt(
                source: source, targets: c.targets, steps: record.steps,
                latentSide: side, options: options)
            XCTAssertEqual(controller.localBlend != nil, !options.blend.isEmpty)
            let z = try sd.editLatents(
                record, source: source, targets: c.targets, guidance: 7.5,
                controller: controller, blend: controller.localBlend)
            let ref = try expected.floatTensor(name)
            XCTAssertEqual(z.shape, ref.shape, name)
            var diff: Float = 0, top: Float = 0, moved: Float = 0
            let plane = z.count / z.dim(0)
            for i in 0..<z.count {
                diff = max(diff, abs(z.data[i] - ref.data[i]))
                top = max(top, abs(ref.data[i]))
                if i >= plane { moved = max(moved, abs(ref.data[i] - ref.data[i % plane])) }
            }
            print("p2p parity \(name): max |Δ| \(diff) (targets move up to \(moved) from the source)")
            XCTAssertLessThanOrEqual(diff, 1e-4 * max(1, top), name)
            XCTAssertGreaterThan(moved, 0.1, "\(name): the edit must change the targets")
        }
    }
}
