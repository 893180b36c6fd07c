import Foundation
import Pivot
import PivotFormats
import PivotLoading
import PivotTensor
import XCTest

/// The weights users add to a model, against diffusers on the tiny fixtures (scripts/fixtures/
/// make_adapter_fixtures.py): LoRA (kohya with LoCon convolutions, two PEFT files at different weights),
/// Custom Diffusion, a swapped VAE (folder and original-layout file) and `.bin` folders; and their errors.
final class AdapterTests: XCTestCase, CLIRunning {
    func fixture(_ path: String) -> String { Bundle.module.path(forResource: "Fixtures/\(path)", ofType: nil) ?? "missing \(path)" }
    var model: String { fixture("sd1-tiny/model") }
    var adapters: String { fixture("adapters") }
    var tinyRandom: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("samples/models/tiny-random").path
    }

    func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "pivot-adapters-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    /// `pivot component NAME` with extra flags on the sd1-tiny input of that component; its output tensor.
    func component(_ name: String, model: String? = nil, _ flags: [String]) throws -> Tensor {
        let dir = try temporaryDirectory()
        let input = ["unet": "unet", "text-encoder": "text-encoder", "vae-decode": "vae-decode"][name] ?? name
        let r = try pivot(
            [
                "component", name, "--model", model ?? self.model, "--in", fixture("sd1-tiny/\(input).in.safetensors"), "--out",
                dir + "/o.safetensors",
                "--precision", "fp32",
            ] + flags)
        XCTAssertEqual(r.status, 0, r.err)
        let file = try SafeTensorsFile(path: dir + "/o.safetensors")
        return try file.floatTensor(file.names[0])
    }

    /// max|ours − ref| ≤ 1e-4 · max(1, max|ref|), the parity bound.
    func assertMatches(_ ours: Tensor, _ key: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let ref = try SafeTensorsFile(path: adapters + "/reference.safetensors").floatTensor(key)
        XCTAssertEqual(ours.shape, ref.shape, key, file: file, line: line)
        var worst: Float = 0, scale: Float = 1
        for i in 0..<min(ours.count, ref.count) {
            worst = max(worst, abs(ours.data[i] - ref.data[i]))
            scale = max(scale, abs(ref.data[i]))
        }
        XCTAssertLessThanOrEqual(worst, 1e-4 * scale, "\(key): max|Δ| \(worst)", file: file, line: line)
        print("adapter parity \(key): max|Δ| = \(worst), bound \(1e-4 * scale)")
    }

    func testKohyaLoRAMatchesDiffusers() throws {
        let lora = ["--lora", adapters + "/kohya.safetensors:0.8"]
        try assertMatches(try component("unet", lora), "kohya.unet")
        try assertMatches(try component("text-encoder", lora), "kohya.text")
    }

    func testTwoPEFTLoRAsAtDifferentWeightsMatchDiffusers() throws {
        let loras = ["--lora", adapters + "/peft-a.safetensors:0.7", "--lora", adapters + "/peft-b.safetensors:1.3"]
        try assertMatches(try component("unet", loras), "peft.unet")
        try assertMatches(try component("text-encoder", loras), "peft.text")
    }

    /// A LoRA saved with `torch.save` reads through the restricted reader and merges as its safetensors twin.
    func testLoRAInTorchFile() throws {
        let bin = try component("unet", ["--lora", adapters + "/peft-b.bin:1.3"])
        XCTAssertEqual(bin.scalars, try component("unet", ["--lora", adapters + "/peft-b.safetensors:1.3"]).scalars)
        XCTAssertNotEqual(bin.scalars, try component("unet", []).scalars)
    }

    func testCustomDiffusionMatchesDiffusers() throws {
        try assertMatches(try component("unet", ["--custom-diffusion", adapters + "/custom-diffusion.bin"]), "custom.unet")
    }

    func testSwappedVAEMatchesDiffusers() throws {
        try assertMatches(try component("vae-decode", ["--vae", tinyRandom + "/vae"]), "vae.folder.image")
        try assertMatches(try component("vae-decode", model: tinyRandom, ["--vae", adapters + "/vae-original.safetensors"]), "vae.file.image")
    }

    /// A folder of `torch.save` weights (.bin, an fp16 variant for the VAE) gives the safetensors folder's outputs.
    func testBinFolderLoads() throws {
        let bin = adapters + "/bin-model"
        XCTAssertEqual(try component("unet", model: bin, []).scalars, try component("unet", model: tinyRandom, []).scalars)
        XCTAssertEqual(try component("text-encoder", model: bin, []).scalars, try component("text-encoder", model: tinyRandom, []).scalars)
        let half = try component("vae-decode", model: bin, []), full = try component("vae-decode", model: tinyRandom, [])
        let worst = zip(half.scalars, full.scalars).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThan(worst, 2e-2, "fp16 weights")
        let folder = try ModelFolder(path: bin)
        XCTAssertEqual(
            try ["text_encoder", "unet", "vae"].map { ((try folder.weightFiles($0))[0] as NSString).lastPathComponent },
            ["pytorch_model.bin", "diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin"])
        XCTAssertEqual(try folder.weightStore("vae").dtypeCounts.keys.sorted(), ["F16"])
    }

    /// LoRAs, their weights and a swapped VAE are part of the model fingerprint (inversion caches and batch
    /// hashes key on it); a plain folder's fingerprint is unchanged by the feature.
    func testFingerprintCoversAdapters() throws {
        let plain = try ModelFolder(path: model)
        var a = plain, b = plain, c = plain, d = plain
        a.loras = [try LoRA(path: adapters + "/peft-a.safetensors", weight: 0.7)]
        b.loras = [try LoRA(path: adapters + "/peft-a.safetensors", weight: 0.8)]
        c.loras = [try LoRA(path: adapters + "/peft-b.safetensors", weight: 0.7)]
        d.vaeOverride = tinyRandom + "/vae"
        let prints = try [plain, a, b, c, d].map { try $0.fingerprint() }
        XCTAssertEqual(Set(prints).count, 5)
        XCTAssertEqual(prints[0], try ModelFolder(path: model).fingerprint())
    }

    /// `pivot info` lists the LoRAs, their ranks and modules, and the VAE.
    func testInfoListsAdapters() throws {
        let r = try pivot([
            "info", "--model", model, "--lora", adapters + "/kohya.safetensors:0.5", "--custom-diffusion", adapters + "/custom-diffusion.bin",
            "--vae", tinyRandom + "/vae",
        ])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("lora: \(adapters)/kohya.safetensors (kohya, rank 2, weight 0.5): "), r.out)
        XCTAssertTrue(r.out.contains("UNet modules, "), r.out)
        XCTAssertTrue(r.out.contains("text encoder modules"), r.out)
        XCTAssertTrue(r.out.contains("custom diffusion: "), r.out)
        XCTAssertTrue(r.out.contains("vae: \(tinyRandom)/vae (instead of the model's)"), r.out)
    }

    /// A key that matches no module, an unknown kind of key, a matrix that does not fit, a LoRA made for
    /// another model: one line naming the file and key, exit status 1.
    func testBadLoRAsAreOneLineErrors() throws {
        let dir = try temporaryDirectory()
        func write(_ name: String, _ tensors: [(String, [Int])]) throws -> String {
            let path = dir + "/" + name
            try SafeTensorsWriter.write(tensors.map { ($0.0, Tensor(zeros: $0.1)) }, to: path)
            return path
        }
        let q = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
        let cases: [(String, String)] = [
            (
                try write(
                    "nowhere.safetensors",
                    [("lora_unet_no_such_block.lora_down.weight", [2, 32]), ("lora_unet_no_such_block.lora_up.weight", [32, 2])]),
                "'no_such_block' matches no module of the model's UNet"
            ),
            (try write("loha.safetensors", [("\(q).hada_w1_a", [2, 32])]), "is in no LoRA format pivot reads"),
            (try write("half.safetensors", [("\(q).lora_down.weight", [2, 32])]), "lacks one of its two matrices"),
            (
                try write("wide.safetensors", [("\(q).lora_down.weight", [2, 1024]), ("\(q).lora_up.weight", [32, 2])]),
                "does not fit the model's weight [32, 32]"
            ),
        ]
        for (file, expected) in cases {
            let r = try pivot(["info", "--model", model, "--lora", file])
            XCTAssertEqual(r.status, 1, file)
            XCTAssertTrue(r.err.contains(expected) && r.err.contains(file), "\(file): \(r.err)")
            XCTAssertEqual(r.err.split(separator: "\n").count, 1, r.err)
        }
        // A LoRA of the 32-wide sd1-tiny on tiny-random (another architecture) is refused, not half-applied.
        let r = try pivot(["info", "--model", tinyRandom, "--lora", adapters + "/kohya.safetensors"])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.err.contains("kohya.safetensors"), r.err)
    }
}
