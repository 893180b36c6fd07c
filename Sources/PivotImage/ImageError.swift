import PivotIO
/// An error reading, writing or preprocessing an image.
///
/// `description` is one line that names the file (when one is involved) and says what is wrong, such as
/// `photo.jpg: corrupt JPEG: truncated file (premature end of JPEG data)`. Control characters in paths and
/// reasons are escaped, so the description never spans lines.
public struct ImageError: Error, CustomStringConvertible, Equatable, Sendable {
    /// What kind of failure this is.
    public enum Kind: String, Sendable, Equatable {
        /// The path does not exist.
        case notFound
        /// The path names a directory or another non-regular file.
        case notARegularFile
        /// The file is empty.
        case empty
        /// The file could not be opened or read (permissions, I/O error).
        case unreadable
        /// The content is not PNG, JPEG, TIFF, WebP or HEIF (by its leading bytes), or the extension of a path to write
        /// is not one of .png .jpg .jpeg .tif .tiff.
        case unknownFormat
        /// A valid file of a kind pivot does not decode (12-bit JPEG, floating-point TIFF, ...).
        case unsupported
        /// Malformed or truncated data.
        case corrupt
        /// The image is larger than the limits (`ImageLimits`).
        case tooLarge
        /// An invalid argument (crop box, size, text chunk, quality, ...).
        case invalidArgument
        /// The destination of a write is one of the protected input files.
        case protectedInput
        /// Creating, writing, syncing or renaming the output failed; no partial file was left behind.
        case writeFailed
        /// Memory for the image could not be allocated.
        case outOfMemory
    }

    public let kind: Kind
    /// The file involved, as given; nil for errors about arguments alone.
    public let path: String?
    /// What is wrong, without the path.
    public let reason: String

    public init(_ kind: Kind, path: String?, _ reason: String) {
        self.kind = kind
        self.path = path
        self.reason = reason
    }

    public var description: String {
        guard let path else { return "image: " + escapedForOneLine(reason) }
        return escapedForOneLine(path) + ": " + escapedForOneLine(reason)
    }
}
