/// A minimal read-only ZIP reader over bytes already in memory (a mapped `torch.save` archive).
///
/// It reads the End Of Central Directory record (and, for archives past 4 GB or 65535 entries, the ZIP64
/// locator, record and extra fields), lists the central directory, and finds where each entry's bytes
/// start from its local header. Only STORED entries (method 0, which is what `torch.save` writes) can
/// be read; any other method is `TorchFileError.compressedEntry`. Every offset and size is checked
/// against the buffer with overflow-safe arithmetic, so no input makes it read outside the buffer.
struct ZipArchive {
    /// One central directory entry.
    struct Entry {
        /// The entry name as stored (decoded as UTF-8, invalid sequences replaced).
        let name: String
        /// General purpose flags (bit 0: encrypted).
        let flags: UInt16
        /// Compression method (0: stored).
        let method: UInt16
        /// Size of the stored bytes.
        let compressedSize: UInt64
        /// Size of the original bytes.
        let uncompressedSize: UInt64
        /// Offset of the entry's local header from the start of the archive.
        let localHeaderOffset: UInt64
    }

    /// The entries, in central directory order.
    let entries: [Entry]
    private let bytes: UnsafeRawBufferPointer
    private let file: String
    private let index: [String: Int]

    /// Signatures of the records read.
    private enum Signature {
        static let localHeader: UInt32 = 0x0403_4b50
        static let centralHeader: UInt32 = 0x0201_4b50
        static let endOfCentralDirectory: UInt32 = 0x0605_4b50
        static let zip64Locator: UInt32 = 0x0706_4b50
        static let zip64End: UInt32 = 0x0606_4b50
    }

    /// The most entries accepted (a torch archive has a few per tensor storage).
    static let maxEntries = 1 << 22

    /// Whether `bytes` starts with a local file header, as every archive `torch.save` writes does.
    static func looksLikeZip(_ bytes: UnsafeRawBufferPointer) -> Bool {
        read(UInt32.self, bytes, at: 0) == Signature.localHeader
    }

    /// Reads the central directory of the archive in `bytes`; `file` is used in error messages.
    init(bytes: UnsafeRawBufferPointer, file: String) throws {
        self.bytes = bytes
        self.file = file
        let end = try Self.findEndOfCentralDirectory(bytes, file: file)
        var disk = UInt64(Self.read(UInt16.self, bytes, at: end + 4) ?? 0)
        var directoryDisk = UInt64(Self.read(UInt16.self, bytes, at: end + 6) ?? 0)
        var count = UInt64(Self.read(UInt16.self, bytes, at: end + 10) ?? 0)
        var directorySize = UInt64(Self.read(UInt32.self, bytes, at: end + 12) ?? 0)
        var directoryOffset = UInt64(Self.read(UInt32.self, bytes, at: end + 16) ?? 0)
        if end >= 20, Self.read(UInt32.self, bytes, at: end - 20) == Signature.zip64Locator {
            guard let recordOffset = Self.read(UInt64.self, bytes, at: end - 12),
                let record = Int(exactly: recordOffset),
                Self.read(UInt32.self, bytes, at: record) == Signature.zip64End,
                let recordDisk = Self.read(UInt32.self, bytes, at: record + 16),
                let recordDirectoryDisk = Self.read(UInt32.self, bytes, at: record + 20),
                let total = Self.read(UInt64.self, bytes, at: record + 32),
                let size = Self.read(UInt64.self, bytes, at: record + 40),
                let offset = Self.read(UInt64.self, bytes, at: record + 48)
            else { throw TorchFileError.malformed(file: file, "zip: the ZIP64 end of central directory record is missing or cut short") }
            (disk, directoryDisk, count, directorySize, directoryOffset) =
                (UInt64(recordDisk), UInt64(recordDirectoryDisk), total, size, offset)
        }
        guard disk == 0, directoryDisk == 0 else {
            throw TorchFileError.malformed(file: file, "zip: multi-disk archives are not supported")
        }
        let (directoryEnd, overflow) = directoryOffset.addingReportingOverflow(directorySize)
        guard !overflow, directoryEnd <= UInt64(bytes.count) else {
            throw TorchFileError.malformed(
                file: file, "zip: the central directory (offset \(directoryOffset), \(directorySize) bytes) lies outside the \(bytes.count)-byte file"
            )
        }
        guard count <= directorySize / 46, count <= UInt64(Self.maxEntries) else {
            throw TorchFileError.malformed(file: file, "zip: \(count) entries cannot fit a \(directorySize)-byte central directory")
        }
        var entries: [Entry] = []
        var index: [String: Int] = [:]
        entries.reserveCapacity(Int(count))
        var position = Int(directoryOffset)
        let limit = Int(directoryEnd)
        for _ in 0..<Int(count) {
            let entry = try Self.centralEntry(bytes, at: &position, limit: limit, file: file)
            guard index[entry.name] == nil else {
                throw TorchFileError.malformed(file: file, "zip: the entry '\(entry.name)' appears twice")
            }
            index[entry.name] = entries.count
            entries.append(entry)
        }
        self.entries = entries
        self.index = index
    }

    /// The entry called `name`, if any.
    func entry(named name: String) -> Entry? {
        index[name].map { entries[$0] }
    }

