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
    public func write(_ path: String, protecting inputs: [String] = [], text: [(String, String)] = [],
                      jpegQuality: Int = 95) throws {
        guard let format = ImageFormat(pathExtension: path) else {
            throw ImageError(.unknownFormat, path: path, "unknown image file extension; use .png, .jpg, .jpeg, .tif or .tiff")
        }
        switch format {
        case .png: try writePNG(path, text: text, protecting: inputs)
        case .jpeg: try writeJPEG(path, quality: jpegQuality, protecting: inputs)
        case .tiff: try writeTIFF(path, protecting: inputs)
        }
    }

    /// Writes an 8-bit RGB PNG whatever the extension, with `text` as text chunks before the image data:
    /// tEXt when the text is ASCII, iTXt (UTF-8) otherwise. Keywords must be 1...79 printable ASCII
    /// characters without leading, trailing or doubled spaces; text must not contain NUL.
    public func writePNG(_ path: String, text: [(String, String)] = [], protecting inputs: [String] = []) throws {
        let chunks = try validatedText(text, path: path)
        let bytes = quantized()
        try atomicallyWrite(path, protecting: inputs) { fd, err, errlen in
            withCStrings(chunks) { texts in
                pv_png_write(fd, bytes, Int32(width), Int32(height), texts.baseAddress, Int32(texts.count), err, errlen)
            }
        }
    }

    /// Writes a baseline JPEG whatever the extension. `quality` is 1...100; `fullChroma` keeps colour at full
    /// resolution (4:4:4) instead of libjpeg's 4:2:0. Huffman tables are optimised.
    public func writeJPEG(_ path: String, quality: Int = 95, fullChroma: Bool = true, protecting inputs: [String] = []) throws {
        guard (1 ... 100).contains(quality) else {
            throw ImageError(.invalidArgument, path: path, "JPEG quality \(quality) is outside 1...100")
        }
        let bytes = quantized()
        try atomicallyWrite(path, protecting: inputs) { fd, err, errlen in
            pv_jpeg_write(fd, bytes, Int32(width), Int32(height), Int32(quality), fullChroma ? 1 : 0, err, errlen)
        }
    }

    /// Writes an 8-bit RGB TIFF (LZW with horizontal prediction) whatever the extension.
    public func writeTIFF(_ path: String, protecting inputs: [String] = []) throws {
        let bytes = quantized()
        try atomicallyWrite(path, protecting: inputs) { fd, err, errlen in
            pv_tiff_write(fd, path, bytes, Int32(width), Int32(height), err, errlen)
        }
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
        guard (1 ... 79).contains(scalars.count), scalars.allSatisfy({ (0x20 ... 0x7E).contains($0.value) }),
              scalars.first != " ", scalars.last != " ", !key.contains("  ") else {
            throw ImageError(.invalidArgument, path: path,
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

/// Refuses to write over a protected input, then runs `encode` on a new temporary file next to `path`, syncs
/// it and renames it over `path`; removes the temporary file if anything fails.
private func atomicallyWrite(_ path: String, protecting inputs: [String],
                             _ encode: (Int32, UnsafeMutablePointer<CChar>, Int) -> Int32) throws {
    let slash = path.lastIndex(of: "/")
    let directory = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
    let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
    guard !name.isEmpty, name != ".", name != ".." else {
        throw ImageError(.invalidArgument, path: path, "the path does not name a file")
    }
    var destination = stat()
    if stat(path, &destination) == 0 {
        if (destination.st_mode & S_IFMT) == S_IFDIR {
            throw ImageError(.writeFailed, path: path, "is a directory")
        }
        for input in inputs {
            var original = stat()
            if stat(input, &original) == 0, original.st_dev == destination.st_dev, original.st_ino == destination.st_ino {
                throw ImageError(.protectedInput, path: path, "refusing to overwrite the input image '\(input)'")
            }
        }
    }
    let prefix = directory == "/" ? "/" : directory + "/"
    let temporary = prefix + ".\(name).tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
    guard fd >= 0 else {
        throw ImageError(.writeFailed, path: path, "cannot create a temporary file in '\(directory)': \(systemError())")
    }
    var isOpen = true
    do {
        var message = [CChar](repeating: 0, count: 512)
        let status = message.withUnsafeMutableBufferPointer { encode(fd, $0.baseAddress!, $0.count) }
        if status != Int32(PV_OK) {
            let reason = String(cString: message)
            if status == Int32(PV_ERR_ARGUMENT) { throw ImageError(.invalidArgument, path: path, "cannot write: \(reason)") }
            throw ImageError(.writeFailed, path: path, "write failed: \(reason.isEmpty ? "out of memory" : reason)")
        }
        guard fsync(fd) == 0 else { throw ImageError(.writeFailed, path: path, "fsync: \(systemError())") }
        isOpen = false
        guard close(fd) == 0 else { throw ImageError(.writeFailed, path: path, "close: \(systemError())") }
        guard rename(temporary, path) == 0 else {
            throw ImageError(.writeFailed, path: path, "rename from temporary file: \(systemError())")
        }
    } catch {
        if isOpen { close(fd) }
        unlink(temporary)
        throw error
    }
    // Make the rename itself durable; failure here does not undo a completed write.
    let directoryFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if directoryFD >= 0 {
        _ = fsync(directoryFD)
        close(directoryFD)
    }
}

private func systemError() -> String {
    String(cString: strerror(errno))
}
