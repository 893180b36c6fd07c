import ArgumentParser
import Foundation
import PivotDiffusion
import Pivot
import PivotLoading
import PivotImage

extension InversionMethod: ExpressibleByArgument {}

/// The inversion flags `pivot invert` and `pivot edit` share.
struct InversionOptions: ParsableArguments {
    // Optional so that, given an inversion file, a flag set on the command line can be checked against it.
    @Option(
        name: .long, help: "Inversion method: null-text, negative-prompt, direct, ddim, fixed-point, fixed-point+direct or ddpm (default null-text).")
    var method: InversionMethod?

    @Option(name: .long, help: "DDIM steps (default 50).")
    var steps: Int?

    @Option(name: .long, help: "Guidance scale the inversion must reconstruct under (default 7.5).")
    var guidance: Float?

    @Option(name: .long, help: "Most inner iterations per step: null-text's Adam steps, fixed-point's refinements (default 10).")
    var innerSteps: Int?

    @Option(name: .long, help: "Crop box L,T,R,B in pixels before the centre crop.")
    var crop: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Size to invert and edit at: WxH (multiples of the model's 64 px for SD), or auto (default: the photo's aspect ratio at about the model's native area).",
            valueName: "WxH"))
    var size: String?

    @Flag(name: .long, help: "Invert the centred square at the native resolution (the reference's crop), not the photo's aspect ratio.")
    var square = false

    func validate() throws {
        if let crop, parseCrop(crop) == nil { throw ValidationError("--crop must look like 10,20,400,380 (left,top,right,bottom)") }
        if let size, PhotoSizing(parsing: size) == nil { throw ValidationError("--size must look like 640x448, or be auto or square") }
        if square, size != nil { throw ValidationError("give --square or --size, not both") }
    }

    /// The sizing asked for, nil when neither flag was given.
    var sizing: PhotoSizing? { square ? .square : size.flatMap(PhotoSizing.init(parsing:)) }

    var settings: InversionSettings {
        var s = InversionSettings()
        s.method = method ?? s.method
        s.steps = steps ?? s.steps
        s.guidance = guidance ?? s.guidance
        s.innerSteps = innerSteps ?? s.innerSteps
        s.crop = crop.flatMap(parseCrop)
        s.size = sizing ?? s.size
        return s
    }

    /// The settings given on the command line (to be checked against an inversion file).
    var given: InversionSettings.Given {
        InversionSettings.Given(
            method: method, steps: steps, guidance: guidance, innerSteps: innerSteps, crop: crop.flatMap(parseCrop), size: sizing)
    }
}

/// "L,T,R,B" → a crop box.
func parseCrop(_ s: String) -> CropBox? { CropBox(parsing: s) }
