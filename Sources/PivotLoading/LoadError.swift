import Foundation
import PivotModels

/// Errors finding and reading a model folder.
public enum LoadError: Error, CustomStringConvertible {
    case notADirectory(String)
    case missingFile(String)
    case noWeights(folder: String, found: [String])
    case duplicateTensor(file: String, tensor: String)
    case unreadable(String, reason: String)
    /// A model error placed in its file.
    case inFile(String, ModelError)

    public var description: String {
        switch self {
        case .notADirectory(let p): return "\(p): not a model folder (expected a diffusers folder with unet/, vae/, text_encoder/)"
        case .missingFile(let p): return "\(p): file not found"
        case .noWeights(let folder, let found):
            if found.contains(where: { $0.hasSuffix(".bin") }) {
                return "\(folder): only PyTorch .bin weights found; pivot reads .safetensors (convert them first)"
            }
            return "\(folder): no .safetensors weights found"
        case .duplicateTensor(let file, let t): return "\(file): tensor '\(t)' appears in more than one weight file"
        case .unreadable(let p, let reason): return "\(p): \(reason)"
        case .inFile(let p, let e): return "\(p): \(e)"
        }
    }
}
