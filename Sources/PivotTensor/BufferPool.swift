import Foundation

/// Recycles large tensor buffers by size. Buffers of at least `largeBytes` are 2 MiB-aligned and marked
/// for transparent huge pages; freed ones are kept (up to `capacityBytes` in all, least recently returned
/// evicted first) for the next request of the same rounded size. Fresh pages cost a fault and zeroing
/// each, which measured here at up to half of a UNet pass; small buffers go to the system allocator.
public final class BufferPool: @unchecked Sendable {
    /// The process-wide pool.
    public static let shared = BufferPool()

    /// Buffers at least this large are pooled.
    public let largeBytes = 1 << 20
    /// Most bytes kept in the pool (`PIVOT_POOL_MB` overrides the default of 2 GiB: enough for a UNet
    /// pass to recycle its temporaries, small enough that the backward pass peaks below PyTorch's).
    public var capacityBytes: Int = {
        if let v = ProcessInfo.processInfo.environment["PIVOT_POOL_MB"], let mb = Int(v), mb >= 0 { return mb << 20 }
        return 2 << 30
    }()

    /// Pooled buffers, oldest first; `take` reuses the newest of a size, eviction frees the oldest.
    private var entries: [(size: Int, pointer: UnsafeMutableRawPointer)] = []
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
        if let i = entries.lastIndex(where: { $0.size == size }) {
            let p = entries.remove(at: i).pointer
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

    /// Returns a buffer obtained from `take(bytes:)` with the same `bytes`. When the pool grows past
    /// `capacityBytes`, the buffers returned longest ago are freed.
    public func give(_ p: UnsafeMutableRawPointer, bytes: Int) {
        guard bytes >= largeBytes else {
            p.deallocate()
            return
        }
        let size = rounded(bytes)
        var evicted: [UnsafeMutableRawPointer] = []
        pthread_mutex_lock(&lock)
        entries.append((size, p))
        pooledBytes += size
        var drop = 0
        while pooledBytes > capacityBytes && drop < entries.count {
            pooledBytes -= entries[drop].size
            evicted.append(entries[drop].pointer)
            drop += 1
        }
        if drop > 0 { entries.removeFirst(drop) }
        pthread_mutex_unlock(&lock)
        for e in evicted { Foundation.free(e) }
    }
}
