import Foundation
import PivotIO
import PivotDiffusion
import PivotFormats
import PivotModels
import PivotTensor

/// A model to load: a diffusers folder (`model_index.json`, `unet/`, `vae/`, `text_encoder/`, `tokenizer/`,
/// `scheduler/`), or a single-file checkpoint in the original layout (.safetensors, .ckpt) whose configs,
/// tokenizer and scheduler come from the defaults pivot carries for its family (SD 1.x, SD 2.x) unless
/// `config` (a diffusers folder to take them from), `tokenizer` or `predictionType` say otherwise.
/// Each network is loaded strictly: every tensor must be present, correctly shaped and used.
public struct ModelFolder {
    public let path: String
    /// The checkpoint when `path` is a single file.
    public let single: SingleFileCheckpoint?
    /// Overrides for single files: a diffusers folder whose configs (and tokenizer and scheduler) to use,
    /// a tokenizer folder, a prediction type.
    public let configDirectory: String?
    public let tokenizerDirectory: String?
    public let predictionType: SchedulerConfig.PredictionType?
    /// LoRA files merged into the UNet and text encoder at load, in order.
    public var loras: [LoRA] = []
    /// Custom Diffusion weights replacing UNet cross-attention projections at load.
    public var customDiffusion: [CustomDiffusion] = []
    /// A VAE used instead of the model's: a diffusers VAE folder (or a model folder's `vae/`), or a VAE file in
    /// the original layout (.safetensors, .ckpt, .pt, .bin; with or without the `first_stage_model.` prefix).
    public var vaeOverride: String? {
        didSet { vaeOverrideFolder = vaeOverride.flatMap(Self.vaeFolder) }
    }
    private var vaeOverrideFolder: String?
    /// The folder of a replacement VAE given as a folder (nil for a file or none).
    public var vaeOverrideDirectory: String? { vaeOverrideFolder }

