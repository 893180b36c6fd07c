import Foundation
import PivotIO

// The image metrics of PIE-Bench's evaluation (PnPInversion's `evaluation/matrics_calculator.py`), computed as
// the torchmetrics classes it calls compute them, in Double on pixels that are exactly the reference's float32
// k/255. The dataset side (mapping files, masks, folders, averages) is in PIEBench.swift.

/// A measure between two images, as PIE-Bench's evaluation computes it (torchmetrics, data range 1).
public enum ImageMeasure: String, CaseIterable, Codable, Sendable {
    /// Peak signal-to-noise ratio in dB: 10·log10(1 / MSE) (infinite for identical images).
    case psnr
    /// Mean squared error over every element (pixels × channels).
    case mse
    /// Structural similarity: an 11×11 Gaussian window of σ 1.5, k1 = 0.01, k2 = 0.03.
    case ssim
    /// torchmetrics' `CLIPScore` of one image against its prompt (see `CLIPScore`); needs a CLIP model. Not a
    /// measure between two images: `PIEMetric.clipImage` says which image is scored.
    case clipSimilarity = "clip_similarity"
    /// torchmetrics' `LearnedPerceptualImagePatchSimilarity(net_type='squeeze')` of the two images, each
    /// multiplied by the region's mask and mapped to [-1, 1] (see `LPIPSMetric`); needs the network's weights.
    case lpips

    /// The measures between two images (the offline metrics, which need no weights).
    public static let pixelMeasures: [ImageMeasure] = [.psnr, .mse, .ssim]
}

/// The image a CLIP similarity scores, with the suffix PIE-Bench's metric names give it.
public enum CLIPImage: String, CaseIterable, Codable, Sendable {
    /// The source image against the source prompt (`original_prompt`, brackets removed).
    case source = "_source_image"
    /// The edit against the target prompt (`editing_prompt`, brackets removed).
    case target = "_target_image"
}

/// The part of the image a metric looks at, with the suffix PIE-Bench's metric names give it.
public enum MetricRegion: String, CaseIterable, Codable, Sendable {
    /// The whole image.
    case whole = ""
    /// Outside the edit mask (`1 - mask`): what the edit should have kept.
    case background = "_unedit_part"
    /// Inside the edit mask.
    case edited = "_edit_part"
}

/// How SSIM treats the image border; the two conventions torchmetrics has used. Both reflect-pad the images by
/// the window's half-width (5) before filtering.
public enum SSIMBorder: String, CaseIterable, Codable, Sendable {
    /// torchmetrics up to 1.4, the versions PIE-Bench's published numbers were computed with: the padded border
    /// is cropped off the SSIM map, so only the windows that lie inside the image are averaged.
    case crop
    /// torchmetrics 1.5 and later (what a fresh install of the reference computes today): every pixel of the
    /// map of the padded images is averaged, and negative variances (rounding) are clamped to 0.
    case reflect
}

/// One of PIE-Bench's offline metrics: a measure on a region, named as the reference's `evaluate.py` names it
/// (`psnr`, `mse_unedit_part`, `ssim_edit_part`, …).
public struct PIEMetric: Hashable, Codable, Sendable, CustomStringConvertible {
    public let measure: ImageMeasure
    public let region: MetricRegion
    /// The image scored, for `clipSimilarity` (nil for the other measures).
    public let clipImage: CLIPImage?

    public init(_ measure: ImageMeasure, _ region: MetricRegion) {
        self.measure = measure
        self.region = region
        clipImage = nil
    }

    /// A CLIP similarity: `image` (masked by the edit mask for `.edited`) against its prompt.
    public init(clip image: CLIPImage, _ region: MetricRegion = .whole) {
        measure = .clipSimilarity
        self.region = region
        clipImage = image
    }

    /// The reference's name: the measure followed by the region's suffix (and, for CLIP, the image's before it).
    public var name: String { measure.rawValue + (clipImage?.rawValue ?? "") + region.rawValue }
    public var description: String { name }

    /// Every offline metric, in the order measures × regions (whole, background, edited).
    public static let all: [PIEMetric] = MetricRegion.allCases.flatMap { r in ImageMeasure.pixelMeasures.map { PIEMetric($0, r) } }

    /// The offline metrics among the reference's defaults: background PSNR, MSE and SSIM.
    public static let defaults: [PIEMetric] = ImageMeasure.pixelMeasures.map { PIEMetric($0, .background) }

    /// The reference's CLIP similarities (`clip_similarity_source_image`, `clip_similarity_target_image`,
    /// `clip_similarity_target_image_edit_part`), which need a CLIP model (`PIEBenchOptions.clipModel`).
    public static let clip: [PIEMetric] = [PIEMetric(clip: .source), PIEMetric(clip: .target), PIEMetric(clip: .target, .edited)]

