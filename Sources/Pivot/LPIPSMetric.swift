import Foundation
import PivotImage
import PivotLoading
import PivotModels
import PivotTensor

/// PIE-Bench's LPIPS: torchmetrics 1.9.0's `LearnedPerceptualImagePatchSimilarity(net_type="squeeze")` (defaults
/// `reduction="mean"`, `normalize=False`) as PnPInversion's `MetricsCalculator.calculate_lpips` calls it: both
/// images as float32 k/255, multiplied by the mask when one is given, then mapped to [-1, 1] by x·2 − 1. The
/// network is `LPIPSSqueeze` (see there for what it computes).
///
/// Weights come from a local file only (nothing is downloaded): a safetensors file, or a torch `.pth`/`.pt`/`.bin`
/// read by pivot's restricted reader, holding torchmetrics' `_LPIPS(net="squeeze")` state dict:
/// `net.slices.0.0.{weight,bias}`, `net.slices.{s}.{i}.{squeeze,expand1x1,expand3x3}.{weight,bias}` (s.i = 1.3,
/// 1.4, 2.6, 2.7, 3.9, 4.10, 5.11, 6.12) and `lin{0…6}.model.1.weight`. F32, F16 and BF16 are accepted. Also
/// taken: the `lins.{k}.…` aliases torch's `state_dict()` writes beside `lin{k}` (ignored), the same names under
/// the metric's own `net.` prefix (`net.net.slices…`, `net.lin0…`), and torchvision's `squeezenet1_1` names
/// (`features.{i}.…`, `classifier.…` ignored), so torchvision's checkpoint and torchmetrics'
/// `lpips_models/squeeze.pth` may be given together to `init(weightFiles:)`. Loading is strict: a missing or
/// mis-shaped tensor, or one no layer takes, is an error naming it.
public struct LPIPSMetric {
    public let network: LPIPSSqueeze

    /// Loads the network from one weights file.
    public init(weights path: String) throws {
        try self.init(weightFiles: [path])
    }

    /// Loads the network from one or more weights files (e.g. torchvision's SqueezeNet 1.1 checkpoint and
    /// torchmetrics' lin layers).
    public init(weightFiles paths: [String]) throws {
        for path in paths where !FileManager.default.fileExists(atPath: path) { throw LoadError.missingFile(path) }
        let name = paths.joined(separator: ", ")
        do {
            let store = try WeightStore(
                files: paths, rename: Self.canonicalName,
                ignore: { $0.hasPrefix("lins.") || $0.hasPrefix("classifier.") })
            network = try LPIPSSqueeze(Params(store))
            try store.checkAllTaken()
        } catch let error as ModelError {
            throw LoadError.inFile(name, error)
        }
    }

    /// torchmetrics' `_LPIPS` name of a stored tensor name (see the type's documentation).
    static func canonicalName(_ stored: String) -> String {
        var name = stored
        if name.hasPrefix("net.net.") || name.hasPrefix("net.lin") { name.removeFirst(4) }
        if name.hasPrefix("features.") {
            let rest = name.dropFirst("features.".count)
            if let dot = rest.firstIndex(of: "."), let index = Int(rest[..<dot]), (0...12).contains(index) {
                let slice = [0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4, 5, 6][index]
                return "net.slices.\(slice).\(index)" + rest[dot...]
            }
        }
        return name
    }

    /// LPIPS between `a` and `b` (same size, RGB in [0, 1]). `mask`, when given, multiplies both images first:
    /// one value per pixel (row-major, width × height) or per sample (HWC, width × height × 3).
    public func distance(_ a: RGBImage, _ b: RGBImage, mask: [Float]?) throws -> Double {
        guard a.width == b.width, a.height == b.height else {
            throw ModelError.invalidInput("LPIPS: images of \(a.width)x\(a.height) and \(b.width)x\(b.height) differ in size")
        }
        let (w, h) = (a.width, a.height)
        if let mask, mask.count != w * h, mask.count != w * h * 3 {
            throw ModelError.invalidInput("LPIPS: a mask of \(mask.count) values for a \(w)x\(h) image")
        }
        func tensor(_ image: RGBImage) -> Tensor {
            var v = [Float](repeating: 0, count: 3 * w * h)
            let plane = w * h
            for p in 0..<plane {
                for c in 0..<3 {
                    var x = image.pixels[p * 3 + c]
                    if let mask { x *= mask.count == plane ? mask[p] : mask[p * 3 + c] }
                    v[c * plane + p] = x * 2 - 1
                }
            }
            return Tensor(shape: [1, 3, h, w], values: v)
        }
        let d = try Precision.with(.fp32) { try network(tensor(a), tensor(b)) }
        return d[0]
    }
}
