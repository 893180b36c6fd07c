import ArgumentParser
import Foundation
import Pivot
import PivotFormats
import PivotImage

extension InversionMethod: ExpressibleByArgument {}

struct InvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "invert",
        abstract: "Invert a photo: its DDIM pivot trajectory and, by default, per-step null-text embeddings.",
        discussion: """
        Methods: null-text (default; Mokady et al. 2022), negative-prompt (the source prompt as the \
        unconditional embedding, no optimisation), direct (offsets that keep the source branch on the pivot), \
        ddim (plain inversion, the baseline). The output is a safetensors file readable from Python: latents \
        [T+1, 4, h, w], null_embeddings [T, 77, D] or offsets [T, 4, h, w], and metadata.
        """)

    @Argument(help: "The photo (PNG, JPEG or TIFF).")
    var photo: String

    @Option(name: .long, help: "A diffusers model folder.")
    var model: String

    @Option(name: .long, help: "A prompt that describes the photo.")
    var prompt: String

    @Option(name: .long, help: "null-text, negative-prompt, direct or ddim.")
    var method: InversionMethod = .nullText

    @Option(name: .long, help: "DDIM steps.")
    var steps = 50

    @Option(name: .long, help: "Guidance scale the inversion must reconstruct under.")
    var guidance: Float = 7.5

    @Option(name: .long, help: "Most Adam iterations per step (null-text).")
    var innerSteps = 10

    @Option(name: .long, help: "Crop box L,T,R,B in pixels before the centre crop.")
    var crop: String?

    @Option(name: .shortAndLong, help: "Output .safetensors file (written atomically).")
    var output: String

    @Flag(name: .long, help: "No progress output.")
    var quiet = false

    func validate() throws {
        if let crop, parseCrop(crop) == nil { throw ValidationError("--crop must look like 10,20,400,380 (left,top,right,bottom)") }
        guard output.lowercased().hasSuffix(".safetensors") else { throw ValidationError("-o must end in .safetensors") }
        if URL(fileURLWithPath: output).standardizedFileURL == URL(fileURLWithPath: photo).standardizedFileURL {
            throw ValidationError("-o must not be the photo")
        }
    }

    func run() throws {
        var settings = InversionSettings()
        settings.method = method
        settings.steps = steps
        settings.guidance = guidance
        settings.innerSteps = innerSteps
        settings.crop = crop.flatMap(parseCrop)
        let folder = try ModelFolder(path: model)
        let sd = try StableDiffusion(model: folder)
        let t = sd.tokenizer.encode(prompt)
        if t.truncated { note("warning: prompt truncated to \(sd.tokenizer.maxLength) tokens; dropped: \"\(t.droppedText)\"") }
        let trajectory = Progress("invert: DDIM inversion", quiet: quiet)
        let optimisation = Progress("invert: \(method.rawValue)", quiet: quiet)
        var started = false
        var record = try sd.invert(photo: photo, prompt: prompt, settings: settings) { event in
            switch event {
            case .trajectory(let step, let total):
                if step == 1 { trajectory.begin() }
                trajectory.update(step, total)
            case .nullText(let step, let total, let inner, let innerTotal, let loss, let last):
                if !started { optimisation.begin(); started = true }
                let detail = String(format: "inner %d/%d loss %.3g", inner, innerTotal, loss)
                optimisation.update(last ? step : step - 1, total, detail: detail)
            case .offsets(let step, let total):
                if !started { optimisation.begin(); started = true }
                optimisation.update(step, total)
            }
        }
        record.metadata["model_fingerprint"] = try folder.fingerprint()
        record.metadata["photo_sha256"] = try SHA256.hexDigest(ofFile: photo)
        try record.write(to: output)
        if !quiet { note("wrote \(output)") }
    }
}

/// "L,T,R,B" → a crop box.
func parseCrop(_ s: String) -> CropBox? {
    let v = s.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard v.count == 4, v[0] >= 0, v[1] >= 0, v[2] > v[0], v[3] > v[1] else { return nil }
    return CropBox(left: v[0], top: v[1], right: v[2], bottom: v[3])
}
