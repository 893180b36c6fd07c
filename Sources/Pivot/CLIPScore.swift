import Foundation
import PivotIO
import PivotImage
import PivotLoading
import PivotModels
import PivotTensor
import PivotText

/// PIE-Bench's CLIP similarity: torchmetrics' `CLIPScore` as PnPInversion's `MetricsCalculator` calls it
/// (`CLIPScore(model_name_or_path="openai/clip-vit-large-patch14")`, then `calculate_clip_similarity(img, txt,
/// mask)`, which multiplies the 8-bit image by the 0/1 mask first): `max(100 · cos(E_image, E_text), 0)`.
///
/// The model is a local transformers `CLIPModel` folder (nothing is downloaded): `config.json` (`text_config`,
/// `vision_config`, `projection_dim`), `model.safetensors` (F32, F16 or BF16; `pytorch_model.bin` as a fallback),
/// optionally `preprocessor_config.json` (`size.shortest_edge`, `crop_size`, `image_mean`, `image_std`; CLIP's
/// 224 and mean/std when absent) and the tokenizer files (`tokenizer.json`, or `vocab.json` + `merges.txt`; pivot's
/// built-in CLIP vocabulary when absent). Loading is strict: a missing or mis-shaped tensor, or one no layer takes
/// (`logit_scale` and `position_ids` buffers aside), is an error naming the file and the tensor.
///
/// The image is preprocessed as transformers' (Pillow) `CLIPImageProcessor`: the shortest side resized to
/// `shortest_edge` with Pillow's BICUBIC (the long side `int(edge · long / short)`), a centre crop (`top = (h -
/// crop) / 2` rounded down), k/255, then `(x - mean) / std`. The prompt is tokenised without truncation and cut to
/// `max_position_embeddings` tokens, as torchmetrics does; the text feature is the EOS position's pooled output
/// (as transformers picks it), projected.
public final class CLIPScore {
    /// The folder the model came from.
    public let folder: String
    public let text: CLIPTextModel
    public let vision: CLIPVisionModel
    let textProjection: Linear
    let visualProjection: Linear
    public let tokenizer: CLIPTokenizer
    /// `text_config.eos_token_id` (2, the legacy value, picks the largest id's position).
    public let eosTokenID: Int
    public let shortestEdge: Int
    public let cropSize: Int
    public let mean: [Float]
    public let std: [Float]

    /// Loads a `CLIPModel` folder.
    /// - Throws: `LoadError` naming the file (and tensor) at fault; `ModelError` / `TokenizerError` in their file.
    public init(folder: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw LoadError.unreadable(folder, reason: "not a CLIP model folder (expected config.json and model.safetensors)")
        }
        self.folder = folder
        func file(_ name: String) -> String { (folder as NSString).appendingPathComponent(name) }
        let configPath = file("config.json")
        let root = try Self.jsonObject(configPath, required: true)!
        func section(_ key: String) throws -> Data {
            guard let value = root[key] else { return Data("{}".utf8) }
            guard let object = value as? [String: Any] else {
                throw LoadError.unreadable(configPath, reason: "field '\(key)' is not an object")
            }
            return try JSONSerialization.data(withJSONObject: object)
        }
        let textConfig = try CLIPTextConfig(json: section("text_config"), file: configPath)
        let visionConfig = try CLIPVisionConfig(json: section("vision_config"), file: configPath)
        let textSection = root["text_config"] as? [String: Any] ?? [:]
        eosTokenID = try Self.integer(textSection["eos_token_id"], default: 2, field: "text_config.eos_token_id", file: configPath)
        let projection = try Self.integer(root["projection_dim"], default: 512, field: "projection_dim", file: configPath)
        guard projection > 0 && projection <= 1 << 16 else {
            throw LoadError.unreadable(configPath, reason: "projection_dim = \(projection) is out of range")
        }

