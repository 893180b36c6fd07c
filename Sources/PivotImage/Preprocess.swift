import Foundation
import PivotTensor

/// A user crop box in pixel coordinates of the (oriented) image: columns `left..<right`, rows `top..<bottom`
/// (right and bottom exclusive, as in Pillow's `Image.crop`).
public struct CropBox: Equatable, Sendable, CustomStringConvertible {
    public var left: Int
    public var top: Int
    public var right: Int
    public var bottom: Int

    public init(left: Int, top: Int, right: Int, bottom: Int) {
        self.left = left
        self.top = top
        self.right = right
        self.bottom = bottom
    }

    /// The reference's margins (`load_512(left, right, top, bottom)` trims that many pixels from each side)
    /// as a box for an image of the given size. No clamping: invalid margins give a box `cropped` rejects.
    public init(marginsLeft left: Int, top: Int, right: Int, bottom: Int, width: Int, height: Int) {
        self.init(left: left, top: top, right: width - right, bottom: height - bottom)
    }

    public var description: String { "(\(left), \(top), \(right), \(bottom))" }
}

extension RGBImage {
    /// The pixels inside `box`. Throws `ImageError` (`.invalidArgument`) when the box is empty or reaches
    /// outside the image.
    public func cropped(to box: CropBox) throws -> RGBImage {
        guard box.left < box.right, box.top < box.bottom else {
            throw ImageError(
                .invalidArgument, path: nil,
                "crop box \(box) (left, top, right, bottom) is empty: right must exceed left and bottom must exceed top")
        }
        guard box.left >= 0, box.top >= 0, box.right <= width, box.bottom <= height else {
            throw ImageError(
                .invalidArgument, path: nil,
                "crop box \(box) (left, top, right, bottom) reaches outside the \(width)x\(height) image")
        }
        if box == CropBox(left: 0, top: 0, right: width, bottom: height) { return self }
        let w = box.right - box.left
        var out = [Float]()
        out.reserveCapacity(w * (box.bottom - box.top) * 3)
        for y in box.top..<box.bottom {
            let start = (y * width + box.left) * 3
            out.append(contentsOf: pixels[start..<start + w * 3])
        }
        return RGBImage(width: w, height: box.bottom - box.top, pixels: out, bitDepth: bitDepth)
    }

    /// The largest centred region with the aspect ratio `aspectWidth : aspectHeight`. For a square this is
    /// the reference's crop: the longer side is cut to the shorter one from offset `(long − short) / 2`
    /// (integer division).
    public func centerCropped(aspectWidth: Int, aspectHeight: Int) -> RGBImage {
        precondition(aspectWidth > 0 && aspectHeight > 0, "centerCropped: aspect must be positive")
        let box = centerCropBox(width: width, height: height, aspectWidth: aspectWidth, aspectHeight: aspectHeight)
        // The box lies inside the image by construction.
        return (try? cropped(to: box)) ?? self
    }
}

/// The centred crop box with aspect `aspectWidth : aspectHeight` for a `width` × `height` image.
public func centerCropBox(width: Int, height: Int, aspectWidth: Int, aspectHeight: Int) -> CropBox {
    if width * aspectHeight > height * aspectWidth {
        let w = max(1, height * aspectWidth / aspectHeight)
        let offset = (width - w) / 2
        return CropBox(left: offset, top: 0, right: offset + w, bottom: height)
    }
    if width * aspectHeight < height * aspectWidth {
        let h = max(1, width * aspectHeight / aspectWidth)
        let offset = (height - h) / 2
        return CropBox(left: 0, top: offset, right: width, bottom: offset + h)
    }
    return CropBox(left: 0, top: 0, right: width, bottom: height)
}

/// Prepares a photo for the VAE: the optional user crop box, then a centred crop to the target's aspect ratio
/// (a square for `side`, exactly as the reference's `load_512`), then Pillow-BICUBIC resizing to the target
/// size (anti-aliased when shrinking). 8-bit photos give Pillow's bytes exactly.
/// Throws `ImageError` (`.invalidArgument`) for an invalid crop box or size.
public func preprocess(_ image: RGBImage, size: (width: Int, height: Int), crop: CropBox? = nil) throws -> RGBImage {
    guard size.width > 0, size.height > 0, size.width <= 16384, size.height <= 16384 else {
        throw ImageError(.invalidArgument, path: nil, "target size \(size.width)x\(size.height) must be 1...16384 per side")
    }
    let source = try crop.map { try image.cropped(to: $0) } ?? image
    return source.centerCropped(aspectWidth: size.width, aspectHeight: size.height)
        .resized(width: size.width, height: size.height)
}

/// `preprocess(_:size:crop:)` to a `side` × `side` square (the model's native resolution).
public func preprocess(_ image: RGBImage, side: Int, crop: CropBox? = nil) throws -> RGBImage {
    try preprocess(image, size: (side, side), crop: crop)
}

