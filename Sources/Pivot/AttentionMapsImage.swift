import PivotLoading
import PivotDiffusion
import PivotImage

extension StableDiffusion {
    /// The picture of `--attention-maps`, as Prompt-to-Prompt's `show_cross_attention` draws it: one tile
    /// per token of `prompt` (start and end tokens included), the token's averaged map scaled to 0…255 by
    /// its own maximum, resized to `tile` × `tile` (bicubic), with the decoded token under it; tiles in rows
    /// of at most `columns`. Nil when no map was recorded.
    public func attentionMapsImage(
        _ maps: CrossAttentionMaps, prompt: String, tile: Int = 256,
        columns: Int = 8
    ) -> RGBImage? {
        guard let (height, width, values) = maps.averaged() else { return nil }
        // Tiles keep the latent's aspect ratio: `tile` is the longer side.
        let (tw, th) = width >= height ? (tile, max(1, tile * height / width)) : (max(1, tile * width / height), tile)
        let ids = [tokenizer.bos] + tokenizer.contentIds(prompt).prefix(tokenizer.maxLength - 2) + [tokenizer.eos]
        let tiles = ids.enumerated().compactMap { position, id -> RGBImage? in
            guard position < values.count else { return nil }
            let map = values[position]
            let top = map.max() ?? 0
            let bytes = map.flatMap { v -> [UInt8] in
                let level = UInt8(max(0, min(255, top > 0 ? (255 * v / top).rounded(.down) : 0)))
                return [level, level, level]
            }
            let label = tokenizer.decode([id])
            return RGBImage(width: width, height: height, bytes: bytes).resized(width: tw, height: th)
                .labelled(label.isEmpty ? "?" : label)
        }
        return RGBImage.grid(tiles, columns: columns, gap: max(1, tile / 50))
    }
}
