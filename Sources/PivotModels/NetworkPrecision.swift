import PivotTensor

/// The precision of a network's matrix work: `forward` for plain passes, `gradient` for passes recorded on a
/// tape (the forward and backward of a VJP, e.g. null-text optimisation), so that a pipeline can keep its
/// optimisation in fp32 while sampling in bf16. See `Precision`.
public struct NetworkPrecision: Sendable, Equatable {
    public var forward: Precision
    public var gradient: Precision

    public init(forward: Precision = .fp32, gradient: Precision = .fp32) {
        self.forward = forward
        self.gradient = gradient
    }

    /// The same precision for both kinds of pass.
    public static func all(_ p: Precision) -> NetworkPrecision { NetworkPrecision(forward: p, gradient: p) }

    /// Runs one pass of a network in the precision that applies to it.
    func run<T>(_ body: () throws -> T) rethrows -> T {
        try Precision.with(Tape.isRecording ? gradient : forward, body)
    }
}
