import CPivotDNNL
import Foundation
import Synchronization

/// A dense, contiguous, row-major fp32 tensor.
///
/// Storage is reference-counted and shared between copies of a `Tensor` value; kernels write only into
/// tensors they allocated themselves (or into an explicit `out:` argument), so sharing is safe.
/// Shapes follow PyTorch's layout (`[N, C, H, W]` for images, `[B, T, D]` for token sequences).
public struct Tensor: @unchecked Sendable {
    /// The dimensions, outermost first.
    public let shape: [Int]
    /// Owner of the memory.
    public let storage: TensorStorage

    /// Number of elements.
    @inlinable public var count: Int { storage.count }
    /// Pointer to the first element (mutable: callers must own the tensor they write). Valid only while the
    /// storage is alive: a tensor not used after its pointer is taken needs `withExtendedLifetime`.
    @inlinable public var data: UnsafeMutablePointer<Float> { storage.pointer }
    /// Number of dimensions.
    @inlinable public var rank: Int { shape.count }

    /// A tensor of zeros with the given shape.
    public init(zeros shape: [Int]) {
        self.shape = shape
        self.storage = TensorStorage(count: Tensor.elementCount(shape), zeroed: true)
    }

    /// An uninitialised tensor, for kernels that overwrite every element.
    public init(uninitialized shape: [Int]) {
        self.shape = shape
        self.storage = TensorStorage(count: Tensor.elementCount(shape), zeroed: false)
    }

    /// A tensor holding a copy of `values` (which must have exactly `shape.product` elements).
    public init(shape: [Int], values: [Float]) {
        precondition(values.count == Tensor.elementCount(shape), "Tensor: \(values.count) values for shape \(shape)")
        self.init(uninitialized: shape)
        values.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { data.update(from: base, count: values.count) }
        }
    }

    /// A tensor over existing storage (used by reshape and by loaders).
    public init(shape: [Int], storage: TensorStorage) {
        precondition(storage.count == Tensor.elementCount(shape), "Tensor: storage of \(storage.count) for shape \(shape)")
        self.shape = shape
        self.storage = storage
    }

    /// The same elements seen with another shape of the same element count.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, storage: storage)
    }

    /// Size of dimension `i`; negative indices count from the end.
    @inlinable public func dim(_ i: Int) -> Int { i < 0 ? shape[shape.count + i] : shape[i] }

    /// A copy of the elements as an array.
    public var scalars: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }

    /// A deep copy with its own storage.
    public func copy() -> Tensor {
        let t = Tensor(uninitialized: shape)
        t.data.update(from: data, count: count)
        return t
    }

    /// The product of the dimensions.
    public static func elementCount(_ shape: [Int]) -> Int {
        shape.reduce(1) { $0 * $1 }
    }
}

/// A derived form of a storage's values (`TensorStorage.derived`) that can write them back as fp32, rounded
/// as the form holds them, so `TensorStorage.releaseFP32` may keep it instead of the fp32 values.
public protocol FP32Restoring: AnyObject {
    /// Writes the `count` values this form was made from into `values`.
    func restore(into values: UnsafeMutablePointer<Float>, count: Int)
}

/// Heap memory of a tensor, 64-byte aligned for vector loads. Large buffers come from `BufferPool`, which
/// recycles freed buffers of the same size: a network pass allocates the same shapes every step, and
/// fresh pages from the kernel (page faults, zeroing) would otherwise cost more than the arithmetic.
public final class TensorStorage: @unchecked Sendable {
    @usableFromInline let base: UnsafeMutablePointer<Float>
    public let count: Int
    /// A process-unique identity (never reused, unlike addresses), used by `Tape` to key gradients.
    public let id: UInt64 = TensorStorage.nextID()
    /// Whether the fp32 values' pages were handed back to the system (`releaseFP32`).
    @usableFromInline let released = Atomic<Bool>(false)

    public init(count: Int, zeroed: Bool) {
        self.count = count
        base = BufferPool.shared.take(bytes: max(count, 1) * 4).bindMemory(to: Float.self, capacity: max(count, 1))
        if zeroed { base.initialize(repeating: 0, count: count) }
    }

    deinit { BufferPool.shared.give(UnsafeMutableRawPointer(base), bytes: max(count, 1) * 4) }

    /// The first element. A storage whose fp32 values were released (`releaseFP32`) gets them back from its
    /// bf16 copy on the first access: the values are then the bf16-rounded ones.
    @inlinable public var pointer: UnsafeMutablePointer<Float> {
        if fp32Released { restoreFP32() }
        return base
    }

    /// Whether the fp32 values are released now (`releaseFP32`) and not yet brought back.
    @inlinable public var fp32Released: Bool { released.load(ordering: .acquiring) }

    /// Storages whose fp32 values were brought back from bf16 after `releaseFP32` (for tests and reports).
    public static var restoredCount: Int { restored.load(ordering: .relaxed) }
    private static let restored = Atomic<Int>(0)

