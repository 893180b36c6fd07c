import Foundation
import PivotFormats
import PivotModels
import PivotTensor

/// A diffusers model folder (`model_index.json`, `unet/`, `vae/`, `text_encoder/`, `tokenizer/`, `scheduler/`).
/// Each network is loaded strictly: every tensor must be present, correctly shaped and used.
public struct ModelFolder {
    public let path: String

    /// Checks that `path` is a directory; networks are loaded on demand.
    public init(path: String) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw LoadError.missingFile(path) }
        guard isDir.boolValue else { throw LoadError.notADirectory(path) }
        self.path = path
    }

    /// `<folder>/<component>/config.json` bytes.
    public func configData(_ component: String) throws -> Data {
        let file = (path as NSString).appendingPathComponent("\(component)/config.json")
        guard FileManager.default.fileExists(atPath: file) else { throw LoadError.missingFile(file) }
        guard let data = FileManager.default.contents(atPath: file) else {
            throw LoadError.unreadable(file, reason: "cannot read")
        }
        return data
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

    /// The safetensors files of a component: the plain file, an `fp16` variant, or every shard.
    public func weightFiles(_ component: String) throws -> [String] {
        let dir = (path as NSString).appendingPathComponent(component)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        let tensors = names.filter { $0.hasSuffix(".safetensors") }.sorted()
        let base = component == "text_encoder" ? "model" : "diffusion_pytorch_model"
        for preferred in ["\(base).safetensors", "\(base).fp16.safetensors"] where tensors.contains(preferred) {
            return [(dir as NSString).appendingPathComponent(preferred)]
        }
        let shards = tensors.filter { $0.range(of: #"-\d{5}-of-\d{5}(\.fp16)?\.safetensors$"#, options: .regularExpression) != nil }
        if !shards.isEmpty { return shards.map { (dir as NSString).appendingPathComponent($0) } }
        if tensors.count == 1 { return [(dir as NSString).appendingPathComponent(tensors[0])] }
        throw LoadError.noWeights(folder: display(component), found: names)
    }

    /// Opens a component's weights; the CLIP text encoder's optional `text_model.` prefix is removed and
    /// its `position_ids` buffer ignored.
    public func weightStore(_ component: String) throws -> WeightStore {
        let files = try weightFiles(component)
        if component == "text_encoder" {
            return try WeightStore(files: files,
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
    private func load<T>(_ component: String, _ build: (WeightStore) throws -> T) throws -> T {
        let store = try weightStore(component)
        let where_ = store.files.count == 1 ? display(relative(store.files[0])) : display(component)
        do {
            let model = try build(store)
            try store.checkAllTaken()
            return model
        } catch let e as ModelError {
            throw LoadError.inFile(where_, e)
        }
    }

    /// A path inside the folder, as shown in messages.
    func display(_ relativePath: String) -> String { (path as NSString).appendingPathComponent(relativePath) }

    private func relative(_ file: String) -> String {
        file.hasPrefix(path + "/") ? String(file.dropFirst(path.count + 1)) : file
    }
}