    /// The reference's LPIPS metrics (`lpips`, `lpips_unedit_part`, `lpips_edit_part`), which need the LPIPS
    /// network's weights (`PIEBenchOptions.lpipsWeights`).
    public static let lpips: [PIEMetric] = MetricRegion.allCases.map { PIEMetric(.lpips, $0) }

    /// The reference's metrics that need network weights (LPIPS' SqueezeNet, DINO ViT-B/8, CLIP ViT-L/14).
    public static let needingWeights: [String: String] = {
        var names: [String: String] = [:]
        for region in MetricRegion.allCases {
            names["structure_distance" + region.rawValue] = "DINO ViT-B/8 weights"
        }
        for name in ["clip_similarity_source_image", "clip_similarity_target_image", "clip_similarity_target_image_edit_part"] {
            names[name] = "CLIP ViT-L/14 weights"
        }
        return names
    }()

    /// The metric a reference name denotes.
    ///
    /// - Throws: `SettingError` (key `metrics`) for a name the reference does not know, or one that needs
    ///   network weights pivot does not read yet.
    public init(name: String) throws {
        if let metric = (PIEMetric.all + PIEMetric.clip + PIEMetric.lpips).first(where: { $0.name == name }) {
            self = metric
            return
        }
        let offline = PIEMetric.all.map(\.name).joined(separator: ", ")
        if let needs = PIEMetric.needingWeights[name] {
            throw SettingError("metrics", problem: "names \(name), which needs \(needs): not supported yet; the offline metrics are \(offline)")
        }
        throw SettingError("metrics", problem: "names an unknown metric \"\(escapedForOneLine(name))\"; the offline metrics are \(offline)")
    }

    /// The factor the PIE-Bench paper's tables apply: MSE ×10⁴, SSIM ×10², PSNR as it is.
    public var displayScale: Double {
        switch measure {
        case .psnr: return 1
        case .mse: return 1e4
        case .ssim: return 1e2
        case .clipSimilarity: return 1
        case .lpips: return 1e3
        }
    }

    /// The metric of `source` against `edit` (HWC, 3 channels, `width`×`height`), both multiplied by the
    /// region's 0/1 mask (`editMask` is the decoded edit mask, one byte per pixel; the background is its
    /// complement) and measured over the whole array, zeroed pixels included, as the reference does. NaN when
    /// the region is empty. NaN for a CLIP similarity (`PIEBench` computes it with the CLIP model).
    public func value(source: [Float], edit: [Float], editMask: [UInt8], width: Int, height: Int, ssimBorder: SSIMBorder) -> Double {
        if measure == .clipSimilarity || measure == .lpips { return .nan }
        var a = source, b = edit
        if region != .whole {
            let keep: UInt8 = region == .edited ? 1 : 0
            guard editMask.contains(keep) else { return .nan }
            ImageMetrics.applyMask(&a, editMask, keep: keep)
            ImageMetrics.applyMask(&b, editMask, keep: keep)
        }
        switch measure {
        case .psnr: return ImageMetrics.psnr(a, b)
        case .mse: return ImageMetrics.mse(a, b)
        case .ssim: return ImageMetrics.ssim(a, b, width: width, height: height, border: ssimBorder)
        case .clipSimilarity, .lpips: return .nan
        }
    }
}

/// PSNR, MSE and SSIM of two equally sized arrays of samples in 0…1 (data range 1), as torchmetrics computes
/// them, accumulated in Double.
public enum ImageMetrics {
    /// The side of the Gaussian SSIM window (torchmetrics: `int(3.5·σ + 0.5)·2 + 1` for σ = 1.5).
    public static let windowSide = 11
    /// The Gaussian window's standard deviation.
    public static let windowSigma = 1.5

    /// The 1-D Gaussian window, normalised to sum 1 (the 2-D window is its outer product).
    public static let window: [Double] = {
        let half = Double(windowSide - 1) / 2
        let g = (0..<windowSide).map { exp(-pow((Double($0) - half) / windowSigma, 2) / 2) }
        let sum = g.reduce(0, +)
        return g.map { $0 / sum }
    }()

    /// Sets every sample of a pixel whose mask byte is not `keep` to 0 (`mask` has one byte per pixel,
    /// `values` `channels` samples per pixel).
    public static func applyMask(_ values: inout [Float], _ mask: [UInt8], keep: UInt8, channels: Int = 3) {
        precondition(values.count == mask.count * channels, "applyMask: \(values.count) samples for \(mask.count) mask pixels")
        for (p, m) in mask.enumerated() where m != keep {
            for c in 0..<channels { values[p * channels + c] = 0 }
        }
    }