        // The preprocessor: CLIP's defaults unless preprocessor_config.json says otherwise.
        let processorPath = file("preprocessor_config.json")
        let processor = try Self.jsonObject(processorPath, required: false) ?? [:]
        let size = processor["size"]
        let edgeValue = (size as? [String: Any])?["shortest_edge"] ?? (size is NSNumber ? size : nil)
        shortestEdge = try Self.integer(edgeValue, default: 224, field: "size.shortest_edge", file: processorPath)
        let crop = processor["crop_size"]
        let cropValue = (crop as? [String: Any])?["height"] ?? (crop is NSNumber ? crop : nil)
        cropSize = try Self.integer(cropValue, default: 224, field: "crop_size", file: processorPath)
        if let cropWidth = (crop as? [String: Any])?["width"],
            try Self.integer(cropWidth, default: cropSize, field: "crop_size.width", file: processorPath) != cropSize
        {
            throw LoadError.unreadable(processorPath, reason: "crop_size is not square; pivot crops squares")
        }
        guard shortestEdge > 0 && shortestEdge <= 4096 && cropSize > 0 && cropSize <= shortestEdge else {
            throw LoadError.unreadable(
                processorPath, reason: "size.shortest_edge \(shortestEdge) and crop_size \(cropSize) do not fit (crop ≤ edge ≤ 4096)")
        }
        guard cropSize == visionConfig.imageSize else {
            throw LoadError.unreadable(
                processorPath, reason: "crop_size \(cropSize) is not the vision model's image_size \(visionConfig.imageSize)")
        }
        mean = try Self.triple(processor["image_mean"], default: [0.48145466, 0.4578275, 0.40821073], field: "image_mean", file: processorPath)
        std = try Self.triple(processor["image_std"], default: [0.26862954, 0.26130258, 0.27577711], field: "image_std", file: processorPath)
        guard std.allSatisfy({ $0 > 0 }) else { throw LoadError.unreadable(processorPath, reason: "image_std must be positive") }

        // Weights.
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        let weights: String
        if names.contains("model.safetensors") {
            weights = file("model.safetensors")
        } else if names.contains("pytorch_model.bin") {
            weights = file("pytorch_model.bin")
        } else {
            throw LoadError.noWeights(folder: folder, found: names)
        }
        do {
            let store = try WeightStore(
                files: [weights],
                ignore: { $0 == "logit_scale" || $0.hasSuffix("embeddings.position_ids") })
            text = try CLIPTextModel(config: textConfig, parameters: Params(store, prefix: "text_model"))
            vision = try CLIPVisionModel(config: visionConfig, parameters: Params(store, prefix: "vision_model"))
            textProjection = try Linear(Params(store, prefix: "text_projection"), in: textConfig.hiddenSize, out: projection, bias: false)
            visualProjection = try Linear(
                Params(store, prefix: "visual_projection"), in: visionConfig.hiddenSize, out: projection, bias: false)
            try store.checkAllTaken()
        } catch let error as ModelError {
            throw LoadError.inFile(weights, error)
        }

