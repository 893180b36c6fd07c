import PivotIO
import CPivotImageShim
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writing. Every write is atomic: the file is written to a temporary file in the destination's directory,
/// fsynced and renamed over the destination (then the directory is fsynced), so readers see either the old
/// file or the complete new one; on any failure the temporary file is removed and the destination is
/// untouched. A destination that is the same file as one of `inputs` (same device and inode, so symlinks and
/// hard links count) is refused before anything is written. Samples are quantized with `quantized()`.
extension RGBImage {
    /// Writes in the format the extension names (.png, .jpg, .jpeg, .tif, .tiff, any case); an unknown
    /// extension is an `ImageError` of kind `.unknownFormat`. `text` goes into PNG text chunks and is not
    /// written to JPEG or TIFF files; `jpegQuality` (1...100) applies to JPEG only.
    public func write(
        _ path: String, protecting inputs: [String] = [], text: [(String, String)] = [],
        jpegQuality: Int = 95
    ) throws {
        guard let format = ImageFormat(pathExtension: path), format.isWritable else {
            throw ImageError(.unknownFormat, path: path, "unknown or read-only image file extension; use \(ImageFormat.writableDescription)")
        }
        switch format {
        case .png: try writePNG(path, text: text, protecting: inputs)
        case .jpeg: try writeJPEG(path, quality: jpegQuality, protecting: inputs)
        case .tiff: try writeTIFF(path, protecting: inputs)
        case .webp: try writeWebP(path, quality: 100, protecting: inputs)
        case .heif: break
        }
    }

    /// Writes a WebP file whatever the extension: lossless for `quality` 100 (the default), lossy below.
    public func writeWebP(_ path: String, quality: Int = 100, protecting inputs: [String] = []) throws {
        guard (1...100).contains(quality) else {
            throw ImageError(.invalidArgument, path: path, "WebP quality \(quality) is outside 1...100")
        }
        let bytes = quantized()
        try atomicallyWrite(path, protecting: inputs) { fd, err, errlen in
            pv_webp_write(fd, bytes, Int32(width), Int32(height), Int32(quality), err, errlen)
        }
    }

    /// Writes an RGB PNG whatever the extension — 16-bit when the image is on the 16-bit grid (`bitDepth` 16,
    /// from a 16-bit photo), 8-bit otherwise — with `text` as text chunks before the image data:
    /// tEXt when the text is ASCII, iTXt (UTF-8) otherwise. Keywords must be 1...79 printable ASCII
    /// characters without leading, trailing or doubled spaces; text must not contain NUL.
    public func writePNG(_ path: String, text: [(String, String)] = [], protecting inputs: [String] = []) throws {
        let chunks = try validatedText(text, path: path)
        let (bytes, depth) = samplesForWriting()
        try atomicallyWrite(path, protecting: inputs) { fd, err, errlen in
            withCStrings(chunks) { texts in
                pv_png_write(fd, bytes, Int32(width), Int32(height), depth, texts.baseAddress, Int32(texts.count), err, errlen)
            }
        }
    }

    /// Writes a baseline JPEG whatever the extension. `quality` is 1...100; `fullChroma` keeps colour at full
    /// resolution (4:4:4) instead of libjpeg's 4:2:0. Huffman tables are optimised.
    public func writeJPEG(_ path: String, quality: Int = 95, fullChroma: Bool = true, protecting inputs: [String] = []) throws {
        guard (1...100).contains(quality) else {
            throw ImageError(.invalidArgument, path: path, "JPEG quality \(quality) is outside 1...100")
        }
        let bytes = quantized()
        try atomicallyWrite(path, protecting: inputs) { fd, err, errlen in
            pv_jpeg_write(fd, bytes, Int32(width), Int32(height), Int32(quality), fullChroma ? 1 : 0, err, errlen)
        }
    }

    /// Writes an RGB TIFF (LZW with horizontal prediction) whatever the extension: 16-bit for an image on the
    /// 16-bit grid, 8-bit otherwise.
    public func writeTIFF(_ path: String, protecting inputs: [String] = []) throws {
        let (bytes, depth) = samplesForWriting()
        try atomicallyWrite(path, protecting: inputs) { fd, err, errlen in
            pv_tiff_write(fd, path, bytes, Int32(width), Int32(height), depth, err, errlen)
        }
    }