    /// Hands the pages of this storage's fp32 values back to the operating system, keeping the bf16 form
    /// named `key`: by default its bf16 copy (`derived("bf16")`, made here if needed), so a weight that only
    /// bf16 products read costs 2 bytes a value instead of 6; or another form that can give the values back
    /// (`make` builds it if it is not there yet; e.g. a 3×3 kernel's bf16 Winograd transform, the only form
    /// its bf16 convolutions read), in which case the bf16 copy, if any, is dropped. Irreversible in
    /// precision: a later fp32 read (`pointer`) gets bf16-rounded values back, not the originals. Only
    /// storages of at least `minimumBytes` (default: pooled buffers, `BufferPool.largeBytes`) take part, and
    /// only their whole pages are released; returns the bytes released (0 for smaller or already released
    /// storages).
    @discardableResult
    public func releaseFP32(
        minimumBytes: Int = BufferPool.shared.largeBytes, keeping key: String = "bf16",
        _ make: (() -> any FP32Restoring)? = nil
    ) -> Int {
        let bytes = count * 4
        guard bytes >= max(minimumBytes, 1) else { return 0 }
        TensorStorage.lockDerived()
        defer { TensorStorage.unlockDerived() }
        guard !released.load(ordering: .acquiring) else { return 0 }
        if !(derivedForms[key] is any FP32Restoring) {
            if let make {
                derivedForms[key] = make()
            } else {
                precondition(key == "bf16", "releaseFP32: no form named \(key) to restore from")
                derivedForms[key] = BF16Buffer(base, count: count)
            }
        }
        if key != "bf16" { derivedForms["bf16"] = nil }
        restoreKey = key
        return releasePages()
    }

    /// Hands the fp32 pages back, the restore form being in place (with the derived lock held).
    private func releasePages() -> Int {
        let bytes = count * 4
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (Int(bitPattern: base) + page - 1) / page * page
        let end = (Int(bitPattern: base) + bytes) / page * page
        guard end > start, let p = UnsafeMutableRawPointer(bitPattern: start) else { return 0 }
        guard madvise(p, end - start, 4 /* MADV_DONTNEED */) == 0 else { return 0 }
        released.store(true, ordering: .releasing)
        return end - start
    }

    /// The derived form `releaseFP32` kept to restore from.
    private var restoreKey = "bf16"

    /// Writes the kept bf16 form's values back as fp32 after `releaseFP32`.
    @usableFromInline func restoreFP32(counting: Bool = true) {
        TensorStorage.lockDerived()
        defer { TensorStorage.unlockDerived() }
        guard released.load(ordering: .acquiring), let form = derivedForms[restoreKey] as? any FP32Restoring
        else { return }
        form.restore(into: base, count: count)
        released.store(false, ordering: .releasing)
        if counting { TensorStorage.restored.add(1, ordering: .relaxed) }
    }

    /// Forms derived from this storage's values, computed once (bf16 copies, Winograd transforms of
    /// weights). Only weights use it: they never change after loading.
    private var derivedForms: [String: AnyObject] = [:]

    /// The derived form named `key`, made by `make` on first use and kept while the storage lives.
    public func derived<T: AnyObject>(_ key: String, _ make: () -> T) -> T {
        TensorStorage.lockDerived()
        defer { TensorStorage.unlockDerived() }
        if let v = derivedForms[key] as? T { return v }
        // A released storage gets its values back here, on the calling thread, so `make`'s workers never
        // restore it themselves (they would wait for this lock); it is released again afterwards.
        let wasReleased = released.load(ordering: .acquiring)
        if wasReleased { restoreFP32(counting: false) }
        let v = make()
        derivedForms[key] = v
        if wasReleased { _ = releasePages() }  // keeping every form, the one just made included
        return v
    }

    nonisolated(unsafe) private static var derivedMutex: pthread_mutex_t = {
        var m = pthread_mutex_t()
        var attr = pthread_mutexattr_t()
        pthread_mutexattr_init(&attr)
        pthread_mutexattr_settype(&attr, Int32(PTHREAD_MUTEX_RECURSIVE))
        pthread_mutex_init(&m, &attr)
        return m
    }()
    private static func lockDerived() { pthread_mutex_lock(&derivedMutex) }
    private static func unlockDerived() { pthread_mutex_unlock(&derivedMutex) }

    nonisolated(unsafe) private static var counter: UInt64 = 0
    nonisolated(unsafe) private static var counterLock = pthread_mutex_t()
    private static let counterReady: Bool = {
        pthread_mutex_init(&counterLock, nil)
        return true
    }()

    private static func nextID() -> UInt64 {
        _ = counterReady
        pthread_mutex_lock(&counterLock)
        defer { pthread_mutex_unlock(&counterLock) }
        counter += 1
        return counter
    }
}
