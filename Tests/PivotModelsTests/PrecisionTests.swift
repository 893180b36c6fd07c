import Foundation
import PivotFormats
import PivotModels
import PivotTensor
import XCTest
import Pivot
import PivotLoading
import PivotImage

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

    /// PIVOT_MAX_ISA caps the dispatch: under avx2 no bf16 path is native, `auto` runs fp32, the CPU line says
    /// so, a generated image is the uncapped one to fp32 rounding; an unknown level is a one-line error.
    func testInstructionSetCap() throws {
        XCTAssertEqual(CPU.ISALevel(capText: "AVX2"), .avx2)
        XCTAssertEqual(CPU.ISALevel(capText: "baseline"), .baseline)
        XCTAssertEqual(CPU.ISALevel(capText: "avx512"), .avx512)
        XCTAssertEqual(CPU.ISALevel(capText: nil), .avx512)
        XCTAssertNil(CPU.ISALevel(capText: "avx3"))
        let capped = try pivot(["info", "--model", model, "--json"], environment: ["PIVOT_MAX_ISA": "avx2"])
        XCTAssertEqual(capped.status, 0, capped.err)
        let obj = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(capped.out.utf8)) as? [String: Any])
        let p = try XCTUnwrap(obj["precision"] as? [String: Any])
        XCTAssertEqual(p["forward"] as? String, "fp32")
        XCTAssertTrue(capped.out.contains("kernels capped at avx2 by PIVOT_MAX_ISA"), capped.out)
        if !CPU.hasAVX512 { print("testInstructionSetCap: no AVX-512 here, so the avx2 cap changes no kernel") }
        let bench = try pivot(
            ["bench", "--model", model, "--network", "unet", "--size", "32", "--runs", "1", "--json"],
            environment: ["PIVOT_MAX_ISA": "avx2"])
        XCTAssertEqual(bench.status, 0, bench.err)
        let line = try XCTUnwrap(bench.out.split(separator: "\n").first { $0.hasPrefix("{") })
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        XCTAssertEqual(report["blas_core"] as? String, "Haswell", "OpenBLAS runs its AVX2 kernels under the cap")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("isa-cap-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var images: [[Float]] = []
        for cap in ["avx512", "avx2", "baseline"] {
            let out = dir.appendingPathComponent("\(cap).png").path
            let r = try pivot(
                [
                    "generate", "a cat", "--model", model, "--steps", "3", "--seed", "1",
                    "--precision", "fp32", "--quiet", "-o", out,
                ],
                environment: ["PIVOT_MAX_ISA": cap])
            XCTAssertEqual(r.status, 0, r.err)
            images.append(try RGBImage.read(out).pixels)
        }
        for (k, image) in images.enumerated().dropFirst() {
            let worst = zip(image, images[0]).map { abs($0 - $1) }.max() ?? 1
            XCTAssertLessThanOrEqual(worst, 2.0 / 255, "cap \(k): the image moved by more than 2 levels")
        }
        let unknown = try pivot(["info", "--model", model], environment: ["PIVOT_MAX_ISA": "avx3"])
        XCTAssertEqual(unknown.status, 1)
        XCTAssertEqual(unknown.err, "pivot: error: PIVOT_MAX_ISA=\"avx3\" names no instruction-set level: use avx512, avx2 or baseline\n")
        let long = try pivot(["info", "--model", model], environment: ["PIVOT_MAX_ISA": String(repeating: "x", count: 5000)])
        XCTAssertEqual(long.status, 1)
        XCTAssertEqual(long.err.split(separator: "\n").count, 1)
        XCTAssertLessThan(long.err.count, 160, "a long value is cut, not echoed whole")
    }
}

/// Releasing fp32 matrix weights for bf16-only jobs (`StableDiffusion.releaseFP32Weights`).
final class WeightReleasePipelineTests: XCTestCase {
    var model: String { Bundle.module.path(forResource: "Fixtures/sd1-tiny/model", ofType: nil) ?? "missing" }

    /// Reflection finds every Linear and Conv2d weight: as many as the UNet file has tensors of rank ≥ 2.
    func testMatrixWeightsAreEveryLinearAndConvolution() throws {
        let folder = try ModelFolder(path: model)
        let unet = try folder.loadUNet()
        let file = try SafeTensorsFile(path: model + "/unet/diffusion_pytorch_model.safetensors")
        let matrices = file.names.filter { (file.info($0)?.shape.count ?? 0) >= 2 }
        let found = WeightRelease.matrixWeights(of: unet)
        XCTAssertEqual(found.count, matrices.count)
        XCTAssertTrue(found.allSatisfy { $0.rank == 2 || $0.rank == 4 })
        XCTAssertEqual(WeightRelease.matrixWeights(of: [unet, unet] as [Any]).count, matrices.count, "each storage once")
        // Winograd-only kernels: every 3×3 kernel but the strided downsamplers'
        let kernels3 = file.names.filter { file.info($0)?.shape.count == 4 && file.info($0)?.shape[2] == 3 }
        let strided = kernels3.filter { $0.contains("downsamplers") }
        XCTAssertGreaterThan(strided.count, 0)
        XCTAssertEqual(WeightRelease.winogradKernels(of: unet).count, kernels3.count - strided.count)
    }

    /// A bf16 generation reads no fp32 matrix weight once they are released (none is brought back) and
    /// gives the same image up to the Winograd transforms then made from bf16-rounded weights.
    func testBF16GenerationAfterRelease() throws {
        guard BF16Support.usable else {
            throw XCTSkip("bf16 networks not run: oneDNN has no bf16 kernels on this processor (it needs AVX-512)")
        }
        var request = GenerationRequest(prompt: "a red circle")
        request.steps = 3
        func generate(release: Bool) throws -> (RGBImage, Int) {
            let sd = try StableDiffusion(model: ModelFolder(path: model))
            sd.precision = try PrecisionPlan.resolve(.bf16)
            XCTAssertTrue(sd.precision.isBF16Only(withGradients: true))
            let released = release ? sd.releaseFP32Weights(minimumBytes: 4096) : 0
            return (try sd.generate(request), released)
        }
        let (kept, _) = try generate(release: false)
        let restoredBefore = TensorStorage.restoredCount
        let (released, bytes) = try generate(release: true)
        XCTAssertGreaterThan(bytes, 0, "the tiny model has weights of at least 4 KiB")
        XCTAssertEqual(TensorStorage.restoredCount, restoredBefore, "a bf16 pass read a released fp32 weight")
        XCTAssertEqual(kept.width, released.width)
        let diff = zip(kept.pixels, released.pixels).map { abs($0 - $1) }.max() ?? 1
        print("bf16 generation with released fp32 weights: max pixel difference \(diff)")
        XCTAssertLessThanOrEqual(diff, 0.05)
    }

    func testAutoIsBF16OnlyWithoutGradients() throws {
        let auto = try PrecisionPlan.resolve(.auto, native: true, usable: true, cpu: "test")
        XCTAssertTrue(auto.isBF16Only(withGradients: false))
        XCTAssertFalse(auto.isBF16Only(withGradients: true))
        XCTAssertFalse(PrecisionPlan.fp32.isBF16Only(withGradients: false))
    }
}