    /// The stored bytes of `entry` as a range of the archive buffer.
    ///
    /// Throws `compressedEntry` for anything but a STORED entry and `malformed` for an encrypted entry, a
    /// bad local header, or data running past the end of the file.
    func dataRange(of entry: Entry) throws -> Range<Int> {
        guard entry.method == 0 else { throw TorchFileError.compressedEntry(file: file, entry.name) }
        guard entry.flags & 1 == 0 else {
            throw TorchFileError.malformed(file: file, "zip: the entry '\(entry.name)' is encrypted")
        }
        guard entry.compressedSize == entry.uncompressedSize else {
            throw TorchFileError.malformed(file: file, "zip: the stored entry '\(entry.name)' has different stored and original sizes")
        }
        guard let header = Int(exactly: entry.localHeaderOffset),
            Self.read(UInt32.self, bytes, at: header) == Signature.localHeader,
            let nameLength = Self.read(UInt16.self, bytes, at: header + 26),
            let extraLength = Self.read(UInt16.self, bytes, at: header + 28)
        else { throw TorchFileError.malformed(file: file, "zip: the local header of '\(entry.name)' is missing or cut short") }
        let start = header + 30 + Int(nameLength) + Int(extraLength)  // header < count, so this cannot overflow
        guard let size = Int(exactly: entry.compressedSize), start <= bytes.count, size <= bytes.count - start else {
            throw TorchFileError.malformed(
                file: file, "zip: the data of '\(entry.name)' (\(entry.compressedSize) bytes) runs past the end of the file; truncated?")
        }
        return start..<(start + size)
    }

    /// The offset of the End Of Central Directory record, searched backwards over the last 64 KiB.
    private static func findEndOfCentralDirectory(_ bytes: UnsafeRawBufferPointer, file: String) throws -> Int {
        guard bytes.count >= 22 else {
            throw TorchFileError.malformed(file: file, "zip: the file is too short for an end of central directory record; truncated?")
        }
        let lowest = max(0, bytes.count - 22 - 0xFFFF)
        var offset = bytes.count - 22
        while offset >= lowest {
            if read(UInt32.self, bytes, at: offset) == Signature.endOfCentralDirectory,
                let commentLength = read(UInt16.self, bytes, at: offset + 20),
                offset + 22 + Int(commentLength) <= bytes.count
            {
                return offset
            }
            offset -= 1
        }
        throw TorchFileError.malformed(file: file, "zip: no end of central directory record; truncated?")
    }

    /// Reads the central directory entry at `position` (advancing it), which must end by `limit`.
    private static func centralEntry(
        _ bytes: UnsafeRawBufferPointer, at position: inout Int, limit: Int,
        file: String
    ) throws -> Entry {
        let start = position
        guard start <= limit - 46, read(UInt32.self, bytes, at: start) == Signature.centralHeader,
            let flags = read(UInt16.self, bytes, at: start + 8),
            let method = read(UInt16.self, bytes, at: start + 10),
            let compressed32 = read(UInt32.self, bytes, at: start + 20),
            let uncompressed32 = read(UInt32.self, bytes, at: start + 24),
            let nameLength = read(UInt16.self, bytes, at: start + 28).map(Int.init),
            let extraLength = read(UInt16.self, bytes, at: start + 30).map(Int.init),
            let commentLength = read(UInt16.self, bytes, at: start + 32).map(Int.init),
            let offset32 = read(UInt32.self, bytes, at: start + 42)
        else { throw TorchFileError.malformed(file: file, "zip: bad central directory entry at byte \(start)") }
        let nameStart = start + 46
        let extraStart = nameStart + nameLength
        let next = extraStart + extraLength + commentLength
        guard next <= limit else {
            throw TorchFileError.malformed(file: file, "zip: central directory entry at byte \(start) runs past the directory")
        }
        let name = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[nameStart..<extraStart]), as: UTF8.self)
        var uncompressed = UInt64(uncompressed32)
        var compressed = UInt64(compressed32)
        var offset = UInt64(offset32)
        if uncompressed32 == .max || compressed32 == .max || offset32 == .max {
            // The ZIP64 extra field holds, in this order, the 64-bit values of the fields set to 0xFFFFFFFF.
            guard var field = zip64Field(bytes, from: extraStart, to: extraStart + extraLength) else {
                throw TorchFileError.malformed(file: file, "zip: the entry '\(name)' lacks its ZIP64 extra field")
            }
            func next64() throws -> UInt64 {
                guard field.count >= 8, let value = read(UInt64.self, bytes, at: field.lowerBound) else {
                    throw TorchFileError.malformed(file: file, "zip: the ZIP64 extra field of '\(name)' is cut short")
                }
                field = (field.lowerBound + 8)..<field.upperBound
                return value
            }
            if uncompressed32 == .max { uncompressed = try next64() }
            if compressed32 == .max { compressed = try next64() }
            if offset32 == .max { offset = try next64() }
        }
        position = next
        return Entry(
            name: name, flags: flags, method: method, compressedSize: compressed,
            uncompressedSize: uncompressed, localHeaderOffset: offset)
    }

    /// The data range of the ZIP64 extra field (id 1) among the extra fields in `start..<end`.
    private static func zip64Field(_ bytes: UnsafeRawBufferPointer, from start: Int, to end: Int) -> Range<Int>? {
        var position = start
        while position + 4 <= end {
            guard let id = read(UInt16.self, bytes, at: position),
                let size = read(UInt16.self, bytes, at: position + 2)
            else { return nil }
            let dataEnd = position + 4 + Int(size)
            guard dataEnd <= end else { return nil }
            if id == 1 { return (position + 4)..<dataEnd }
            position = dataEnd
        }
        return nil
    }

    /// The little-endian integer at `offset`, or nil when it does not lie wholly inside `bytes`.
    static func read<T: FixedWidthInteger>(_ type: T.Type, _ bytes: UnsafeRawBufferPointer, at offset: Int) -> T? {
        let size = MemoryLayout<T>.size
        guard offset >= 0, bytes.count >= size, offset <= bytes.count - size, let base = bytes.baseAddress else { return nil }
        return T(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}
