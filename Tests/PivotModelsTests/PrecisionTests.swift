import Foundation
import PivotFormats
import PivotModels
import PivotTensor
import XCTest
import Pivot
import PivotLoading

/// `--precision`: how auto resolves, bf16 networks against the diffusers fp32 fixtures, and the CLI's report.
final class PrecisionTests: XCTestCase, CLIRunning {
    var model: String { Bundle.module.path(forResource: "Fixtures/sd1-tiny/model", ofType: nil) ?? "missing" }

    func testAutoResolution() throws {
        let native = try PrecisionPlan.resolve(.auto, native: true, usable: true, cpu: "test")
        XCTAssertEqual(native.networks, NetworkPrecision(forward: .bf16, gradient: .fp32))
        XCTAssertEqual(native.description, "bf16 (gradients fp32)")
        let plain = try PrecisionPlan.resolve(.auto, native: false, usable: true, cpu: "test")
        XCTAssertEqual(plain.networks, .all(.fp32))
        XCTAssertEqual(plain.description, "fp32")
        XCTAssertEqual(try PrecisionPlan.resolve(.fp32, native: true, usable: true, cpu: "x"), .fp32)
        let emulated = try PrecisionPlan.resolve(.bf16, native: false, usable: true, cpu: "test")
        XCTAssertTrue(emulated.emulated)
        XCTAssertEqual(emulated.networks, .all(.bf16))
        XCTAssertThrowsError(try PrecisionPlan.resolve(.bf16, native: false, usable: false, cpu: "AVX2 box")) { e in
            XCTAssertEqual(e as? PrecisionError, .bf16Unavailable(cpu: "AVX2 box"))
            XCTAssertTrue("\(e)".contains("AVX-512"))
        }
    }

    /// Every network of the three tiny fixtures in bf16 against diffusers' fp32 outputs: max and mean error
    /// relative to max|ref| are printed (docs/BENCHMARKS.md quotes them) and bounded.
    func testBF16NetworksNearReference() throws {
        guard BF16Support.usable else {
            throw XCTSkip("bf16 networks not run: oneDNN has no bf16 kernels on this processor (it needs AVX-512)")
        }
        let plan = try PrecisionPlan.resolve(.bf16)
        let outputs: [(Component, String)] = [
            (.textEncoder, "last_hidden_state"), (.unet, "out"), (.vaeEncode, "mean"),
            (.vaeDecode, "image"), (.unetVJP, "grad_encoder_hidden_states"),
        ]
        for name in ParityTests.cases {
            let dir = Bundle.module.path(forResource: "Fixtures/\(name)", ofType: nil) ?? "missing"
            for (component, output) in outputs {
                let out = NSTemporaryDirectory() + "pivot-bf16-\(UUID().uuidString).safetensors"
                defer { try? FileManager.default.removeItem(atPath: out) }
                try ComponentRunner.run(
                    component, model: ModelFolder(path: dir + "/model"),
                    input: "\(dir)/\(component.rawValue).in.safetensors", output: out, precision: plan)
                let ref = try SafeTensorsFile(path: "\(dir)/\(component.rawValue).out.safetensors").floatTensor(output)
                let got = try SafeTensorsFile(path: out).floatTensor(output)
                XCTAssertEqual(got.shape, ref.shape)
                var maxErr = 0.0, sumErr = 0.0, maxRef = 0.0
                for i in 0..<ref.count {
                    let e = abs(Double(got.data[i]) - Double(ref.data[i]))
                    maxErr = max(maxErr, e)
                    sumErr += e
                    maxRef = max(maxRef, abs(Double(ref.data[i])))
                }
                let scale = max(maxRef, 1e-12)
                print(
                    String(
                        format: "bf16 %@ %@ %@: max %.2e, mean %.2e of max|ref| %.3g", name, component.rawValue, output,
                        maxErr / scale, sumErr / Double(ref.count) / scale, maxRef))
                XCTAssertLessThan(maxErr / scale, 5e-2, "\(name) \(component) \(output)")
                XCTAssertLessThan(sumErr / Double(ref.count) / scale, 1e-2, "\(name) \(component) \(output)")
            }
        }
    }

    /// An fp32 and a bf16 inversion of the same photo never stand in for each other; fp32 keys are unchanged.
    func testInversionCacheKeysOnPrecision() throws {
        let s = InversionSettings()
        let plain = InversionCache.key(photoHash: "p", modelFingerprint: "m", prompt: "a cat", settings: s)
        func key(_ plan: PrecisionPlan) -> String {
            InversionCache.key(photoHash: "p", modelFingerprint: "m", prompt: "a cat", settings: s, precisionTag: plan.hashTag)
        }
        let fp32 = key(.fp32)
        let bf16 = key(try PrecisionPlan.resolve(.bf16, native: true, usable: true, cpu: "x"))
        let auto = key(try PrecisionPlan.resolve(.auto, native: true, usable: true, cpu: "x"))
        // an auto plan that resolves to fp32 everywhere keys as fp32
        XCTAssertEqual(key(try PrecisionPlan.resolve(.auto, native: false, usable: false, cpu: "x")), fp32)
        XCTAssertEqual(plain, fp32)
        XCTAssertEqual(Set([fp32, bf16, auto]).count, 3)
    }

    func testInfoReportsPrecision() throws {
        let r = try pivot(["info", "--model", model, "--json"])
        XCTAssertEqual(r.status, 0, r.err)
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
        let p = try XCTUnwrap(obj["precision"] as? [String: Any])
        XCTAssertEqual(p["choice"] as? String, "auto")
        XCTAssertEqual(p["forward"] as? String, BF16Support.native && BF16Support.usable ? "bf16" : "fp32")
        XCTAssertEqual(p["gradient"] as? String, "fp32")
        XCTAssertNotNil(p["reason"] as? String)
        let forced = try pivot(["info", "--model", model, "--precision", "bf16"])
        if BF16Support.usable {
            XCTAssertEqual(forced.status, 0, forced.err)
            XCTAssertTrue(forced.out.contains("precision: bf16 network passes, bf16 gradients"), forced.out)
        } else {
            XCTAssertEqual(forced.status, 1)
            XCTAssertTrue(forced.err.hasPrefix("pivot: error: bf16 precision needs"), forced.err)
            XCTAssertEqual(forced.err.split(separator: "\n").count, 1)
        }
        let bad = try pivot(["info", "--model", model, "--precision", "fp16"])
        XCTAssertNotEqual(bad.status, 0)
    }
}
