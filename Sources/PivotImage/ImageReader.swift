import CPivotImageShim
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The file formats pivot reads and writes.
public enum ImageFormat: String, Sendable, CaseIterable {
    case png = "PNG"
    case jpeg = "JPEG"
    case tiff = "TIFF"
    case webp = "WebP"
    /// HEIF containers: HEIC (HEVC) and AVIF (AV1), read through libheif.
    case heif = "HEIF"

    /// The extensions pivot reads (any case), for messages and folder scans.
    public static let readableExtensions = ["png", "jpg", "jpeg", "tif", "tiff", "webp", "heic", "heif", "hif", "avif"]

    /// Whether pivot writes this format (HEIF/AVIF are read only).
    public var isWritable: Bool { self != .heif }

    /// The extensions pivot writes, for messages.
    public static let writableDescription = ".png, .jpg, .jpeg, .tif, .tiff or .webp"

    /// The format a path's extension names (.png, .jpg, .jpeg, .tif, .tiff, .webp, .heic, .heif, .hif, .avif, any
    /// case), or nil.
    public init?(pathExtension path: String) {
        let name = path.split(separator: "/", omittingEmptySubsequences: false).last.map(String.init) ?? path
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return nil }
        switch name[name.index(after: dot)...].lowercased() {
        case "png": self = .png
        case "jpg", "jpeg": self = .jpeg
        case "tif", "tiff": self = .tiff
        case "webp": self = .webp
        case "heic", "heif", "hif", "avif": self = .heif
        default: return nil
        }
    }

    /// The format of the file's content, from its leading bytes (never from its name).
    ///
    /// Throws `ImageError` when the path is missing, not a regular file, empty, unreadable, or holds
    /// something other than PNG, JPEG, TIFF, WebP or HEIF (naming the format when it is a common one).
    public static func sniff(_ path: String) throws -> ImageFormat {
        let head = try readHead(path)
        if head.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if head.starts(with: [0xFF, 0xD8, 0xFF]) { return .jpeg }
        // Classic TIFF (42) and BigTIFF (43), little- and big-endian.
        if head.starts(with: [0x49, 0x49, 0x2A, 0x00]) || head.starts(with: [0x4D, 0x4D, 0x00, 0x2A])
            || head.starts(with: [0x49, 0x49, 0x2B, 0x00]) || head.starts(with: [0x4D, 0x4D, 0x00, 0x2B])
        {
            return .tiff
        }
        if head.count >= 12 && head.starts(with: Array("RIFF".utf8)) && Array(head[8..<12]) == Array("WEBP".utf8) { return .webp }
        if head.count >= 12 && Array(head[4..<8]) == Array("ftyp".utf8) {
            let brand = String(decoding: head[8..<12], as: UTF8.self)
            if ["heic", "heix", "hevc", "hevx", "heim", "heis", "mif1", "msf1", "avif", "avis"].contains(brand) { return .heif }
        }
        let supported = "pivot reads PNG, JPEG, TIFF, WebP, HEIC/HEIF and AVIF"
        if let other = otherFormatName(head) {
            throw ImageError(.unknownFormat, path: path, "unsupported image format (\(other)); \(supported)")
        }
        throw ImageError(.unknownFormat, path: path, "not a PNG, JPEG, TIFF, WebP or HEIF image (unrecognised content); \(supported)")
    }
}

extension RGBImage {
    /// Reads a PNG, JPEG, TIFF, WebP, HEIC or AVIF file (recognised by content, not extension); see `read(_:applyOrientation:limits:)`.
    public init(contentsOf path: String, applyOrientation: Bool = true, limits: ImageLimits = .default) throws {
        self = try RGBImage.read(path, applyOrientation: applyOrientation, limits: limits)
    }

