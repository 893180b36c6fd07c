import Foundation
import PivotFormats

extension ModelFolder {
    /// A SHA-256 fingerprint of what shapes an inversion: every config and tokenizer file whole, and for each
    /// weight file its size, its safetensors header and 16 evenly spaced 64 KiB samples of its data (hashing
    /// gigabytes of weights on every edit would cost seconds; a retrained file of the same shapes changes
    /// the samples). Stored in inversion files so an edit refuses an inversion made with another model.
    /// LoRAs (content hash and weight), Custom Diffusion weights and a replacement VAE are part of it.
    public func fingerprint() throws -> String {
        var h = SHA256()
        let fm = FileManager.default
        try adapters(into: &h)
        if single != nil {
            // The file, and everything taken from elsewhere: configs, scheduler, tokenizer choice.
            try sampleWeights(path, into: &h)
            for component in ["text_encoder", "unet", "vae"] { h.update(Array(try configData(component))) }
            h.update(Array("\(try schedulerConfig())|\(tokenizerDirectory ?? configDirectory ?? "builtin")".utf8))
            return SHA256.hex(h.finalize())
        }
        for component in ["text_encoder", "unet", "vae", "scheduler", "tokenizer"] {
            let dir = (path as NSString).appendingPathComponent(component)
            let names = ((try? fm.contentsOfDirectory(atPath: dir)) ?? []).sorted()
            for name in names {
                let file = (dir as NSString).appendingPathComponent(name)
                h.update(Array("\(component)/\(name)\n".utf8))
                if name.hasSuffix(".safetensors") || name.hasSuffix(".bin") {
                    try sampleWeights(file, into: &h)
                } else if name.hasSuffix(".json") || name.hasSuffix(".txt") {
                    guard let data = fm.contents(atPath: file) else { throw LoadError.unreadable(file, reason: "cannot read") }
                    h.update(Array(data))
                }
            }
        }
        return SHA256.hex(h.finalize())
    }

    /// Nothing when there are no adapters (fingerprints of plain models stay what they were).
    private func adapters(into h: inout SHA256) throws {
        for l in loras { h.update(Array("lora:\(l.sha256):\(l.weight)\n".utf8)) }
        for c in customDiffusion { h.update(Array("custom-diffusion:\(c.sha256)\n".utf8)) }
        guard let vae = vaeOverride else { return }
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: vae, isDirectory: &isDir) else { throw LoadError.missingFile(vae) }
        let files =
            isDir.boolValue
            ? ((try? fm.contentsOfDirectory(atPath: vaeOverrideDirectory ?? vae)) ?? []).sorted().map {
                ((vaeOverrideDirectory ?? vae) as NSString).appendingPathComponent($0)
            } : [vae]
        for file in files {
            h.update(Array("vae:\((file as NSString).lastPathComponent)\n".utf8))
            if file.hasSuffix(".json"), let data = fm.contents(atPath: file) { h.update(Array(data)) } else { try sampleWeights(file, into: &h) }
        }
    }

    private func sampleWeights(_ file: String, into h: inout SHA256) throws {
        guard let handle = FileHandle(forReadingAtPath: file) else { throw LoadError.unreadable(file, reason: "cannot open") }
        defer { try? handle.close() }
        let size = Int((try? handle.seekToEnd()) ?? 0)
        h.update(Array("\(size)\n".utf8))
        try handle.seek(toOffset: 0)
        let prefix = try handle.read(upToCount: 8) ?? Data()
        var headerLength = 0
        for (i, b) in prefix.enumerated() { headerLength |= Int(b) << (8 * i) }
        headerLength = min(max(headerLength, 0), max(size - 8, 0))
        h.update(Array(prefix))
        h.update(Array(try handle.read(upToCount: headerLength) ?? Data()))
        let chunk = 65536
        let dataStart = 8 + headerLength, dataSize = size - dataStart
        guard dataSize > 0 else { return }
        for i in 0..<16 {
            let offset = dataStart + max(0, (dataSize - chunk)) * i / 15
            try handle.seek(toOffset: UInt64(offset))
            h.update(Array(try handle.read(upToCount: min(chunk, dataSize)) ?? Data()))
        }
    }
}
