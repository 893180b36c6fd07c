#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Foundation

/// An incremental SHA-256 hasher (FIPS 180-4).
///
/// Feed bytes with any of the `update` methods, then call `finalize()` for the 32-byte digest:
///
///     var hasher = SHA256()
///     hasher.update(Array("abc".utf8))
///     let digest = hasher.finalize()            // ba7816bf...f20015ad
///
/// For one-shot use there is `SHA256.hash(_:)`, and `SHA256.hexDigest(ofFile:)` streams a whole file.
/// Whole 64-byte blocks are compressed straight from the caller's memory; only a partial block is copied
/// into a fixed-size inline buffer, so hashing allocates nothing on the heap.
public struct SHA256: Sendable {
    /// The eight working hash words H0...H7.
    private var h0: UInt32 = 0x6a09_e667, h1: UInt32 = 0xbb67_ae85, h2: UInt32 = 0x3c6e_f372, h3: UInt32 = 0xa54f_f53a
    private var h4: UInt32 = 0x510e_527f, h5: UInt32 = 0x9b05_688c, h6: UInt32 = 0x1f83_d9ab, h7: UInt32 = 0x5be0_cd19
    /// A partial block waiting for more input; only the first `pending` bytes are meaningful.
    private var block: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    /// How many bytes of `block` are filled (0..<64).
    private var pending = 0
    /// The total number of bytes fed so far (the message length, modulo 2^64).
    private var length: UInt64 = 0

    /// The size of a SHA-256 digest in bytes.
    public static let digestByteCount = 32

    /// The size of a SHA-256 message block in bytes.
    public static let blockByteCount = 64

    /// A hasher in the initial state, ready for `update`.
    public init() {}

    /// Feeds `bytes` to the hash.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard var source = bytes.baseAddress, bytes.count > 0 else { return }
        var remaining = bytes.count
        length &+= UInt64(truncatingIfNeeded: remaining)

        if pending > 0 {
            let take = min(64 - pending, remaining)
            let offset = pending
            withUnsafeMutableBytes(of: &block) { buffer in
                (buffer.baseAddress! + offset).copyMemory(from: source, byteCount: take)
            }
            pending += take
            source += take
            remaining -= take
            guard pending == 64 else { return }
            var copy = block
            withUnsafeBytes(of: &copy) { buffer in compress(buffer.baseAddress!, blocks: 1) }
            pending = 0
        }

        let whole = remaining / 64
        if whole > 0 {
            compress(source, blocks: whole)
            source += whole * 64
            remaining -= whole * 64
        }

