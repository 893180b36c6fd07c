import Foundation

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

/// Heap memory of a tensor, 64-byte aligned for vector loads. Large buffers come from `BufferPool`, which
/// recycles freed buffers of the same size: a network pass allocates the same shapes every step, and
/// fresh pages from the kernel (page faults, zeroing) would otherwise cost more than the arithmetic.
public final class TensorStorage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int
    /// A process-unique identity (never reused, unlike addresses), used by `Tape` to key gradients.
    public let id: UInt64 = TensorStorage.nextID()

    public init(count: Int, zeroed: Bool) {
        self.count = count
        pointer = BufferPool.shared.take(bytes: max(count, 1) * 4).bindMemory(to: Float.self, capacity: max(count, 1))
        if zeroed { pointer.initialize(repeating: 0, count: count) }
    }

    deinit { BufferPool.shared.give(UnsafeMutableRawPointer(pointer), bytes: max(count, 1) * 4) }

    /// Forms derived from this storage's values, computed once (bf16 copies, Winograd transforms of
    /// weights). Only weights use it: they never change after loading.
    private var derivedForms: [String: AnyObject] = [:]

    /// The derived form named `key`, made by `make` on first use and kept while the storage lives.
    public func derived<T: AnyObject>(_ key: String, _ make: () -> T) -> T {
        TensorStorage.lockDerived()
        defer { TensorStorage.unlockDerived() }
        if let v = derivedForms[key] as? T { return v }
        let v = make()
        derivedForms[key] = v
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
