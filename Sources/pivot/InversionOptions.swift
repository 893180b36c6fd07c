import ArgumentParser
import Foundation
import Pivot
import PivotImage

extension InversionMethod: ExpressibleByArgument {}

/// The inversion flags `pivot invert` and `pivot edit` share.
struct InversionOptions: ParsableArguments {
    @Option(name: .long, help: "Inversion method: null-text, negative-prompt, direct or ddim.")
    var method: InversionMethod = .nullText

    @Option(name: .long, help: "DDIM steps.")
    var steps = 50

    @Option(name: .long, help: "Guidance scale the inversion must reconstruct under.")
    var guidance: Float = 7.5

    @Option(name: .long, help: "Most Adam iterations per step (null-text).")
    var innerSteps = 10

    @Option(name: .long, help: "Crop box L,T,R,B in pixels before the centre crop.")
    var crop: String?

    func validate() throws {
        if let crop, parseCrop(crop) == nil { throw ValidationError("--crop must look like 10,20,400,380 (left,top,right,bottom)") }
    }

    var settings: InversionSettings {
        var s = InversionSettings()
        s.method = method
        s.steps = steps
        s.guidance = guidance
        s.innerSteps = innerSteps
        s.crop = crop.flatMap(parseCrop)
        return s
    }
}

/// Shows an inversion's events on one progress line: the DDIM steps, then each null-text inner
/// iteration with its loss (or the direct-inversion offsets).
final class InversionProgress {
    private let progress: Progress

    init(_ label: String, quiet: Bool) {
        progress = Progress(label, quiet: quiet)
        progress.begin()
    }

    func show(_ event: InversionEvent) {
        switch event {
        case .trajectory(let step, let total):
            progress.update(step, total, detail: "DDIM inversion")
        case .nullText(let step, let total, let inner, let innerTotal, let loss, let last):
            progress.update(last ? step : step - 1, total,
                            detail: String(format: "null-text inner %d/%d loss %.3g", inner, innerTotal, loss))
        case .offsets(let step, let total):
            progress.update(step, total, detail: "offsets")
        }
    }
}

/// "L,T,R,B" → a crop box.
func parseCrop(_ s: String) -> CropBox? {
    let v = s.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard v.count == 4, v[0] >= 0, v[1] >= 0, v[2] > v[0], v[3] > v[1] else { return nil }
    return CropBox(left: v[0], top: v[1], right: v[2], bottom: v[3])
}
