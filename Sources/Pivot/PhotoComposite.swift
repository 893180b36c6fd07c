import Foundation
import PivotImage

/// The size an edit's images are written at.
public enum OutputSize: String, Sendable, CaseIterable {
    /// The photo's own resolution: the photo plus the change the edit made (the default).
    case photo
    /// The size the model rendered at (the inversion size).
    case model
}

/// Carries an edit made at the model's size back to the photo's own resolution: the photo plus the change,
/// `photo + upsample(edited − reconstruction)` (bicubic), clipped to 0…1, inside the region the model saw
/// (the centred crop to the inversion size's aspect ratio; at most ~3% of a side lies outside it and stays
/// the photo's). Where the change is below `threshold` in every channel, or outside a local-blend mask,
/// pixels are exactly the photo's, so detail the model cannot reproduce stays and an edit whose target
/// equals its source returns the photo itself.
public struct PhotoComposite {
    /// The photo (after any crop box), at its own resolution.
    public let photo: RGBImage
    /// The region of `photo` the model saw.
    public let region: CropBox
    /// Changes smaller than this (in 0…1 units, every channel) leave the photo's pixel.
    public var threshold: Float = 1 / 255

    /// For a photo inverted at `size`.
    public init(photo: RGBImage, size: ImageSize) {
        self.photo = photo
        region = centerCropBox(width: photo.width, height: photo.height, aspectWidth: size.width, aspectHeight: size.height)
    }

    /// The photo plus `edited − base` (both at the model's size), at the photo's resolution; `mask` (the
    /// latent's height × width, row-major; true where the edit may change pixels) limits the change.
    public func applying(_ edited: RGBImage, minus base: RGBImage, mask: (height: Int, width: Int, values: [Bool])? = nil) -> RGBImage {
        precondition(edited.width == base.width && edited.height == base.height, "PhotoComposite: edit and base sizes differ")
        // The difference, offset into 0…1 so that the resampler (which clamps to 0…1) carries it unchanged.
        var offset = [Float](repeating: 0.5, count: edited.pixels.count)
        for i in 0..<offset.count { offset[i] = (edited.pixels[i] - base.pixels[i] + 1) / 2 }
        let rw = region.right - region.left, rh = region.bottom - region.top
        let change = RGBImage(width: edited.width, height: edited.height, pixels: offset, bitDepth: 32).resized(width: rw, height: rh)
        var out = photo.pixels
        for y in 0..<rh {
            for x in 0..<rw {
                if let mask {
                    let my = min(mask.height - 1, y * mask.height / rh), mx = min(mask.width - 1, x * mask.width / rw)
                    if !mask.values[my * mask.width + mx] { continue }
                }
                let c = (y * rw + x) * 3
                let d0 = 2 * change.pixels[c] - 1, d1 = 2 * change.pixels[c + 1] - 1, d2 = 2 * change.pixels[c + 2] - 1
                guard abs(d0) >= threshold || abs(d1) >= threshold || abs(d2) >= threshold else { continue }
                let p = ((y + region.top) * photo.width + x + region.left) * 3
                out[p] = min(max(photo.pixels[p] + d0, 0), 1)
                out[p + 1] = min(max(photo.pixels[p + 1] + d1, 0), 1)
                out[p + 2] = min(max(photo.pixels[p + 2] + d2, 0), 1)
            }
        }
        if out == photo.pixels { return photo }
        // A 16-bit photo's edit stays on the 16-bit grid (written as 16-bit PNG or TIFF); others are floats.
        guard photo.bitDepth == 16 else { return RGBImage(width: photo.width, height: photo.height, pixels: out, bitDepth: 32) }
        return RGBImage(width: photo.width, height: photo.height, pixels: out.map { ($0 * 65535).rounded() / 65535 }, bitDepth: 16)
    }
}