    /// The samples PNG and TIFF files get: native-endian 16-bit samples for `bitDepth` 16, bytes otherwise.
    func samplesForWriting() -> (bytes: [UInt8], depth: Int32) {
        guard bitDepth == 16 else { return (quantized(), 8) }
        var bytes = [UInt8](repeating: 0, count: pixels.count * 2)
        bytes.withUnsafeMutableBytes { raw in
            for (i, v) in pixels.enumerated() {
                let sample = UInt16((min(max(v, 0), 1) * 65535).rounded(.toNearestOrEven))
                raw.storeBytes(of: sample, toByteOffset: i * 2, as: UInt16.self)
            }
        }
        return (bytes, 16)
    }
}

// MARK: - Text chunks

private struct TextChunk {
    let key: String
    let value: String
    let international: Bool
}

private func validatedText(_ text: [(String, String)], path: String) throws -> [TextChunk] {
    try text.map { key, value in
        let scalars = Array(key.unicodeScalars)
        guard (1...79).contains(scalars.count), scalars.allSatisfy({ (0x20...0x7E).contains($0.value) }),
            scalars.first != " ", scalars.last != " ", !key.contains("  ")
        else {
            throw ImageError(
                .invalidArgument, path: path,
                "PNG text keyword '\(key)' must be 1...79 printable ASCII characters without leading, trailing or double spaces")
        }
        guard !value.unicodeScalars.contains("\0") else {
            throw ImageError(.invalidArgument, path: path, "PNG text for '\(key)' contains a NUL character")
        }
        return TextChunk(key: key, value: value, international: !value.unicodeScalars.allSatisfy(\.isASCII))
    }
}

/// Calls `body` with `pv_text` values whose C strings live for the duration of the call.
private func withCStrings(_ chunks: [TextChunk], _ body: (UnsafeBufferPointer<pv_text>) -> Int32) -> Int32 {
    let keys = chunks.map { strdup($0.key) }
    let values = chunks.map { strdup($0.value) }
    defer {
        keys.forEach { free($0) }
        values.forEach { free($0) }
    }
    var texts: [pv_text] = []
    for (i, chunk) in chunks.enumerated() {
        guard let key = keys[i], let value = values[i] else { return Int32(PV_ERR_NOMEM) }
        texts.append(pv_text(key: key, value: value, international: chunk.international ? 1 : 0))
    }
    return texts.withUnsafeBufferPointer(body)
}

// MARK: - Atomic replace

/// `AtomicFile.write` around a C encoder (`encode(fd, message, capacity)` returns a `PV_*` status and fills
/// `message` on failure); every failure becomes an `ImageError` naming `path`.
private func atomicallyWrite(
    _ path: String, protecting inputs: [String],
    _ encode: (Int32, UnsafeMutablePointer<CChar>, Int) -> Int32
) throws {
    do {
        try AtomicFile.write(to: path, protecting: inputs) { fd in
            var message = [CChar](repeating: 0, count: 512)
            let status = message.withUnsafeMutableBufferPointer { buffer -> Int32 in
                guard let base = buffer.baseAddress else { return Int32(PV_ERR_ARGUMENT) }
                return encode(fd, base, buffer.count)
            }
            guard status == Int32(PV_OK) else {
                let reason = String(cString: message)
                if status == Int32(PV_ERR_ARGUMENT) { throw ImageError(.invalidArgument, path: path, "cannot write: \(reason)") }
                throw ImageError(.writeFailed, path: path, "write failed: \(reason.isEmpty ? "out of memory" : reason)")
            }
        }
    } catch let failure as AtomicFile.Failure {
        switch failure {
        case .notAFile: throw ImageError(.invalidArgument, path: path, "the path does not name a file")
        case .isDirectory: throw ImageError(.writeFailed, path: path, "is a directory")
        case .protectedInput(let input): throw ImageError(.protectedInput, path: path, "refusing to overwrite the input image '\(input)'")
        case .failed(let step, let reason): throw ImageError(.writeFailed, path: path, "\(step): \(reason)")
        }
    }
}

private func systemError() -> String {
    String(cString: strerror(errno))
}