    /// Reads a PNG, JPEG, TIFF, WebP, HEIC or AVIF file, recognised by its content (magic bytes), not by its extension.
    ///
    /// - PNG: 1/2/4/8/16-bit grey, grey+alpha, RGB, RGBA, palette (with tRNS transparency).
    /// - JPEG: baseline, progressive, arithmetic-coded; greyscale, RGB/YCbCr, CMYK/YCCK (converted as Pillow
    ///   does). The EXIF orientation (1...8) is applied when `applyOrientation` is true.
    /// - TIFF: 8/16-bit grey/RGB with or without alpha in strips (any libtiff codec: none, LZW, Deflate,
    ///   PackBits, JPEG, ...), plus whatever libtiff's RGBA interface reads (tiles, palettes, 1-bit, CMYK,
    ///   YCbCr) at 8 bits. The Orientation tag is applied when `applyOrientation` is true.
    /// - WebP (still images, lossy or lossless, with alpha); HEIC/HEIF and AVIF (the primary image, 8-bit or
    ///   deeper as 16-bit, with the file's rotation and mirroring applied). PNG eXIf and WebP EXIF orientations
    ///   are applied like JPEG's.
    /// - An embedded ICC profile (any format) is converted to sRGB with Little CMS (perceptual intent).
    ///
    /// Alpha is composited on white, in integers on the file's own grid (`round((c·a + M·(M − a)) / M)` with
    /// M = 255 or 65535), so the result keeps `bitDepth` 8 or 16. Grey becomes R = G = B.
    /// Throws `ImageError` (one line naming the file) for missing, empty, corrupt, truncated, unsupported or
    /// over-limit files; the size is checked against `limits` before pixel memory is allocated.
    public static func read(_ path: String, applyOrientation: Bool = true, limits: ImageLimits = .default) throws -> RGBImage {
        let format = try ImageFormat.sniff(path)
        var decoded = try decode(path, format: format, limits: limits, wantText: false)
        defer { pv_image_free(&decoded) }
        var orientation = Int(decoded.orientation)
        // JPEG APP1, PNG eXIf and WebP EXIF carry the orientation in EXIF (HEIF's rotation is applied on decoding).
        if [.jpeg, .png, .webp].contains(format), let exif = decoded.exif, decoded.exif_length > 0 {
            orientation = exifOrientation(Array(UnsafeBufferPointer(start: exif, count: decoded.exif_length))) ?? 1
        }
        // An embedded ICC profile (Display P3, Adobe RGB, …) is converted to sRGB with Little CMS.
        var converted: Int32 = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = message.withUnsafeMutableBufferPointer { pv_icc_to_srgb(&decoded, &converted, $0.baseAddress, $0.count) }
        guard status == Int32(PV_OK) else { throw ImageError(.outOfMemory, path: path, String(cString: message)) }
        let image = try composite(decoded, path: path)
        return applyOrientation ? image.oriented(orientation) : image
    }
}

/// The text chunks (tEXt, zTXt, iTXt) of a PNG file, in file order, as (keyword, text) pairs. Text that is
/// valid UTF-8 is decoded as UTF-8 (iTXt, and ASCII tEXt), anything else as Latin-1 (tEXt).
public func readPNGText(_ path: String, limits: ImageLimits = .default) throws -> [(key: String, value: String)] {
    let format = try ImageFormat.sniff(path)
    guard format == .png else {
        throw ImageError(.unsupported, path: path, "text chunks exist only in PNG files; this is a \(format.rawValue) file")
    }
    var decoded = try decode(path, format: .png, limits: limits, wantText: true)
    defer { pv_image_free(&decoded) }
    var result: [(key: String, value: String)] = []
    for i in 0..<Int(decoded.text_count) {
        guard let key = decoded.text_keys[i], let value = decoded.text_values[i] else { continue }
        result.append((decodeText(key), decodeText(value)))
    }
    return result
}

// MARK: - Decoding

/// Runs the C decoder for `format`, translating its status into `ImageError`.
private func decode(_ path: String, format: ImageFormat, limits: ImageLimits, wantText: Bool) throws -> pv_image {
    var image = pv_image()
    var cLimits = pv_limits(max_side: Int64(limits.maxSide), max_pixels: Int64(limits.maxPixels))
    var message = [CChar](repeating: 0, count: 512)
    let status: Int32 = message.withUnsafeMutableBufferPointer { err in
        switch format {
        case .png: return pv_png_read(path, &cLimits, wantText ? 1 : 0, &image, err.baseAddress, err.count)
        case .jpeg: return pv_jpeg_read(path, &cLimits, &image, err.baseAddress, err.count)
        case .tiff: return pv_tiff_read(path, &cLimits, &image, err.baseAddress, err.count)
        case .webp: return pv_webp_read(path, &cLimits, &image, err.baseAddress, err.count)
        case .heif: return pv_heif_read(path, &cLimits, &image, err.baseAddress, err.count)
        }
    }
    guard status == Int32(PV_OK) else {
        let reason = String(cString: message)
        let name = format.rawValue
        switch status {
        case Int32(PV_ERR_IO): throw ImageError(.unreadable, path: path, "cannot read \(name): \(reason)")
        case Int32(PV_ERR_UNSUPPORTED): throw ImageError(.unsupported, path: path, "unsupported \(name): \(reason)")
        case Int32(PV_ERR_TOO_LARGE): throw ImageError(.tooLarge, path: path, "\(name) too large: \(reason)")
        case Int32(PV_ERR_NOMEM): throw ImageError(.outOfMemory, path: path, "\(name): \(reason)")
        default: throw ImageError(.corrupt, path: path, "corrupt \(name): \(reason)")
        }
    }
    return image
}

