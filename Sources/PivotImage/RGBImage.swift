/// An RGB photo in memory: samples in 0...1, stored as `Float` in HWC order.
///
/// `pixels[(y * width + x) * 3 + c]` is channel `c` (0 red, 1 green, 2 blue) of the pixel in column `x` of
/// row `y`, top row first. `Float` keeps 16-bit sources exact (every k/65535 is a distinct `Float`), and
/// `bitDepth` records on which grid the values lie:
/// - 8: every value is exactly `Float(k) / 255` for an integer k in 0...255 (8-bit files);
/// - 16: every value is exactly `Float(k) / 65535` (16-bit PNG and TIFF files);
/// - 32: arbitrary values in 0...1 (results of float resampling, decoded tensors).
/// Operations that can stay on the 8-bit grid (crop, orientation, Pillow-exact resizing) do, so an 8-bit
/// photo reproduces Pillow's 8-bit pipeline bit for bit. Alpha never appears here: readers composite it on
/// white.
public struct RGBImage: Equatable, Sendable {
    public let width: Int
    public let height: Int
    public let pixels: [Float]
    public let bitDepth: Int

    /// An image from HWC samples in 0...1. `bitDepth` (8, 16 or 32) must describe the values truthfully.
    public init(width: Int, height: Int, pixels: [Float], bitDepth: Int = 32) {
        precondition(width > 0 && height > 0, "RGBImage: size \(width)x\(height) must be positive")
        precondition(pixels.count == width * height * 3, "RGBImage: \(pixels.count) samples for \(width)x\(height)x3")
        precondition(bitDepth == 8 || bitDepth == 16 || bitDepth == 32, "RGBImage: bitDepth \(bitDepth) is not 8, 16 or 32")
        self.width = width
        self.height = height
        self.pixels = pixels
        self.bitDepth = bitDepth
    }

    /// An 8-bit image from HWC bytes (value k becomes k/255).
    public init(width: Int, height: Int, bytes: [UInt8]) {
        precondition(bytes.count == width * height * 3, "RGBImage: \(bytes.count) bytes for \(width)x\(height)x3")
        self.init(width: width, height: height, pixels: bytes.map { Float($0) / 255 }, bitDepth: 8)
    }

    /// A 16-bit image from HWC samples (value k becomes k/65535).
    public init(width: Int, height: Int, samples16: [UInt16]) {
        precondition(samples16.count == width * height * 3, "RGBImage: \(samples16.count) samples for \(width)x\(height)x3")
        self.init(width: width, height: height, pixels: samples16.map { Float($0) / 65535 }, bitDepth: 16)
    }

    /// The (r, g, b) values of the pixel at column `x`, row `y`.
    public func pixel(x: Int, y: Int) -> (r: Float, g: Float, b: Float) {
        let i = (y * width + x) * 3
        return (pixels[i], pixels[i + 1], pixels[i + 2])
    }

    /// 8-bit HWC bytes, rounded as diffusers' `numpy_to_pil` does: clamp to 0...1, then `(v * 255).round()` in
    /// Float with ties to even (NaN becomes 0). Exact for 8-bit images.
    public func quantized() -> [UInt8] {
        pixels.map { value in
            let v = value.isNaN ? 0 : min(max(value, 0), 1)
            return UInt8((v * 255).rounded(.toNearestOrEven))
        }
    }

    /// The image as it should be displayed for an EXIF/TIFF orientation value (1...8; others mean 1):
    /// 2 mirror horizontally, 3 rotate 180°, 4 mirror vertically, 5 transpose, 6 rotate 90° clockwise,
    /// 7 transverse, 8 rotate 90° counter-clockwise — what Pillow's `ImageOps.exif_transpose` does.
    public func oriented(_ orientation: Int) -> RGBImage {
        guard (2...8).contains(orientation) else { return self }
        let w = width, h = height
        let swaps = orientation >= 5
        let outW = swaps ? h : w, outH = swaps ? w : h
        // Source column and row for output pixel (x, y).
        let source: (Int, Int) -> (Int, Int)
        switch orientation {
        case 2: source = { x, y in (w - 1 - x, y) }
        case 3: source = { x, y in (w - 1 - x, h - 1 - y) }
        case 4: source = { x, y in (x, h - 1 - y) }
        case 5: source = { x, y in (y, x) }
        case 6: source = { x, y in (y, h - 1 - x) }
        case 7: source = { x, y in (w - 1 - y, h - 1 - x) }
        default: source = { x, y in (w - 1 - y, x) }
        }
        var out = [Float](repeating: 0, count: pixels.count)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<outH {
                    for x in 0..<outW {
                        let (sx, sy) = source(x, y)
                        let s = (sy * w + sx) * 3, d = (y * outW + x) * 3
                        dst[d] = src[s]
                        dst[d + 1] = src[s + 1]
                        dst[d + 2] = src[s + 2]
                    }
                }
            }
        }
        return RGBImage(width: outW, height: outH, pixels: out, bitDepth: bitDepth)
    }
}

/// Limits checked before any pixel memory is allocated for a decoded file.
public struct ImageLimits: Sendable, Equatable {
    /// The largest width or height accepted.
    public var maxSide: Int
    /// The largest number of pixels (width × height) accepted.
    public var maxPixels: Int

    public init(maxSide: Int = 16384, maxPixels: Int = 100_000_000) {
        self.maxSide = maxSide
        self.maxPixels = maxPixels
    }

    /// 16384 pixels per side and 100 megapixels in all.
    public static let `default` = ImageLimits()
}
