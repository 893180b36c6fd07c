import Foundation
import Pivot
import PivotBatch
import PivotFormats
import PivotImage
import PivotLoading
import PivotText

/// One fuzz target: a reader of files made by strangers, driven with the fuzzer's bytes as the file.
///
/// Every target checks pivot's promise for hostile files: the reader returns something sane or throws an
/// error whose message is one line; it never traps, hangs, leaks past the sanitizers or allocates more than
/// libFuzzer's `-malloc_limit_mb` (each is a finding). A broken promise that is not a trap (a multi-line
/// message, a decoded image with the wrong pixel count) is reported by `fuzzOne`: under libFuzzer it aborts, so the
/// input is kept; `FuzzCorpusTests` (this file is linked into the test suite too) replays the corpora and fails.
struct FuzzTarget {
    let name: String
    /// The file name the bytes are written under (readers that choose by extension see the right one).
    let fileName: String
    /// Reads the file at the path; throwing is fine, trapping is the bug being looked for.
    let run: (String) throws -> Void
}

/// A broken promise that is not a trap (a multi-line message, a decoded image with the wrong pixel count).
struct PromiseBroken: Error {
    let message: String
}

/// Throws `PromiseBroken` with `message`.
func violation(_ message: String) throws -> Never {
    throw PromiseBroken(message: message)
}

/// An error from a reader must be one non-empty line: the broken promise, else nil.
func brokenMessage(_ error: Error) -> String? {
    let text = "\(error)"
    return text.isEmpty || text.contains("\n") ? "error message is not one line: \(text.debugDescription)" : nil
}

/// Reads every floating-point tensor of a safetensors file and checks its element count.
private func readAll(_ file: SafeTensorsFile) throws {
    for name in file.names {
        guard let info = file.info(name), info.dtype.isFloatingPoint else { continue }
        let tensor = try file.floatTensor(name)
        if tensor.count != info.shape.reduce(1, *) { try violation("\(name): \(tensor.count) elements for shape \(info.shape)") }
    }
}

private func readImage(_ path: String) throws {
    let image = try RGBImage.read(path)
    if image.pixels.count != image.width * image.height * 3 {
        try violation("image pixel count \(image.pixels.count) for \(image.width)x\(image.height)")
    }
    if !image.pixels.allSatisfy({ $0 >= 0 && $0 <= 1 }) { try violation("image pixel outside [0, 1]") }
}

/// The tokenizer target's bytes hold up to five files separated by NUL bytes, in this order.
let tokenizerFiles = ["vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"]

private func readTokenizer(_ bytes: [UInt8], in folder: String) throws {
    try? FileManager.default.removeItem(atPath: folder)
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    let parts = bytes.split(separator: 0, maxSplits: tokenizerFiles.count - 1, omittingEmptySubsequences: false)
    for (name, part) in zip(tokenizerFiles, parts) {
        try Data(part).write(to: URL(fileURLWithPath: folder + "/" + name))
    }
    let tokenizer = try CLIPTokenizer(folder: folder)
    let encoded = tokenizer.encode("a photo of a cat, <|endoftext|> x\u{0301} 猫")
    if encoded.ids.count != tokenizer.maxLength { try violation("encoded \(encoded.ids.count) ids, maxLength \(tokenizer.maxLength)") }
}

private func readTorch(_ path: String) throws {
    let file = try TorchFile(path: path)
    for (name, ref) in file.tensors() where ref.dtype.isFloatingPoint {
        let tensor = try file.floatTensor(ref)
        if tensor.count != ref.shape.reduce(1, *) { try violation("\(name): \(tensor.count) elements for shape \(ref.shape)") }
    }
}

/// Every target, by name (`scripts/fuzz.sh` runs them all; `Fuzz/corpus/<name>/` holds each seed corpus).
let fuzzTargets: [FuzzTarget] = [
    FuzzTarget(name: "safetensors", fileName: "model.safetensors") { try readAll(SafeTensorsFile(path: $0)) },
    FuzzTarget(name: "inversion", fileName: "photo.inversion.safetensors") { _ = try InversionRecord(path: $0) },
    FuzzTarget(name: "pickle", fileName: "legacy.pt", run: readTorch),
    FuzzTarget(name: "torchzip", fileName: "model.ckpt", run: readTorch),
    FuzzTarget(name: "tokenizer", fileName: "tokenizer") { _ in },  // driven from bytes, see `fuzzOne`
    FuzzTarget(name: "manifest-csv", fileName: "rows.csv") { _ = try BatchManifest.read($0) },
    FuzzTarget(name: "manifest-json", fileName: "rows.json") { _ = try BatchManifest.read($0) },
    FuzzTarget(name: "manifest-jsonl", fileName: "rows.jsonl") { _ = try BatchManifest.read($0) },
    FuzzTarget(name: "embedding-safetensors", fileName: "token.safetensors") { _ = try TextualInversionEmbedding(path: $0) },
    FuzzTarget(name: "embedding-pt", fileName: "token.pt") { _ = try TextualInversionEmbedding(path: $0) },
    FuzzTarget(name: "lora", fileName: "style.safetensors") { _ = try LoRA(path: $0) },
    FuzzTarget(name: "image-png", fileName: "photo.png") {
        try readImage($0)
        _ = try readPNGText($0)
    },
    FuzzTarget(name: "image-jpeg", fileName: "photo.jpg", run: readImage),
    FuzzTarget(name: "image-tiff", fileName: "photo.tif", run: readImage),
    FuzzTarget(name: "image-webp", fileName: "photo.webp", run: readImage),
    FuzzTarget(name: "image-heif", fileName: "photo.heic", run: readImage),
]

/// PIVOT_FUZZ_VERBOSE=1 prints each input's error (to see what a corpus exercises).
let verbose = ProcessInfo.processInfo.environment["PIVOT_FUZZ_VERBOSE"] == "1"

/// Runs one input through `target` in `directory` (a private scratch folder); a broken promise goes to `report`.
func fuzzOne(_ target: FuzzTarget, _ bytes: [UInt8], directory: String, report: (String) -> Void) {
    let path = directory + "/" + target.fileName
    do {
        if target.name == "tokenizer" {
            try readTokenizer(bytes, in: path)
        } else {
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            try target.run(path)
        }
    } catch let broken as PromiseBroken {
        report(broken.message)
    } catch {
        if let message = brokenMessage(error) { report(message) }
        if verbose { FileHandle.standardError.write(Data("pivot-fuzz: \(error)\n".utf8)) }
    }
}
