import Foundation
import PivotFormats
import PivotModels
import PivotTensor

/// A `ParameterStore` over one or more weight files (safetensors or torch `.bin` shards, see
/// `TensorArchive`), converting F32/F16/BF16 to fp32 as each tensor is taken. Names may be rewritten on the way in (`rename`), and some may be declared
/// ignorable (`ignore`); everything else that no layer takes is an error from `checkAllTaken()`.
public final class WeightStore: ParameterStore {
    private var entries: [String: (file: TensorArchive, stored: String)] = [:]
    private var taken: Set<String> = []
    private let ignored: Set<String>
    /// The files read, for messages.
    public let files: [String]

    /// Opens every file (validating its header) and indexes its tensors under `rename(storedName)`.
    /// A name that two files both hold is an error.
    public init(files: [String], rename: (String) -> String = { $0 }, ignore: (String) -> Bool = { _ in false }) throws {
        self.files = files
        var ignored: Set<String> = []
        for path in files {
            let file = try TensorArchive(path: path)
            for stored in file.names {
                let name = rename(stored)
                if ignore(name) {
                    ignored.insert(name)
                    continue
                }
                if entries[name] != nil {
                    throw LoadError.duplicateTensor(file: path, tensor: name)
                }
                entries[name] = (file, stored)
            }
        }
        self.ignored = ignored
    }

    /// Loads `name`, checking its shape before converting anything.
    public func tensor(_ name: String, shape: [Int]) throws -> Tensor {
        guard let (file, stored) = entries[name] else { throw ModelError.missingTensor(name) }
        guard let stored_ = file.shape(stored), stored_ == shape else {
            throw ModelError.shapeMismatch(name, expected: shape, found: file.shape(stored) ?? [])
        }
        taken.insert(name)
        return try file.tensor(stored)
    }

    /// Stored dtypes and their tensor counts.
    public var dtypeCounts: [String: Int] {
        var counts: [String: Int] = [:]
        for (_, e) in entries { if let d = e.file.dtype(e.stored) { counts[d.rawValue, default: 0] += 1 } }
        return counts
    }

    /// Total number of stored elements (parameters).
    public var parameterCount: Int {
        entries.values.reduce(0) { $0 + $1.file.elementCount($1.stored) }
    }

    /// Every tensor name the store serves (after renaming), sorted.
    public var names: [String] { entries.keys.sorted() }

    /// The stored shape of `name`, nil if absent.
    public func shape(_ name: String) -> [Int]? { entries[name].flatMap { $0.file.shape($0.stored) } }

    /// Throws `ModelError.unexpectedTensors` naming every tensor that no layer took.
    public func checkAllTaken() throws {
        let left = entries.keys.filter { !taken.contains($0) }.sorted()
        if !left.isEmpty { throw ModelError.unexpectedTensors(left) }
    }
}
