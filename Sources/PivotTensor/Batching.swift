import Foundation

// Batch and elementwise helpers for the layers above (diffusion loops, pipelines, file records): every
// pointer stays inside this module, and each helper checks the shapes it is given.

/// Concatenation along dimension 0 of tensors of the same trailing shape: [a, …] + [b, …] → [a + b, …].
public func concatBatch(_ parts: Tensor...) -> Tensor { concatBatch(parts) }

/// Concatenation along dimension 0 of tensors of the same trailing shape.
public func concatBatch(_ parts: [Tensor]) -> Tensor {
    precondition(!parts.isEmpty && parts.allSatisfy { $0.rank >= 1 }, "concatBatch: no tensors, or a scalar")
    let trailing = Array(parts[0].shape.dropFirst())
    precondition(
        parts.allSatisfy { Array($0.shape.dropFirst()) == trailing },
        "concatBatch: trailing shapes differ: \(parts.map(\.shape))")
    let y = Tensor(uninitialized: [parts.reduce(0) { $0 + $1.dim(0) }] + trailing)
    var offset = 0
    for p in parts {
        (y.data + offset).update(from: p.data, count: p.count)
        offset += p.count
    }
    withExtendedLifetime(parts) {}
    return y
}

/// x [n, …] repeated `times` times along dimension 0: [times · n, …].
public func repeatBatch(_ x: Tensor, _ times: Int) -> Tensor {
    precondition(x.rank >= 1 && times >= 1, "repeatBatch: shape \(x.shape), \(times) times")
    let y = Tensor(uninitialized: [times * x.dim(0)] + Array(x.shape.dropFirst()))
    for i in 0..<times { (y.data + i * x.count).update(from: x.data, count: x.count) }
    withExtendedLifetime(x) {}
    return y
}

/// Splits [B, …] along dimension 0 into `parts` equal pieces [B / parts, …].
public func chunk(_ x: Tensor, dim0Parts parts: Int) -> [Tensor] {
    precondition(x.rank >= 1 && parts >= 1 && x.dim(0) % parts == 0, "chunk: \(x.shape) into \(parts) parts")
    let each = x.dim(0) / parts, size = x.count / parts
    return (0..<parts).map { p in
        let t = Tensor(uninitialized: [each] + Array(x.shape.dropFirst()))
        t.data.update(from: x.data + p * size, count: size)
        return t
    }
}

/// Stacks N tensors of one shape into [N, …]; a leading dimension of 1 is dropped first, so N latents
/// [1, C, h, w] become [N, C, h, w].
public func stackBatch(_ tensors: [Tensor]) -> Tensor {
    precondition(!tensors.isEmpty, "stackBatch: no tensors")
    let shape = tensors[0].shape
    precondition(tensors.allSatisfy { $0.shape == shape }, "stackBatch: shapes differ: \(Set(tensors.map(\.shape)))")
    let inner = shape.first == 1 ? Array(shape.dropFirst()) : shape
    return concatBatch(tensors.map { $0.reshaped([1] + inner) })
}

/// [N, …] → N tensors [1, …] (none for N = 0).
public func unstackBatch(_ t: Tensor) -> [Tensor] {
    precondition(t.rank >= 1, "unstackBatch: a scalar")
    let n = t.dim(0)
    guard n > 0 else { return [] }
    return chunk(t, dim0Parts: n)
}

/// Rows `range` of dimension 0, as a new tensor [range.count, …].
public func batchSlice(_ x: Tensor, _ range: Range<Int>) -> Tensor {
    precondition(x.rank >= 1 && range.lowerBound >= 0 && range.upperBound <= x.dim(0), "batchSlice: \(range) of \(x.shape)")
    let each = x.count / max(x.dim(0), 1)
    let y = Tensor(uninitialized: [range.count] + Array(x.shape.dropFirst()))
    y.data.update(from: x.data + range.lowerBound * each, count: range.count * each)
    withExtendedLifetime(x) {}
    return y
}

/// Overwrites rows `first ..< first + rows.dim(0)` of dimension 0 of `x` (which the caller owns) with `rows`.
public func replaceBatchSlice(_ x: Tensor, at first: Int, with rows: Tensor) {
    precondition(
        x.rank >= 1 && Array(rows.shape.dropFirst()) == Array(x.shape.dropFirst())
            && first >= 0 && first + rows.dim(0) <= x.dim(0), "replaceBatchSlice: \(rows.shape) at \(first) of \(x.shape)")
    let each = x.count / max(x.dim(0), 1)
    (x.data + first * each).update(from: rows.data, count: rows.count)
    withExtendedLifetime(rows) {}
}

/// Adds `y` [k, …] to the first k rows of dimension 0 of `x` (which the caller owns), in place.
public func addToLeadingRows(_ x: Tensor, _ y: Tensor) {
    precondition(
        y.rank == x.rank && Array(y.shape.dropFirst()) == Array(x.shape.dropFirst()) && y.dim(0) <= x.dim(0),
        "addToLeadingRows: \(y.shape) into \(x.shape)")
    let p = x.data, q = y.data
    for k in 0..<y.count { p[k] += q[k] }
    withExtendedLifetime(y) {}
}

