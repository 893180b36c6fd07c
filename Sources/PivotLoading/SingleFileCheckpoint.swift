import Foundation
import PivotFormats
import PivotModels
import PivotTensor

/// Named tensors by their stored names: a whole checkpoint, or one network's file (`TensorArchive`).
public protocol TensorSource: AnyObject {
    var path: String { get }
    func shape(_ name: String) -> [Int]?
    func dtype(_ name: String) -> DType?
    func tensor(_ name: String) throws -> Tensor
}

extension SingleFileCheckpoint: TensorSource {}
extension TensorArchive: TensorSource {}

/// A Stable Diffusion checkpoint in one file, in the original (CompVis / Stability) layout: a
/// `.safetensors` file, or a `.ckpt`/`.pt` torch file (`{"state_dict": …}`) read by pivot's restricted reader
/// (`TensorArchive`), recognised as SD 1.x or 2.x by its text encoder's names.
public final class SingleFileCheckpoint {
    /// The architectures recognised from tensor names and shapes.
    public enum Family: String, Sendable {
        /// SD 1.x: CLIP ViT-L/14 text encoder (768), 8 heads.
        case sd1
        /// SD 2.x: OpenCLIP ViT-H/14 text encoder (1024), head size 64, linear projections.
        case sd2
    }

    public let path: String
    public let family: Family
    /// Every tensor name in the file, sorted.
    public var names: [String] { archive.names }
    private let archive: TensorArchive

    public init(path: String) throws {
        self.path = path
        archive = try TensorArchive(path: path)
        let names = archive.names
        if names.contains(SingleFileKeys.clipPrefix + "embeddings.token_embedding.weight") {
            family = .sd1
        } else if names.contains(SingleFileKeys.openClipPrefix + "token_embedding.weight") {
            family = .sd2
        } else if !names.contains(where: { $0.hasPrefix(SingleFileKeys.unetPrefix) }) {
            throw LoadError.unreadable(path, reason: "not a Stable Diffusion checkpoint (no model.diffusion_model.* tensors)")
        } else {
            throw LoadError.unreadable(
                path,
                reason:
                    "a Stable Diffusion checkpoint without a known text encoder (cond_stage_model.transformer.* or cond_stage_model.model.*); SD 1.x and 2.x are supported"
            )
        }
    }

    /// The stored shape of a tensor, nil if absent.
    public func shape(_ name: String) -> [Int]? { archive.shape(name) }

    /// The stored element type of a tensor.
    public func dtype(_ name: String) -> DType? { archive.dtype(name) }

    /// A tensor as fp32.
    public func tensor(_ name: String) throws -> Tensor { try archive.tensor(name) }
}

/// A `ParameterStore` serving diffusers names from a single-file checkpoint through `SingleFileKeys`;
/// strict like `WeightStore`: `checkAllTaken()` names every tensor of the component no layer used.
public final class SingleFileStore: ParameterStore {
    public let checkpoint: TensorSource
    private let map: [String: SingleFileSource]
    private var taken: Set<String> = []
    private let unmapped: [String]

    public init(_ checkpoint: TensorSource, map: [String: SingleFileSource], unmapped: [String]) {
        self.checkpoint = checkpoint
        self.map = map
        self.unmapped = unmapped.filter { !SingleFileKeys.isIgnorable($0) }
    }

    public func tensor(_ name: String, shape: [Int]) throws -> Tensor {
        guard let source = map[name] else { throw ModelError.missingTensor(name) }
        guard let stored = checkpoint.shape(source.original), let expected = self.shape(name) else {
            throw ModelError.missingTensor(source.original)
        }
        guard expected == shape else {
            throw ModelError.shapeMismatch("\(name) (\(source.original))", expected: shape, found: stored)
        }
        taken.insert(source.original)
        let t = try checkpoint.tensor(source.original)
        switch source.transform {
        case .none, .squeeze:
            return t.reshaped(shape)
        case .rows(let index, _):
            return batchSlice(t, index * shape[0]..<(index + 1) * shape[0]).reshaped(shape)  // rows of a fused tensor
        }
    }

    public var files: [String] { [checkpoint.path] }

    /// Every diffusers name served, sorted.
    public var names: [String] { map.keys.sorted() }

    /// The shape `tensor(name, shape:)` takes for `name`, nil if absent.
    public func shape(_ name: String) -> [Int]? {
        guard let source = map[name], let stored = checkpoint.shape(source.original) else { return nil }
        switch source.transform {
        case .none: return stored
        case .squeeze: return stored.count == 4 && stored[2] == 1 && stored[3] == 1 ? [stored[0], stored[1]] : stored
        case .rows(_, let parts): return stored.isEmpty || stored[0] % parts != 0 ? stored : [stored[0] / parts] + stored.dropFirst()
        }
    }

    /// The diffusers names this store serves, with their sources, sorted by name.
    public var mappedNames: [(name: String, source: SingleFileSource)] {
        map.keys.sorted().compactMap { k in map[k].map { (k, $0) } }
    }

    public var parameterCount: Int {
        Set(map.values.map(\.original)).reduce(0) { $0 + (checkpoint.shape($1)?.reduce(1, *) ?? 0) }
    }

    public var dtypeCounts: [String: Int] {
        var counts: [String: Int] = [:]
        for name in Set(map.values.map(\.original)) { if let d = checkpoint.dtype(name) { counts[d.rawValue, default: 0] += 1 } }
        return counts
    }

    /// Throws `ModelError.unexpectedTensors` for names no layer took and names of the component the table
    /// does not know.
    public func checkAllTaken() throws {
        let left = Set(map.values.map(\.original)).subtracting(taken).sorted() + unmapped
        if !left.isEmpty { throw ModelError.unexpectedTensors(left) }
    }
}
