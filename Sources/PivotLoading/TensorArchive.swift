import Foundation
import PivotFormats
import PivotModels
import PivotTensor

/// A file of named tensors as users have them: safetensors, or a torch `.bin`/`.pt`/`.ckpt` archive (a dict of
/// tensors, or one under `state_dict`) read by pivot's restricted reader. Names, shapes and dtypes come from the
/// header; tensors are converted to fp32 when taken.
public final class TensorArchive: @unchecked Sendable {  // read-only after init
    public let path: String
    /// Every tensor name, sorted.
    public let names: [String]
    /// The string entries of a safetensors header's metadata (empty for torch files).
    public let metadata: [String: String]
    private let safetensors: SafeTensorsFile?
    private let torch: (file: TorchFile, refs: [String: TorchTensorRef])?

    /// Opens `path` by its extension (`.safetensors`, else a torch archive), validating its header.
    public init(path: String) throws {
        self.path = path
        if path.lowercased().hasSuffix(".safetensors") {
            let file = try SafeTensorsFile(path: path)
            safetensors = file
            torch = nil
            names = file.names.sorted()
            metadata = file.metadata
        } else {
            let file = try TorchFile(path: path)
            let dict = file.root["state_dict"] ?? file.root
            guard case .dict(let entries) = dict else {
                throw LoadError.unreadable(path, reason: "not a dictionary of tensors (nor one under state_dict)")
            }
            var refs: [String: TorchTensorRef] = [:]
            for (key, value) in entries { if let k = key.stringValue, let r = value.tensorValue { refs[k] = r } }
            safetensors = nil
            torch = (file, refs)
            names = refs.keys.sorted()
            metadata = [:]
        }
    }

    /// The stored shape of a tensor, nil if absent.
    public func shape(_ name: String) -> [Int]? {
        if let safetensors { return safetensors.info(name)?.shape }
        return torch?.refs[name]?.shape
    }

    /// The stored element type of a tensor.
    public func dtype(_ name: String) -> DType? {
        if let safetensors { return safetensors.info(name)?.dtype }
        return torch?.refs[name]?.dtype
    }

    /// The number of stored elements of a tensor (0 if absent).
    public func elementCount(_ name: String) -> Int { shape(name).map { $0.reduce(1, *) } ?? 0 }

    /// A tensor as fp32; throws `ModelError.missingTensor` if absent.
    public func tensor(_ name: String) throws -> Tensor {
        if let safetensors {
            guard safetensors.contains(name) else { throw ModelError.missingTensor(name) }
            let t = try safetensors.floatTensor(name)
            safetensors.releasePages(name)
            return t
        }
        guard let torch, let ref = torch.refs[name] else { throw ModelError.missingTensor(name) }
        return try torch.file.floatTensor(ref)
    }
}