/// ε_u + w·(ε_c − ε_u), elementwise in fp32 in that order (as diffusers computes classifier-free guidance).
public func guide(uncond: Tensor, cond: Tensor, scale w: Float) -> Tensor {
    precondition(uncond.shape == cond.shape, "guide: shapes \(uncond.shape) and \(cond.shape) differ")
    return zipMap(uncond, cond) { u, c in u + w * (c - u) }
}

/// f applied to every element of x, into a new tensor.
@inlinable public func mapElements(_ x: Tensor, _ f: (Float) -> Float) -> Tensor {
    let out = Tensor(uninitialized: x.shape)
    let p = x.data, q = out.data
    for i in 0..<x.count { q[i] = f(p[i]) }
    withExtendedLifetime(x) {}
    return out
}

/// f applied to corresponding elements of a and b (same shape), into a new tensor.
@inlinable public func zipMap(_ a: Tensor, _ b: Tensor, _ f: (Float, Float) -> Float) -> Tensor {
    precondition(a.shape == b.shape, "zipMap: shapes \(a.shape) and \(b.shape) differ")
    let out = Tensor(uninitialized: a.shape)
    let p = a.data, q = b.data, r = out.data
    for i in 0..<a.count { r[i] = f(p[i], q[i]) }
    withExtendedLifetime((a, b)) {}
    return out
}

/// Σ (a − b)², accumulated in fp64 (a and b of the same shape).
public func sumOfSquaredDifferences(_ a: Tensor, _ b: Tensor) -> Double {
    precondition(a.shape == b.shape, "sumOfSquaredDifferences: shapes \(a.shape) and \(b.shape) differ")
    let p = a.data, q = b.data
    var sum: Double = 0
    for i in 0..<a.count {
        let d = Double(p[i] - q[i])
        sum += d * d
    }
    withExtendedLifetime((a, b)) {}
    return sum
}

/// Σ a·b, accumulated in fp64 (a and b of the same shape).
public func dotProduct(_ a: Tensor, _ b: Tensor) -> Double {
    precondition(a.shape == b.shape, "dotProduct: shapes \(a.shape) and \(b.shape) differ")
    let p = a.data, q = b.data
    var sum: Double = 0
    for i in 0..<a.count { sum += Double(p[i]) * Double(q[i]) }
    withExtendedLifetime((a, b)) {}
    return sum
}

extension Tensor {
    /// Whether every element is finite (no NaN, no ±∞).
    public var allFinite: Bool {
        let p = data
        for i in 0..<count where !p[i].isFinite { return false }
        withExtendedLifetime(self) {}
        return true
    }

    /// The elements as consecutive planes of `size` elements each (`count` must be a multiple), for
    /// kernels written outside this module: each plane is a bounds-checked buffer, so callers index
    /// planes instead of doing pointer arithmetic. The tensor must be one the caller owns when it writes.
    public func planes(of size: Int) -> TensorPlanes {
        precondition(size > 0 && count % size == 0, "planes: \(count) elements in planes of \(size)")
        return TensorPlanes(tensor: self, size: size)
    }
}

/// A tensor seen as `count` planes of `size` elements (see `Tensor.planes(of:)`); it keeps the tensor alive.
public struct TensorPlanes {
    let tensor: Tensor
    /// Elements per plane.
    public let size: Int
    /// Number of planes.
    public var count: Int { tensor.count / size }

    /// Plane `i` as a mutable buffer of `size` elements.
    public subscript(i: Int) -> UnsafeMutableBufferPointer<Float> {
        precondition(i >= 0 && i < count, "plane \(i) of \(count)")
        return UnsafeMutableBufferPointer(start: tensor.data + i * size, count: size)
    }
}

/// Rows `indices` of a table [V, D], as [indices.count, D] (an embedding lookup; every index in 0..<V).
public func gatherRows(_ table: Tensor, _ indices: [Int]) -> Tensor {
    precondition(table.rank == 2, "gatherRows: table \(table.shape)")
    let (v, d) = (table.dim(0), table.dim(1))
    precondition(indices.allSatisfy { $0 >= 0 && $0 < v }, "gatherRows: an index outside 0..<\(v)")
    let y = Tensor(uninitialized: [indices.count, d])
    for (i, row) in indices.enumerated() { (y.data + i * d).update(from: table.data + row * d, count: d) }
    withExtendedLifetime(table) {}
    return y
}

/// x [B, C, H, W] with one zero row at the bottom and one zero column at the right: [B, C, H + 1, W + 1]
/// (the VAE encoder's asymmetric padding before a stride-2 convolution).
public func padBottomRight(_ x: Tensor) -> Tensor {
    precondition(x.rank == 4, "padBottomRight: \(x.shape)")
    let (b, c, h, w) = (x.dim(0), x.dim(1), x.dim(2), x.dim(3))
    let y = Tensor(zeros: [b, c, h + 1, w + 1])
    for plane in 0..<(b * c) {
        for i in 0..<h {
            (y.data + plane * (h + 1) * (w + 1) + i * (w + 1)).update(from: x.data + plane * h * w + i * w, count: w)
        }
    }
    withExtendedLifetime(x) {}
    return y
}