/// Converts decoder output (grey/RGB, optional alpha, 8 or 16 bits) to an RGB image on white.
private func composite(_ image: pv_image, path: String) throws -> RGBImage {
    let width = Int(image.width), height = Int(image.height), channels = Int(image.channels)
    let depth = Int(image.depth)
    guard width > 0, height > 0, (1...4).contains(channels), depth == 8 || depth == 16, let data = image.data else {
        throw ImageError(.corrupt, path: path, "decoder returned an invalid image")
    }
    let count = width * height
    let maxValue = depth == 8 ? 255 : 65535
    let scale = Float(maxValue)
    let hasAlpha = channels == 2 || channels == 4
    let colours = hasAlpha ? channels - 1 : channels
    let premultiplied = image.premultiplied != 0
    var out = [Float](repeating: 0, count: count * 3)
    out.withUnsafeMutableBufferPointer { dst in
        let raw = UnsafeRawPointer(data)
        for p in 0..<count {
            @inline(__always) func sample(_ c: Int) -> Int {
                let i = p * channels + c
                return depth == 8
                    ? Int(raw.load(fromByteOffset: i, as: UInt8.self))
                    : Int(raw.load(fromByteOffset: i * 2, as: UInt16.self))
            }
            let alpha = hasAlpha ? sample(channels - 1) : maxValue
            for c in 0..<3 {
                var v = sample(colours == 1 ? 0 : c)
                if alpha != maxValue {
                    if premultiplied {
                        v = min(v + (maxValue - alpha), maxValue)
                    } else {
                        let numerator = v * alpha + maxValue * (maxValue - alpha)
                        v = (2 * numerator + maxValue) / (2 * maxValue)
                    }
                }
                dst[p * 3 + c] = Float(v) / scale
            }
        }
    }
    return RGBImage(width: width, height: height, pixels: out, bitDepth: depth)
}

/// The Orientation (0x0112) of IFD0 in a TIFF-structured EXIF payload, or nil when absent or invalid.
func exifOrientation(_ exif: [UInt8]) -> Int? {
    guard exif.count >= 8 else { return nil }
    let little: Bool
    if exif[0] == 0x49, exif[1] == 0x49 { little = true } else if exif[0] == 0x4D, exif[1] == 0x4D { little = false } else { return nil }
    func u16(_ at: Int) -> Int? {
        guard at >= 0, at + 2 <= exif.count else { return nil }
        return little ? Int(exif[at]) | Int(exif[at + 1]) << 8 : Int(exif[at]) << 8 | Int(exif[at + 1])
    }
    func u32(_ at: Int) -> Int? {
        guard let a = u16(at), let b = u16(at + 2) else { return nil }
        return little ? a | b << 16 : a << 16 | b
    }
    guard u16(2) == 42, let ifd = u32(4), let entries = u16(ifd) else { return nil }
    for i in 0..<entries {
        let entry = ifd + 2 + i * 12
        guard let tag = u16(entry), let type = u16(entry + 2) else { return nil }
        if tag == 0x0112 {
            guard type == 3, let value = u16(entry + 8), (1...8).contains(value) else { return nil }
            return value
        }
    }
    return nil
}

private func decodeText(_ pointer: UnsafeMutablePointer<CChar>) -> String {
    let bytes = UnsafeRawBufferPointer(start: pointer, count: strlen(pointer))
    if let utf8 = String(validatingCString: pointer) { return utf8 }
    return String(String.UnicodeScalarView(bytes.map { Unicode.Scalar($0) }))
}

// MARK: - Files

/// The first 16 bytes of a regular, non-empty, readable file.
private func readHead(_ path: String) throws -> [UInt8] {
    guard !path.isEmpty else { throw ImageError(.notFound, path: path, "the file path is empty") }
    var info = stat()
    guard stat(path, &info) == 0 else {
        let code = errno
        if code == ENOENT || code == ENOTDIR { throw ImageError(.notFound, path: path, "no such file") }
        throw ImageError(.unreadable, path: path, "cannot open: \(String(cString: strerror(code)))")
    }
    if (info.st_mode & S_IFMT) == S_IFDIR { throw ImageError(.notARegularFile, path: path, "is a directory, not an image file") }
    guard (info.st_mode & S_IFMT) == S_IFREG else { throw ImageError(.notARegularFile, path: path, "not a regular file") }
    guard info.st_size > 0 else { throw ImageError(.empty, path: path, "file is empty") }
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw ImageError(.unreadable, path: path, "cannot open: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var head = [UInt8](repeating: 0, count: 16)
    let n = head.withUnsafeMutableBytes { read(fd, $0.baseAddress, 16) }
    guard n >= 0 else { throw ImageError(.unreadable, path: path, "cannot read: \(String(cString: strerror(errno)))") }
    return Array(head.prefix(n))
}

/// A name for common image formats pivot does not read.
private func otherFormatName(_ head: [UInt8]) -> String? {
    func at(_ offset: Int, _ text: String) -> Bool {
        let bytes = Array(text.utf8)
        return head.count >= offset + bytes.count && Array(head[offset..<offset + bytes.count]) == bytes
    }
    if at(0, "GIF8") { return "GIF" }
    if at(0, "BM") { return "BMP" }
    if head.starts(with: [0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50]) || head.starts(with: [0xFF, 0x4F, 0xFF, 0x51]) { return "JPEG 2000" }
    if at(0, "8BPS") { return "Photoshop PSD" }
    if at(0, "%PDF") { return "PDF" }
    if head.starts(with: [0xFF, 0x0A]) || at(4, "JXL ") { return "JPEG XL" }
    if at(0, "qoif") { return "QOI" }
    if head.starts(with: [0x76, 0x2F, 0x31, 0x01]) { return "OpenEXR" }
    return nil
}