    /// Checks that `path` is a directory or a checkpoint file (whose header is read now); networks are
    /// loaded on demand.
    public init(
        path: String, config: String? = nil, tokenizer: String? = nil,
        predictionType: SchedulerConfig.PredictionType? = nil
    ) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw LoadError.missingFile(path) }
        let lower = path.lowercased()
        if isDir.boolValue {
            single = nil
        } else if [".safetensors", ".ckpt", ".pt", ".pth", ".bin"].contains(where: { lower.hasSuffix($0) }) {
            single = try SingleFileCheckpoint(path: path)
        } else {
            throw LoadError.notADirectory(path)
        }
        for dir in [config, tokenizer].compactMap({ $0 }) {
            guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else { throw LoadError.notADirectory(dir) }
        }
        self.path = path
        configDirectory = config
        tokenizerDirectory = tokenizer
        self.predictionType = predictionType
    }

    /// A VAE folder for `path`: itself when it holds config.json, its `vae/` when that does; nil for a file.
    static func vaeFolder(_ path: String) -> String? {
        let fm = FileManager.default
        for dir in [path, (path as NSString).appendingPathComponent("vae")]
        where fm.fileExists(atPath: (dir as NSString).appendingPathComponent("config.json")) {
            return dir
        }
        return nil
    }

    /// `<folder>/<component>/config.json` bytes.
    public func configData(_ component: String) throws -> Data {
        if component == "vae", let dir = vaeOverrideFolder {
            let file = (dir as NSString).appendingPathComponent("config.json")
            return try readLimitedData(file, limits: .config) { LoadError.unreadable(file, reason: $0) }
        }
        if let single {
            if let configDirectory { return try ModelFolder(path: configDirectory).configData(component) }
            let data = try builtinConfig(component, family: single.family)
            // SD 2.x with ε-prediction is the 512² base model: sample size 64, not the 768-v model's 96.
            if single.family == .sd2, predictionType == .epsilon, component == "unet",
                var json = try JSONSerialization.jsonObject(with: data) as? [String: Any]
            {
                json["sample_size"] = 64
                return try JSONSerialization.data(withJSONObject: json)
            }
            return data
        }
        let file = (path as NSString).appendingPathComponent("\(component)/config.json")
        guard FileManager.default.fileExists(atPath: file) else { throw LoadError.missingFile(file) }
        return try readLimitedData(file, limits: .config) { LoadError.unreadable(file, reason: $0) }
    }

    public func textEncoderConfig() throws -> CLIPTextConfig {
        try CLIPTextConfig(json: configData("text_encoder"), file: display("text_encoder/config.json"))
    }

    public func unetConfig() throws -> UNetConfig {
        try UNetConfig(json: configData("unet"), file: display("unet/config.json"))
    }

    public func vaeConfig() throws -> VAEConfig {
        try VAEConfig(json: configData("vae"), file: display("vae/config.json"))
    }

    /// The weight files of a component: the plain file, an `fp16` variant, or every shard, as safetensors,
    /// else as torch `.bin` files (`pytorch_model.bin` for the text encoder, older diffusers folders).
    public func weightFiles(_ component: String) throws -> [String] {
        try Self.weightFiles(in: (path as NSString).appendingPathComponent(component), component: component, display: display(component))
    }

    /// `weightFiles(_:)` for the component folder `dir`.
    static func weightFiles(in dir: String, component: String, display: String) throws -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        for ext in ["safetensors", "bin"] {
            let tensors = names.filter { $0.hasSuffix("." + ext) }.sorted()
            let base = component == "text_encoder" ? (ext == "bin" ? "pytorch_model" : "model") : "diffusion_pytorch_model"
            for preferred in ["\(base).\(ext)", "\(base).fp16.\(ext)"] where tensors.contains(preferred) {
                return [(dir as NSString).appendingPathComponent(preferred)]
            }
            let pattern = #"-\d{5}-of-\d{5}(\.fp16)?\."# + ext + "$"
            let shards = tensors.filter { $0.range(of: pattern, options: .regularExpression) != nil }
            if !shards.isEmpty { return shards.map { (dir as NSString).appendingPathComponent($0) } }
            if tensors.count == 1 { return [(dir as NSString).appendingPathComponent(tensors[0])] }
            if !tensors.isEmpty { break }
        }
        throw LoadError.noWeights(folder: display, found: names)
    }

    /// Opens a component's weights; the CLIP text encoder's optional `text_model.` prefix is removed and
    /// its `position_ids` buffer ignored.
    public func weightStore(_ component: String) throws -> StrictStore {
        let base = try baseStore(component)
        guard component != "vae", !loras.isEmpty || !customDiffusion.isEmpty else { return base }
        return try AdaptedStore(base: base, component: component, loras: loras, customDiffusion: customDiffusion)
    }

    private func baseStore(_ component: String) throws -> StrictStore {
        if component == "vae", let override = vaeOverride {
            if let dir = vaeOverrideFolder {
                return try WeightStore(files: Self.weightFiles(in: dir, component: "vae", display: dir))
            }
            let archive = try TensorArchive(path: override)
            let prefixed = archive.names.contains { $0.hasPrefix(SingleFileKeys.vaePrefix) }
            let view: TensorSource = prefixed ? archive : PrefixedSource(archive, prefix: SingleFileKeys.vaePrefix)
            let names = archive.names.map { prefixed ? $0 : SingleFileKeys.vaePrefix + $0 }
            let (map, unmapped) = SingleFileKeys.vae(names, config: try vaeConfig())
            guard !map.isEmpty else { throw LoadError.unreadable(override, reason: "not a VAE (no encoder.* / decoder.* tensors)") }
            return SingleFileStore(view, map: map, unmapped: unmapped + archive.names.filter { prefixed && !$0.hasPrefix(SingleFileKeys.vaePrefix) })
        }
        guard let single else { return try folderStore(component) }
        let names = single.names
        let (map, unmapped): ([String: SingleFileSource], [String])
        switch component {
        case "unet": (map, unmapped) = SingleFileKeys.unet(names, config: try unetConfig())
        case "vae": (map, unmapped) = SingleFileKeys.vae(names, config: try vaeConfig())
        default:
            (map, unmapped) =
                single.family == .sd1
                ? SingleFileKeys.clip(names)
                : SingleFileKeys.openClip(names, layers: try textEncoderConfig().numHiddenLayers)
        }
        return SingleFileStore(single, map: map, unmapped: unmapped)
    }

    private func folderStore(_ component: String) throws -> WeightStore {
        let files = try weightFiles(component)
        if component == "text_encoder" {
            return try WeightStore(
                files: files,
                rename: { $0.hasPrefix("text_model.") ? String($0.dropFirst("text_model.".count)) : $0 },
                ignore: { $0 == "embeddings.position_ids" })
        }
        return try WeightStore(files: files)
    }

    public func loadTextEncoder() throws -> CLIPTextModel {
        let config = try textEncoderConfig()
        return try load("text_encoder") { try CLIPTextModel(config: config, parameters: Params($0)) }
    }

    public func loadUNet() throws -> UNet {
        let config = try unetConfig()
        return try load("unet") { try UNet(config: config, parameters: Params($0)) }
    }

    public func loadVAE() throws -> VAE {
        let config = try vaeConfig()
        return try load("vae") { try VAE(config: config, parameters: Params($0)) }
    }

    /// Builds a network from a component's weights, then refuses leftovers; errors name the weight file.
    private func load<T>(_ component: String, _ build: (StrictStore) throws -> T) throws -> T {
        let store = try weightStore(component)
        let files = store.files
        let where_ =
            component == "vae" && vaeOverride != nil
            ? (files.count == 1 ? files[0] : vaeOverride ?? "")
            : single != nil ? "\(path) (\(component))" : files.count == 1 ? display(relative(files[0])) : display(component)
        do {
            let model = try build(store)
            try store.checkAllTaken()
            return model
        } catch let e as ModelError {
            throw LoadError.inFile(where_, e)
        }
    }

    /// A path inside the folder, as shown in messages.
    public func display(_ relativePath: String) -> String { (path as NSString).appendingPathComponent(relativePath) }

    private func relative(_ file: String) -> String {
        file.hasPrefix(path + "/") ? String(file.dropFirst(path.count + 1)) : file
    }
}

