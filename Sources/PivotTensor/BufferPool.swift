import Foundation

/// Recycles large tensor buffers by size. Buffers of at least `largeBytes` are 2 MiB-aligned and marked
/// for transparent huge pages; freed ones are kept (up to `capacityBytes` in all) for the next request of
/// the same rounded size. Small buffers go straight to the system allocator.
public final class BufferPool: @unchecked Sendable {
    /// The process-wide pool.
    public static let shared = BufferPool()

    /// Buffers at least this large are pooled.
    public let largeBytes = 1 << 20
    /// Most bytes kept in the pool.
    public var capacityBytes = 6 << 30

    private var free: [Int: [UnsafeMutableRawPointer]] = [:]
    private var pooledBytes = 0
    private var lock = pthread_mutex_t()

    init() { pthread_mutex_init(&lock, nil) }

    /// Size class: large sizes round up to 64 KiB so near-equal shapes share buffers.
    @inline(__always) private func rounded(_ bytes: Int) -> Int { (bytes + 65535) & ~65535 }

    /// A buffer of at least `bytes` bytes, 64-byte aligned (2 MiB for large ones).
    public func take(bytes: Int) -> UnsafeMutableRawPointer {
        guard bytes >= largeBytes else {
            return UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        }
        let size = rounded(bytes)
        pthread_mutex_lock(&lock)
        if let p = free[size]?.popLast() {
            pooledBytes -= size
            pthread_mutex_unlock(&lock)
            return p
        }
        pthread_mutex_unlock(&lock)
        var p: UnsafeMutableRawPointer?
        guard posix_memalign(&p, 2 << 20, size) == 0, let p else {
            return UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)  // traps only on OOM
        }
        madvise(p, size, 14 /* MADV_HUGEPAGE */)
        return p
    }

    /// Returns a buffer obtained from `take(bytes:)` with the same `bytes`.
    public func give(_ p: UnsafeMutableRawPointer, bytes: Int) {
        guard bytes >= largeBytes else { p.deallocate(); return }
        let size = rounded(bytes)
        pthread_mutex_lock(&lock)
        if pooledBytes + size <= capacityBytes {
            free[size, default: []].append(p)
            pooledBytes += size
            pthread_mutex_unlock(&lock)
            return
        }
        pthread_mutex_unlock(&lock)
        Foundation.free(p)
    }

    /// Releases every pooled buffer to the system.
    public func drain() {
        pthread_mutex_lock(&lock)
        let all = free.values.flatMap { $0 }
        free = [:]
        pooledBytes = 0
        pthread_mutex_unlock(&lock)
        for p in all { Foundation.free(p) }
    }
}