    /// Mean squared error over every element.
    public static func mse(_ a: [Float], _ b: [Float]) -> Double {
        precondition(a.count == b.count && !a.isEmpty, "mse: \(a.count) and \(b.count) samples")
        var sum = 0.0
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                for i in 0..<a.count {
                    let d = Double(a[i]) - Double(b[i])
                    sum += d * d
                }
            }
        }
        return sum / Double(a.count)
    }

    /// 10·log10(1 / MSE) in dB; +∞ for identical arrays.
    public static func psnr(_ a: [Float], _ b: [Float]) -> Double {
        10 * log10(1 / mse(a, b))
    }

    /// Mean SSIM of two HWC images of `channels` channels (data range 1): the Gaussian window over each channel
    /// of the images reflect-padded by 5, averaged over channels and positions as `border` says. NaN when
    /// `crop` leaves no position (a side under 11) or `reflect` cannot pad (a side under 6).
    public static func ssim(_ a: [Float], _ b: [Float], width: Int, height: Int, channels: Int = 3, border: SSIMBorder) -> Double {
        precondition(
            a.count == b.count && a.count == width * height * channels, "ssim: \(a.count), \(b.count) samples for \(width)x\(height)x\(channels)")
        let pad = windowSide / 2
        // Filtering the padded image and cropping the padding off the map is filtering the image itself at the
        // positions where the window fits: `crop` needs no padding at all.
        let padding = border == .reflect ? pad : 0
        guard width > pad && height > pad, width + 2 * padding >= windowSide, height + 2 * padding >= windowSide else { return .nan }
        let pw = width + 2 * padding, ph = height + 2 * padding
        let ow = pw - windowSide + 1, oh = ph - windowSide + 1
        let c1 = 0.01 * 0.01, c2 = 0.03 * 0.03
        var total = 0.0
        // Per channel: the padded planes of both images, then the horizontal pass of the 5 maps (x, y, x², y², xy),
        // `ph` rows of `ow` columns each, then the vertical pass and the SSIM of each position.
        let planes = UnsafeMutablePointer<Double>.allocate(capacity: 2 * pw * ph)
        let rows = UnsafeMutablePointer<Double>.allocate(capacity: 5 * ph * ow)
        let g = UnsafeMutablePointer<Double>.allocate(capacity: windowSide)
        defer {
            planes.deallocate()
            rows.deallocate()
            g.deallocate()
        }
        for t in 0..<windowSide { g[t] = window[t] }
        let x = planes, y = planes + pw * ph, n = ph * ow
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                for c in 0..<channels {
                    for py in 0..<ph {
                        let sy = reflect(py - padding, height)
                        for px in 0..<pw {
                            let s = (sy * width + reflect(px - padding, width)) * channels + c
                            x[py * pw + px] = Double(a[s])
                            y[py * pw + px] = Double(b[s])
                        }
                    }
                    for r in 0..<ph {
                        for j in 0..<ow {
                            var sx = 0.0, sy = 0.0, sxx = 0.0, syy = 0.0, sxy = 0.0
                            let u0 = x + (r * pw + j), v0 = y + (r * pw + j)
                            for t in 0..<windowSide {
                                let u = u0[t], v = v0[t], w = g[t]
                                sx += w * u
                                sy += w * v
                                sxx += w * u * u
                                syy += w * v * v
                                sxy += w * u * v
                            }
                            let o = rows + (r * ow + j)
                            o[0] = sx
                            o[n] = sy
                            o[2 * n] = sxx
                            o[3 * n] = syy
                            o[4 * n] = sxy
                        }
                    }
                    for i in 0..<oh {
                        for j in 0..<ow {
                            var mx = 0.0, my = 0.0, exx = 0.0, eyy = 0.0, exy = 0.0
                            for t in 0..<windowSide {
                                let o = rows + ((i + t) * ow + j), w = g[t]
                                mx += w * o[0]
                                my += w * o[n]
                                exx += w * o[2 * n]
                                eyy += w * o[3 * n]
                                exy += w * o[4 * n]
                            }
                            let mx2 = mx * mx, my2 = my * my, mxy = mx * my
                            var vx = exx - mx2, vy = eyy - my2
                            if border == .reflect {
                                vx = max(vx, 0)
                                vy = max(vy, 0)
                            }
                            let cov = exy - mxy
                            total += ((2 * mxy + c1) * (2 * cov + c2)) / ((mx2 + my2 + c1) * (vx + vy + c2))
                        }
                    }
                }
            }
        }
        return total / Double(channels * oh * ow)
    }

    /// PyTorch's reflect padding: index -1 is 1, index n is n - 2 (the edge is not repeated).
    private static func reflect(_ i: Int, _ n: Int) -> Int {
        if i < 0 { return -i }
        if i >= n { return 2 * (n - 1) - i }
        return i
    }
}