/// The image as a `[1, 3, H, W]` tensor in [-1, 1]: `x / 127.5 − 1` on the 8-bit value x for 8-bit images
/// (bit-identical to the reference's `torch.from_numpy(image).float() / 127.5 - 1`), `2·v − 1` otherwise.
public func toTensor(_ image: RGBImage) -> Tensor {
    let h = image.height, w = image.width, plane = h * w
    let tensor = Tensor(uninitialized: [1, 3, h, w])
    let out = tensor.data
    image.pixels.withUnsafeBufferPointer { src in
        for p in 0..<plane {
            for c in 0..<3 {
                let v = src[p * 3 + c]
                out[c * plane + p] = image.bitDepth == 8 ? Float((v * 255).rounded()) / 127.5 - 1 : 2 * v - 1
            }
        }
    }
    return tensor
}

/// Image `index` of an `[N, 3, H, W]` tensor in [-1, 1], mapped as diffusers does: `(x / 2 + 0.5)` clamped to
/// 0...1 (NaN becomes 0). The result has `bitDepth` 32; `quantized()` gives diffusers' `numpy_to_pil` bytes.
public func fromTensor(_ tensor: Tensor, index: Int = 0) -> RGBImage {
    precondition(
        tensor.rank == 4 && tensor.shape[1] == 3 && tensor.shape[2] > 0 && tensor.shape[3] > 0,
        "fromTensor: expected [N, 3, H, W], got \(tensor.shape)")
    precondition(index >= 0 && index < tensor.shape[0], "fromTensor: index \(index) outside batch of \(tensor.shape[0])")
    let h = tensor.shape[2], w = tensor.shape[3], plane = h * w
    let src = tensor.data + index * 3 * plane
    var pixels = [Float](repeating: 0, count: plane * 3)
    pixels.withUnsafeMutableBufferPointer { dst in
        for c in 0..<3 {
            for p in 0..<plane {
                let v = src[c * plane + p] / 2 + 0.5
                dst[p * 3 + c] = v.isNaN ? 0 : min(max(v, 0), 1)
            }
        }
    }
    withExtendedLifetime(tensor) {}
    return RGBImage(width: w, height: h, pixels: pixels, bitDepth: 32)
}

extension RGBImage {
    /// Images of equal height placed left to right.
    public static func sideBySide(_ images: [RGBImage]) -> RGBImage {
        let h = images.map(\.height).max() ?? 0, w = images.reduce(0) { $0 + $1.width }
        var pixels = [Float](repeating: 1, count: w * h * 3)
        var x0 = 0
        for image in images {
            for y in 0..<image.height {
                for x in 0..<image.width {
                    for c in 0..<3 { pixels[(y * w + x0 + x) * 3 + c] = image.pixels[(y * image.width + x) * 3 + c] }
                }
            }
            x0 += image.width
        }
        return RGBImage(width: w, height: h, pixels: pixels)
    }
}

/// An image size in pixels.
public struct ImageSize: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var width: Int
    public var height: Int

    public init(width: Int, height: Int) {
        self.width = width
        self.height = height
    }

    /// "WxH" (e.g. "640x448"), with positive sides; nil otherwise.
    public init?(parsing text: String) {
        let parts = text.lowercased().split(separator: "x", omittingEmptySubsequences: false)
        guard parts.count == 2, let w = Int(parts[0]), let h = Int(parts[1]), w > 0, h > 0 else { return nil }
        self.init(width: w, height: h)
    }

    /// "WxH".
    public var description: String { "\(width)x\(height)" }

    /// The size, with sides multiples of `multiple`, whose area is closest to `area` among those whose aspect
    /// ratio is within `maxAspectError` (relative) of `self`'s, so that fitting `self` into it crops at most
    /// about that fraction of one side; when none is (a very long or very thin photo), the size of closest
    /// aspect ratio near `area`. Sides are at least `multiple` and at most `maxSide`.
    public func fitted(area: Int, multiple: Int, maxAspectError: Double = 0.03, maxSide: Int = 4096) -> ImageSize {
        precondition(area > 0 && multiple > 0, "fitted: area \(area), multiple \(multiple)")
        let aspect = Double(width) / Double(height)
        let units = max(1, maxSide / multiple)
        var best: (size: ImageSize, areaError: Double, aspectError: Double)?
        var closest: (size: ImageSize, aspectError: Double, areaError: Double)?
        for wu in 1...units {
            // Only heights whose area is within a factor 2 of `area` can qualify (the filter below).
            let w = wu * multiple
            let lowest = max(1, area / (2 * w * multiple)), highest = min(units, 2 * area / (w * multiple) + 1)
            guard lowest <= highest else { continue }
            for hu in lowest...highest {
                let h = hu * multiple
                let areaError = abs(log(Double(w * h) / Double(area)))
                guard areaError < log(2) else { continue }
                let aspectError = abs(Double(w) / Double(h) / aspect - 1)
                let size = ImageSize(width: w, height: h)
                if aspectError <= maxAspectError, best.map({ areaError < $0.areaError }) ?? true {
                    best = (size, areaError, aspectError)
                }
                if closest.map({ aspectError < $0.aspectError || (aspectError == $0.aspectError && areaError < $0.areaError) }) ?? true {
                    closest = (size, aspectError, areaError)
                }
            }
        }
        return best?.size ?? closest?.size ?? ImageSize(width: multiple, height: multiple)
    }
}
