import CPivotKernels

/// a + b for tensors of the same element count (shape of a).
public func add(_ a: Tensor, _ b: Tensor) -> Tensor {
    precondition(a.count == b.count, "add: \(a.shape) vs \(b.shape)")
    let y = Tensor(uninitialized: a.shape)
    Profiler.measure("add") {
        Parallel.forEach(a.count, grain: 1 << 18) { r in
            pv_add(a.data + r.lowerBound, b.data + r.lowerBound, y.data + r.lowerBound, r.count)
        }
    }
    if let tape = Tape.active(a, b) {
        let (aid, bid, bshape) = (a.storage.id, b.storage.id, b.shape)
        tape.record(y, "∂add") { [unowned tape] gy in
            tape.accumulate(aid, gy)
            tape.accumulate(bid, gy.reshaped(bshape))
        }
    }
    return y
}

/// a += b in place (a must be owned by the caller; never recorded on a `Tape`).
public func addInPlace(_ a: Tensor, _ b: Tensor) {
    precondition(a.count == b.count, "addInPlace: \(a.shape) vs \(b.shape)")
    Profiler.measure("add") {
        Parallel.forEach(a.count, grain: 1 << 18) { r in
            pv_add(a.data + r.lowerBound, b.data + r.lowerBound, a.data + r.lowerBound, r.count)
        }
    }
}

/// x · s as a new tensor.
public func scale(_ x: Tensor, _ s: Float) -> Tensor {
    let y = Tensor(uninitialized: x.shape)
    for i in 0..<x.count { y.data[i] = x.data[i] * s }
    if let tape = Tape.active(x) {
        let xid = x.storage.id
        tape.record(y, "∂scale") { [unowned tape] gy in tape.accumulate(xid, scale(gy, s)) }
    }
    return y
}

/// Adds v[B, C] to every spatial position of x [B, C, H, W] in place (never recorded on a `Tape`).
public func addChannelBias(_ x: Tensor, _ v: Tensor) {
    let b = x.dim(0), c = x.dim(1), hw = x.count / (b * c)
    for n in 0..<b { pv_add_channel_bias(x.data + n * c * hw, v.data + n * c, c, hw) }
}

/// x + v[B, C] at every spatial position of x [B, C, H, W], as a new tensor. Differentiable in x only (the
/// time embedding it adds in the UNet is constant with respect to the inputs pivot differentiates).
public func addingChannelBias(_ x: Tensor, _ v: Tensor) -> Tensor {
    let y = x.copy()
    let b = x.dim(0), c = x.dim(1), hw = x.count / (b * c)
    for n in 0..<b { pv_add_channel_bias(y.data + n * c * hw, v.data + n * c, c, hw) }
    if let tape = Tape.active(x) {
        let xid = x.storage.id
        tape.record(y, "∂bias") { [unowned tape] gy in tape.accumulate(xid, gy) }
    }
    return y
}

/// Concatenation along dimension 1 of [B, C1, ...] and [B, C2, ...] (same trailing dims).
public func concatChannels(_ a: Tensor, _ b: Tensor) -> Tensor {
    let n = a.dim(0)
    let inner = a.count / (n * a.dim(1))
    let ca = a.dim(1) * inner, cb = b.dim(1) * inner
    var shape = a.shape
    shape[1] = a.dim(1) + b.dim(1)
    let y = Tensor(uninitialized: shape)
    Profiler.measure("concat") {
        for i in 0..<n {
            (y.data + i * (ca + cb)).update(from: a.data + i * ca, count: ca)
            (y.data + i * (ca + cb) + ca).update(from: b.data + i * cb, count: cb)
        }
    }
    if let tape = Tape.active(a, b) {
        let (aid, bid, ca) = (a.storage.id, b.storage.id, a.dim(1))
        tape.record(y, "∂concat") { [unowned tape] gy in
            let (ga, gb) = splitChannels(gy, ca)
            tape.accumulate(aid, ga)
            tape.accumulate(bid, gb)
        }
    }
    return y
}

/// The inverse of `concatChannels`: the first `first` channels of x and the rest.
public func splitChannels(_ x: Tensor, _ first: Int) -> (Tensor, Tensor) {
    let n = x.dim(0), inner = x.count / (n * x.dim(1))
    let ca = first * inner, cb = (x.dim(1) - first) * inner
    var sa = x.shape, sb = x.shape
    sa[1] = first
    sb[1] = x.dim(1) - first
    let a = Tensor(uninitialized: sa), b = Tensor(uninitialized: sb)
    for i in 0..<n {
        (a.data + i * ca).update(from: x.data + i * (ca + cb), count: ca)
        (b.data + i * cb).update(from: x.data + i * (ca + cb) + ca, count: cb)
    }
    return (a, b)
}

/// Swaps the last two dimensions of x [B, R, C] → [B, C, R] (NCHW ↔ token-major).
public func transposeLast2(_ x: Tensor) -> Tensor {
    let r = x.dim(-2), c = x.dim(-1), b = x.count / (r * c)
    let y = Tensor(uninitialized: Array(x.shape.dropLast(2)) + [c, r])
    let tile = 32
    Profiler.measure("transpose") {
        for n in 0..<b {
            let s = x.data + n * r * c, d = y.data + n * r * c
            Parallel.forEach((r + tile - 1) / tile) { rt in
                for ti in rt {
                    let i0 = ti * tile, i1 = min(r, i0 + tile)
                    var j0 = 0
                    while j0 < c {
                        let j1 = min(c, j0 + tile)
                        for i in i0..<i1 { for j in j0..<j1 { d[j * r + i] = s[i * c + j] } }
                        j0 = j1
                    }
                }
            }
        }
    }
    if let tape = Tape.active(x) {
        let xid = x.storage.id
        tape.record(y, "∂transpose") { [unowned tape] gy in tape.accumulate(xid, transposeLast2(gy)) }
    }
    return y
}
