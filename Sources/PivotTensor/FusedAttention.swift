import CPivotDNNL
import CPivotKernels

/// Fused, streaming-softmax attention: no score band is stored, and the softmax is lane-wise, 16 (AVX-512),
/// 8 (AVX2) or 4 query rows per vector (docs/ALGORITHMS.md §9).
///
/// - bf16 forward (`Sources/CPivotKernels/attention_bf16.c`, AVX512_BF16 only): q scaled by 1/√d · log2 e and
///   rounded to bf16, k and v rounded to bf16, scores, running maxima and sums fp32, probabilities rounded to
///   bf16 before P·V (as the band path rounds them), products accumulated in fp32 by vdpbf16ps.
/// - fp32 forward (`attention_simd.inc`, AVX-512 or AVX2 + FMA): the same recurrence with FMAs on fp32.
///
/// The VJPs keep the score-band path: a fused fp32 backward measured level with it (see attention_simd.inc).
/// They apply to non-causal attention over at least `minimumKeys` keys with an even head width up to 256
/// (fp32: any width up to 256); elsewhere `attention` keeps its score bands (OpenBLAS in fp32, oneDNN in bf16).
/// Measured single-threaded on a Zen 4 EPYC at SD 1.5's 4096×4096 self-attention, head width 40: bf16 forward
/// 164 GFLOP/s, fp32 forward 75 (docs/BENCHMARKS.md has the UNet figures).
public enum FusedAttention {
    /// Fewer keys than this (cross-attention over 77 text tokens) stay on the band path: the fused kernels'
    /// per-block work (gathering 16 query rows, writing the output) is not amortised over so few keys.
    public static let minimumKeys = 128

    /// Whether the processor runs the fused bf16 kernel (AVX-512 BW and AVX512_BF16).
    public static let bf16Supported = pv_flash_bf16_supported() != 0

    /// Whether the processor runs the fused fp32 kernels fast (AVX2 + FMA or AVX-512).
    public static let fp32Supported = pv_attention_f32_level() >= 1

    /// Whether `attention` in bf16 takes the fused kernel for these dimensions.
    public static func bf16Applies(keys: Int, headWidth: Int, causal: Bool) -> Bool {
        bf16Supported && !causal && keys >= minimumKeys && headWidth % 2 == 0 && (2...256).contains(headWidth)
    }

    /// Whether `attention` in fp32 takes the fused kernel for these dimensions.
    public static func fp32Applies(keys: Int, headWidth: Int, causal: Bool) -> Bool {
        fp32Supported && !causal && keys >= minimumKeys && (1...256).contains(headWidth)
    }

    /// Query rows (or keys) per work item: whole vectors of rows, enough items to balance the workers.
    static let rowsPerItem = 128

    /// Runs body(sample, head, first row, end row) over row chunks of every (sample, head) on the workers.
    private static func forEachChunk(batch: Int, heads: Int, rows: Int, _ body: (Int, Int, Int, Int) -> Void) {
        let chunks = (rows + rowsPerItem - 1) / rowsPerItem
        Parallel.forEach(batch * heads * chunks) { items in
            for item in items {
                let n = item / (heads * chunks), h = (item / chunks) % heads, row0 = (item % chunks) * rowsPerItem
                body(n, h, row0, min(rows, row0 + rowsPerItem))
            }
        }
    }

    /// out = softmax(q kᵀ · scale) v per head in bf16, q [B, Nq, H·d], k and v [B, Nk, H·d], out [B, Nq, H·d].
    /// Precondition: `bf16Applies` holds.
    static func runBF16(q: Tensor, k: Tensor, v: Tensor, heads: Int, scale: Float, out: Tensor) {
        let b = q.dim(0), nq = q.dim(1), nk = k.dim(1), width = q.dim(2), d = width / heads
        let nkp = pv_flash_keys_padded(nk)
        let keys = BF16Buffer(count: b * nkp * width)  // [B, Nkp, H·d] bf16
        let values = BF16Buffer(count: b * nkp * width)  // [B, Nkp / 2, H·d] bf16 pairs of consecutive keys
        let pairs = UnsafeMutableRawPointer(values.pointer).bindMemory(to: UInt32.self, capacity: b * nkp / 2 * width)
        for n in 0..<b {  // the keys rounded as every bf16 product rounds them, padding rows zero
            let dst = keys.pointer + n * nkp * width
            Parallel.forEach(nk * width, grain: 1 << 16) { r in
                pv_f32_to_bf16(k.data + n * nk * width + r.lowerBound, dst + r.lowerBound, r.count)
            }
            (dst + nk * width).update(repeating: 0, count: (nkp - nk) * width)
        }
        Parallel.forEach(b * nkp / 2, grain: 128) { r in
            forEachSample(r, per: nkp / 2) { n, lo, hi in
                pv_flash_pack_values(v.data + n * nk * width, nk, width, pairs + n * (nkp / 2) * width, lo, hi)
            }
        }
        forEachChunk(batch: b, heads: heads, rows: nq) { n, h, row0, row1 in
            let status = pv_flash_attention_bf16(
                q.data + n * nq * width + h * d, width, keys.pointer + n * nkp * width + h * d, width,
                pairs + n * (nkp / 2) * width + h * d, width, nk, d, scale, row0, row1,
                out.data + n * nq * width + h * d, width)
            precondition(status == 0, "fused attention refused head width \(d) (checked by bf16Applies)")
        }
        withExtendedLifetime((keys, values)) {}
    }

    /// The fp32 forward into `out`. Precondition: `fp32Applies` holds.
    static func runFP32(q: Tensor, k: Tensor, v: Tensor, heads: Int, scale: Float, out: Tensor) {
        let b = q.dim(0), nq = q.dim(1), nk = k.dim(1), width = q.dim(2), d = width / heads
        forEachChunk(batch: b, heads: heads, rows: nq) { n, h, row0, row1 in
            pv_attention_f32_rows(
                q.data + n * nq * width + h * d, width, k.data + n * nk * width + h * d, width,
                v.data + n * nk * width + h * d, width, nk, d, scale, row0, row1, out.data + n * nq * width + h * d,
                width)
        }
    }

    /// The fp32 forward of one sample's heads at an instruction-set level (2 AVX-512, 1 AVX2 + FMA, 0
    /// baseline), single-threaded, for tests of every level; nil when the processor lacks that level.
    public static func fp32Forward(q: Tensor, k: Tensor, v: Tensor, heads: Int, level: Int) -> Tensor? {
        let nq = q.dim(1), nk = k.dim(1), width = q.dim(2), d = width / heads
        let out = Tensor(uninitialized: [1, nq, width])
        for h in 0..<heads {
            let status = pv_attention_f32_rows_at(
                Int32(level), q.data + h * d, width, k.data + h * d, width, v.data + h * d, width, nk, d,
                1 / Float(d).squareRoot(), 0, nq, out.data + h * d, width)
            if status != 0 { return nil }
        }
        return out
    }

    /// Splits a range of rows of a [B, rowsPerSample] layout into per-sample pieces: body(n, lo, hi) with
    /// lo..<hi rows of sample n.
    private static func forEachSample(_ r: Range<Int>, per rowsPerSample: Int, _ body: (Int, Int, Int) -> Void) {
        var i = r.lowerBound
        while i < r.upperBound {
            let n = i / rowsPerSample, end = min(r.upperBound, (n + 1) * rowsPerSample)
            body(n, i - n * rowsPerSample, end - n * rowsPerSample)
            i = end
        }
    }
}
