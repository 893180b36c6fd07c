extension RGBImage {
    /// This image with a white band of a fifth of its height below it and `label` centred in the band, in
    /// black, at the largest font scale (up to 3) that fits; labels too long for scale 1 are cut with "…"
    /// (drawn as "..").
    public func labelled(_ label: String) -> RGBImage {
        let band = max(BitmapFont.height(scale: 1) + 2, height / 5)
        var pixels = [Float](repeating: 1, count: width * (height + band) * 3)
        pixels.replaceSubrange(0..<(width * height * 3), with: self.pixels)
        var text = label
        var scale = 3
        while scale > 1 && (BitmapFont.width(of: text, scale: scale) > width - 4 || BitmapFont.height(scale: scale) > band - 2) {
            scale -= 1
        }
        while text.count > 1 && BitmapFont.width(of: text, scale: 1) > width - 2 {
            text = String(text.dropLast(text.hasSuffix("..") ? 3 : 1)) + ".."
        }
        let x = (width - BitmapFont.width(of: text, scale: scale)) / 2
        let y = height + (band - BitmapFont.height(scale: scale)) / 2
        BitmapFont.draw(text, into: &pixels, width: width, height: height + band, x: x, y: y, scale: scale)
        return RGBImage(width: width, height: height + band, pixels: pixels, bitDepth: bitDepth)
    }

    /// `images` in rows of at most `columns`, left to right, separated by white gaps of `gap` pixels;
    /// cells are as large as the largest image.
    public static func grid(_ images: [RGBImage], columns: Int, gap: Int) -> RGBImage {
        guard !images.isEmpty else { return RGBImage(width: 1, height: 1, pixels: [1, 1, 1]) }
        let cols = max(1, min(columns, images.count)), rows = (images.count + cols - 1) / cols
        let cw = images.map(\.width).max() ?? 1, ch = images.map(\.height).max() ?? 1
        let w = cols * cw + (cols - 1) * gap, h = rows * ch + (rows - 1) * gap
        var pixels = [Float](repeating: 1, count: w * h * 3)
        for (i, image) in images.enumerated() {
            let x0 = (i % cols) * (cw + gap), y0 = (i / cols) * (ch + gap)
            for y in 0..<image.height {
                let src = y * image.width * 3, dst = ((y0 + y) * w + x0) * 3
                pixels.replaceSubrange(dst..<(dst + image.width * 3), with: image.pixels[src..<(src + image.width * 3)])
            }
        }
        return RGBImage(width: w, height: h, pixels: pixels, bitDepth: images.map(\.bitDepth).min() ?? 32)
    }
}