/// A parameter store that can say which stored tensors no layer took.
public protocol StrictStore: ParameterStore {
    func checkAllTaken() throws
    /// Every name served, sorted, and the shape each is taken with.
    var names: [String] { get }
    func shape(_ name: String) -> [Int]?
    /// Stored elements, stored dtypes with their tensor counts, and the files read.
    var parameterCount: Int { get }
    var dtypeCounts: [String: Int] { get }
    var files: [String] { get }
}

extension WeightStore: StrictStore {}
extension SingleFileStore: StrictStore {}

/// A tensor source seen with `prefix` before every name (a VAE file without `first_stage_model.`).
final class PrefixedSource: TensorSource {
    let base: TensorSource
    let prefix: String
    init(_ base: TensorSource, prefix: String) {
        self.base = base
        self.prefix = prefix
    }
    var path: String { base.path }
    func strip(_ name: String) -> String { name.hasPrefix(prefix) ? String(name.dropFirst(prefix.count)) : name }
    func shape(_ name: String) -> [Int]? { base.shape(strip(name)) }
    func dtype(_ name: String) -> DType? { base.dtype(strip(name)) }
    func tensor(_ name: String) throws -> Tensor { try base.tensor(strip(name)) }
}

/// The configs pivot carries for single files (SD 1.5's, and SD 2.1's 768-v), from the package resources.
func builtinConfig(_ component: String, family: SingleFileCheckpoint.Family) throws -> Data {
    let name = component == "scheduler" ? "scheduler" : component
    guard let url = Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Resources/\(family.rawValue)"),
        let data = try? Data(contentsOf: url)
    else {
        throw LoadError.missingFile("pivot's built-in \(family.rawValue) \(component) config (the installation is incomplete)")
    }
    return data
}
