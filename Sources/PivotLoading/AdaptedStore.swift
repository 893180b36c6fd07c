import Foundation
import PivotFormats
import PivotModels
import PivotTensor

/// Custom Diffusion weights (Kumari et al. 2023) as diffusers' `train_custom_diffusion.py` saves them
/// (`pytorch_custom_diffusion_weights.bin` or `.safetensors`): fine-tuned cross-attention projections under
/// `<block>.attn2.processor.to_k_custom_diffusion.weight`, `to_v_…` (and `to_q_…`, `to_out_custom_diffusion.0.…`
/// when queries and outputs were trained), which replace the UNet's. The modifier token (`<new1>.bin`) is a
/// textual-inversion embedding, loaded as one.
public struct CustomDiffusion: Sendable {
    public let path: String
    public let sha256: String
    /// diffusers UNet parameter → the file's key.
    public let replacements: [String: String]
    let archive: TensorArchive

    /// Reads the file; every key must be a Custom Diffusion projection.
    public init(path: String) throws {
        let archive: TensorArchive
        do { archive = try TensorArchive(path: path) } catch { throw LoRAError.invalid(path, "\(error)") }
        self.path = path
        self.archive = archive
        sha256 = try SHA256.hexDigest(ofFile: path)
        var map: [String: String] = [:]
        for name in archive.names {
            guard let r = name.range(of: #"\.processor\.(to_[qkv]|to_out)_custom_diffusion(\.0)?\.(weight|bias)$"#, options: .regularExpression)
            else {
                throw LoRAError.invalid(path, "key '\(name)' is not a Custom Diffusion projection (…attn2.processor.to_k_custom_diffusion.weight)")
            }
            let target =
                name.contains(".to_out_custom_diffusion")
                ? "to_out.0" : name[r].contains(".to_q_") ? "to_q" : name[r].contains(".to_k_") ? "to_k" : "to_v"
            map[String(name[..<r.lowerBound]) + "." + target + (name.hasSuffix(".bias") ? ".bias" : ".weight")] = name
        }
        guard !map.isEmpty else { throw LoRAError.invalid(path, "it holds no tensors") }
        replacements = map
    }
}

/// A component's weights with adapters applied as each tensor is taken: Custom Diffusion replacements first,
/// then every LoRA's W += scale · B · A in the order given. Every adapter module is matched and its shapes
/// checked when the store is made, so a key that fits nothing fails before any network is built.
final class AdaptedStore: StrictStore {
    let base: StrictStore
    private var deltas: [String: [(lora: LoRA, module: LoRA.Module, rank: Int, scale: Float)]] = [:]
    private var replaced: [String: (CustomDiffusion, String)] = [:]

    init(base: StrictStore, component: String, loras: [LoRA], customDiffusion: [CustomDiffusion]) throws {
        self.base = base
        let names = base.names
        for cd in customDiffusion where component == "unet" {
            for (parameter, key) in cd.replacements {
                guard let shape = base.shape(parameter) else { throw LoRAError.unmatched(cd.path, key, component: component) }
                guard cd.archive.shape(key) == shape else {
                    throw LoRAError.shapeMismatch(cd.path, key, lora: "\(cd.archive.shape(key) ?? [])", model: shape)
                }
                replaced[parameter] = (cd, key)
            }
        }
        for lora in loras {
            for (module, parameter) in try lora.resolve(component: component, names: names) {
                let (rank, scale) = try lora.scale(module, fitting: base.shape(parameter) ?? [])  // shapes checked now, from headers
                deltas[parameter, default: []].append((lora, module, rank, scale))
            }
        }
    }

    func tensor(_ name: String, shape: [Int]) throws -> Tensor {
        var w: Tensor
        if let (cd, key) = replaced[name] {
            _ = try base.tensor(name, shape: shape)  // taken: the original is replaced, not left over
            w = try cd.archive.tensor(key).reshaped(shape)
        } else {
            w = try base.tensor(name, shape: shape)
        }
        guard let list = deltas[name] else { return w }
        w = w.copy()
        let outer = shape[0], inner = w.count / max(outer, 1)
        for (lora, module, rank, scale) in list {
            let (up, down) = try lora.matrices(module)
            // W [out, in·kh·kw] += scale · B [out, r] · A [r, in·kh·kw]
            BLAS.gemm(m: outer, n: inner, k: rank, alpha: scale, a: up.data, lda: rank, b: down.data, ldb: inner, beta: 1, c: w.data, ldc: inner)
        }
        return w
    }

    func checkAllTaken() throws { try base.checkAllTaken() }
    var parameterCount: Int { base.parameterCount }
    var dtypeCounts: [String: Int] { base.dtypeCounts }
    var files: [String] { base.files }
    var names: [String] { base.names }
    func shape(_ name: String) -> [Int]? { base.shape(name) }
}