        if remaining > 0 {
            withUnsafeMutableBytes(of: &block) { buffer in
                buffer.baseAddress!.copyMemory(from: source, byteCount: remaining)
            }
            pending = remaining
        }
    }

    /// Feeds the bytes of an array to the hash.
    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// Feeds the bytes of any `DataProtocol` value (`Data`, `ArraySlice<UInt8>`, `DispatchData`, ...) to the hash,
    /// region by region.
    public mutating func update<D: DataProtocol>(_ data: D) {
        for region in data.regions {
            region.withUnsafeBytes { update($0) }
        }
    }

    /// Pads the message, returns its 32-byte digest and resets the hasher to the initial state.
    public mutating func finalize() -> [UInt8] {
        let bitLength = length &* 8
        // 0x80, then zeros up to 56 mod 64, then the 64-bit big-endian bit length.
        var tail:
            (
                UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64
            ) =
                (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        let padLength = pending < 56 ? 56 - pending : 120 - pending
        withUnsafeMutableBytes(of: &tail) { buffer in
            buffer[0] = 0x80
            buffer.storeBytes(of: bitLength.bigEndian, toByteOffset: padLength, as: UInt64.self)
            update(UnsafeRawBufferPointer(rebasing: buffer[0..<padLength + 8]))
        }
        precondition(pending == 0, "SHA256: padding did not end on a block boundary")

        var digest = [UInt8](repeating: 0, count: 32)
        digest.withUnsafeMutableBytes { out in
            for (i, word) in [h0, h1, h2, h3, h4, h5, h6, h7].enumerated() {
                out.storeBytes(of: word.bigEndian, toByteOffset: 4 * i, as: UInt32.self)
            }
        }
        self = SHA256()
        return digest
    }

    /// The 32-byte SHA-256 digest of `bytes`.
    public static func hash(_ bytes: [UInt8]) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(bytes)
        return hasher.finalize()
    }

    /// `digest` (or any bytes) as lower-case hexadecimal, two characters per byte.
    public static func hex(_ digest: [UInt8]) -> String {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(digest.count * 2)
        for byte in digest {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// The lower-case hex SHA-256 digest of the file at `path`, read with `read(2)` in 1 MiB chunks.
    ///
    /// Throws `SafeTensorsError.cannotOpen(file:reason:)` when the file cannot be opened or read (missing,
    /// permission denied, I/O error, empty path) and `SafeTensorsError.notARegularFile(file:)` for a directory,
    /// FIFO or device; each error's `description` is one line naming the file.
    public static func hexDigest(ofFile path: String) throws -> String {
        guard !path.isEmpty else { throw SafeTensorsError.cannotOpen(file: path, reason: "the file path is empty") }
        // O_NONBLOCK keeps a FIFO at `path` from blocking the open; fstat then rejects it.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw SafeTensorsError.cannotOpen(file: path, reason: systemError()) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw SafeTensorsError.cannotOpen(file: path, reason: systemError()) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw SafeTensorsError.notARegularFile(file: path) }

        let chunkSize = 1 << 20
        let chunk = UnsafeMutableRawPointer.allocate(byteCount: chunkSize, alignment: 64)
        defer { chunk.deallocate() }
        var hasher = SHA256()
        while true {
            let count = read(fd, chunk, chunkSize)
            if count > 0 {
                hasher.update(UnsafeRawBufferPointer(start: chunk, count: count))
            } else if count == 0 {
                break
            } else if errno != EINTR {
                throw SafeTensorsError.cannotOpen(file: path, reason: "read failed: \(systemError())")
            }
        }
        return hex(hasher.finalize())
    }

    /// Runs the compression function over `blocks` consecutive 64-byte blocks starting at `source`
    /// (any alignment), updating H0...H7.
    private mutating func compress(_ source: UnsafeRawPointer, blocks: Int) {
        var s0 = h0, s1 = h1, s2 = h2, s3 = h3, s4 = h4, s5 = h5, s6 = h6, s7 = h7
        // The 64-word message schedule lives on the stack.
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 64) { schedule in
            let w = schedule.baseAddress!
            SHA256.roundConstants.withUnsafeBufferPointer { kBuffer in
                let k = kBuffer.baseAddress!
                var p = source
                for _ in 0..<blocks {
                    for t in 0..<16 {
                        w[t] = UInt32(bigEndian: p.loadUnaligned(fromByteOffset: 4 * t, as: UInt32.self))
                    }
                    for t in 16..<64 {
                        let w15 = w[t - 15], w2 = w[t - 2]
                        let sigma0 = rotr(w15, 7) ^ rotr(w15, 18) ^ (w15 >> 3)
                        let sigma1 = rotr(w2, 17) ^ rotr(w2, 19) ^ (w2 >> 10)
                        w[t] = w[t - 16] &+ sigma0 &+ w[t - 7] &+ sigma1
                    }
                    var a = s0, b = s1, c = s2, d = s3, e = s4, f = s5, g = s6, h = s7
                    // Eight rounds per pass; renaming the variables replaces the shuffle a <- t1 + t2, b <- a, ...
                    var t = 0
                    while t < 64 {
                        round(a, b, c, &d, e, f, g, &h, k[t] &+ w[t])
                        round(h, a, b, &c, d, e, f, &g, k[t + 1] &+ w[t + 1])
                        round(g, h, a, &b, c, d, e, &f, k[t + 2] &+ w[t + 2])
                        round(f, g, h, &a, b, c, d, &e, k[t + 3] &+ w[t + 3])
                        round(e, f, g, &h, a, b, c, &d, k[t + 4] &+ w[t + 4])
                        round(d, e, f, &g, h, a, b, &c, k[t + 5] &+ w[t + 5])
                        round(c, d, e, &f, g, h, a, &b, k[t + 6] &+ w[t + 6])
                        round(b, c, d, &e, f, g, h, &a, k[t + 7] &+ w[t + 7])
                        t += 8
                    }
                    s0 &+= a
                    s1 &+= b
                    s2 &+= c
                    s3 &+= d
                    s4 &+= e
                    s5 &+= f
                    s6 &+= g
                    s7 &+= h
                    p += 64
                }
            }
        }
        h0 = s0
        h1 = s1
        h2 = s2
        h3 = s3
        h4 = s4
        h5 = s5
        h6 = s6
        h7 = s7
    }

    /// The 64 round constants K0...K63: the first 32 bits of the fractional parts of the cube roots of the
    /// first 64 primes.
    private static let roundConstants: [UInt32] = [
        0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5, 0x3956_c25b, 0x59f1_11f1, 0x923f_82a4, 0xab1c_5ed5,
        0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3, 0x72be_5d74, 0x80de_b1fe, 0x9bdc_06a7, 0xc19b_f174,
        0xe49b_69c1, 0xefbe_4786, 0x0fc1_9dc6, 0x240c_a1cc, 0x2de9_2c6f, 0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da,
        0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7, 0xc6e0_0bf3, 0xd5a7_9147, 0x06ca_6351, 0x1429_2967,
        0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc, 0x5338_0d13, 0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85,
        0xa2bf_e8a1, 0xa81a_664b, 0xc24b_8b70, 0xc76c_51a3, 0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070,
        0x19a4_c116, 0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a, 0x5b9c_ca4f, 0x682e_6ff3,
        0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208, 0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7, 0xc671_78f2,
    ]
}

/// One SHA-256 round with the working variables renamed instead of shifted: `d` becomes the new `e` and
/// `h` the new `a`; `kw` is K[t] + W[t].
@inline(__always)
private func round(
    _ a: UInt32, _ b: UInt32, _ c: UInt32, _ d: inout UInt32,
    _ e: UInt32, _ f: UInt32, _ g: UInt32, _ h: inout UInt32, _ kw: UInt32
) {
    let t1 = h &+ (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) &+ ((e & f) ^ (~e & g)) &+ kw
    let t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) &+ ((a & b) ^ (a & c) ^ (b & c))
    d &+= t1
    h = t1 &+ t2
}

/// `x` rotated right by `n` bits (0 < n < 32).
@inline(__always)
private func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 {
    (x >> n) | (x << (32 &- n))
}