        // The tokenizer: the folder's, else pivot's built-in CLIP vocabulary.
        let hasTokenizer = names.contains("tokenizer.json") || names.contains("vocab.json")
        tokenizer = hasTokenizer ? try CLIPTokenizer(folder: folder) : try CLIPTokenizer.builtin()
        if let id = [tokenizer.bos, tokenizer.eos].first(where: { $0 >= text.tokenCount }) {
            throw LoadError.unreadable(configPath, reason: "the tokenizer's id \(id) is outside text_config.vocab_size \(text.tokenCount)")
        }
    }

    /// The token ids torchmetrics gives the model: BOS, the prompt's tokens, EOS, cut to
    /// `max_position_embeddings` (a long prompt loses its EOS, as in torchmetrics).
    public func tokenIDs(_ prompt: String) -> [Int] {
        Array(([tokenizer.bos] + tokenizer.contentIds(prompt) + [tokenizer.eos]).prefix(text.config.maxPositionEmbeddings))
    }

    /// The processor's pixel values [1, 3, crop, crop] for an 8-bit image.
    public func pixelValues(_ image: RGBImage) -> Tensor {
        let w = image.width, h = image.height
        let (nw, nh) =
            w <= h
            ? (shortestEdge, Int(Double(shortestEdge) * Double(h) / Double(w))) : (Int(Double(shortestEdge) * Double(w) / Double(h)), shortestEdge)
        let resized = image.resized(width: nw, height: nh).quantized()
        let top = (nh - cropSize) / 2, left = (nw - cropSize) / 2, s = cropSize
        var values = [Float](repeating: 0, count: 3 * s * s)
        for c in 0..<3 {
            for y in 0..<s {
                for x in 0..<s {
                    let k = resized[((top + y) * nw + left + x) * 3 + c]
                    let v = Float(Double(k) * (1.0 / 255))  // transformers rescales in float64, then casts
                    values[(c * s + y) * s + x] = (v - mean[c]) / std[c]
                }
            }
        }
        return Tensor(shape: [1, 3, s, s], values: values)
    }

    /// `get_image_features`: the projected pooled output [projection] of an 8-bit image.
    public func imageFeatures(_ image: RGBImage) throws -> [Float] {
        let f = visualProjection(try vision(pixels: pixelValues(image)))
        return Array(UnsafeBufferPointer(start: f.data, count: f.count))
    }

    /// `get_text_features`: the projected pooled output [projection] of a prompt (used as given).
    public func textFeatures(_ prompt: String) throws -> [Float] {
        let f = textProjection(try text.pooledOutput(ids: tokenIDs(prompt), eosTokenID: eosTokenID))
        return Array(UnsafeBufferPointer(start: f.data, count: f.count))
    }

    /// `max(100 · cos(image, prompt), 0)`; with `mask` (one 0/1 byte per pixel) the image is multiplied by it first.
    public func score(image: RGBImage, prompt: String, mask: [UInt8]? = nil) throws -> Double {
        var input = image
        if let mask {
            precondition(mask.count == image.width * image.height, "CLIPScore: \(mask.count) mask bytes for \(image.width)x\(image.height)")
            var pixels = image.pixels
            ImageMetrics.applyMask(&pixels, mask, keep: 1)
            input = RGBImage(width: image.width, height: image.height, pixels: pixels, bitDepth: image.bitDepth)
        }
        return Self.score(try imageFeatures(input), try textFeatures(prompt))
    }

    /// `max(100 · cos(a, b), 0)`, accumulated in Double.
    public static func score(_ a: [Float], _ b: [Float]) -> Double {
        var dot = 0.0, na = 0.0, nb = 0.0
        for i in 0..<min(a.count, b.count) {
            dot += Double(a[i]) * Double(b[i])
            na += Double(a[i]) * Double(a[i])
            nb += Double(b[i]) * Double(b[i])
        }
        return max(100 * dot / (na.squareRoot() * nb.squareRoot()), 0)
    }

    // MARK: reading the folder's JSON

    private static let configLimits = TextLimits(maxBytes: 4 << 20, maxLines: .max)

    private static func jsonObject(_ path: String, required: Bool) throws -> [String: Any]? {
        guard FileManager.default.fileExists(atPath: path) else {
            if required { throw LoadError.missingFile(path) }
            return nil
        }
        let data = try readLimitedData(path, limits: configLimits) { LoadError.unreadable(path, reason: "the file \($0)") }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw LoadError.unreadable(path, reason: "not a JSON object")
        }
        return object
    }

    private static func integer(_ value: Any?, default fallback: Int, field: String, file: String) throws -> Int {
        guard let value, !(value is NSNull) else { return fallback }
        guard !(value is Bool), let number = value as? NSNumber,
            let int = Int(exactly: number.doubleValue)
        else { throw LoadError.unreadable(file, reason: "field '\(field)' is not an integer") }
        return int
    }

    private static func triple(_ value: Any?, default fallback: [Float], field: String, file: String) throws -> [Float] {
        guard let value, !(value is NSNull) else { return fallback }
        guard let list = value as? [NSNumber], list.count == 3, list.allSatisfy({ $0.doubleValue.isFinite }) else {
            throw LoadError.unreadable(file, reason: "field '\(field)' is not a list of 3 numbers")
        }
        return list.map { Float($0.doubleValue) }
    }
}
