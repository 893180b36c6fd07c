import PivotDiffusion
import PivotModels
import PivotTensor
import XCTest

/// Prompt-to-Prompt's token bookkeeping and controller on hand-checked cases.
final class PromptToPromptTests: XCTestCase {
    func testWordPositions() {
        XCTAssertEqual(PromptAlignment.wordPositions(tokenCounts: [1, 2, 1]), [[1], [2, 3], [4]])
    }

    /// "a cat sat" → "a dog sat": one-token swap maps position to position.
    func testWordSwapMapperSameTokenCount() {
        let src = PromptAlignment.wordPositions(tokenCounts: [1, 1, 1])
        let m = PromptAlignment.wordSwapMapper(source: src, target: src, swapped: [1], length: 8)
        for i in 0..<8 { for j in 0..<8 { XCTAssertEqual(m[i][j], i == j ? 1 : 0, "M[\(i)][\(j)]") } }
    }

    /// A source word of one token swapped for a target word of two spreads 1/2 over both; after the last
    /// swap the reference maps position p to p (so the source's "sat" at 3 maps nowhere).
    func testWordSwapMapperSplitWord() {
        let src = PromptAlignment.wordPositions(tokenCounts: [1, 1, 1])
        let tgt = PromptAlignment.wordPositions(tokenCounts: [1, 2, 1])
        let m = PromptAlignment.wordSwapMapper(source: src, target: tgt, swapped: [1], length: 8)
        XCTAssertEqual(m[0][0], 1)
        XCTAssertEqual(m[1][1], 1)
        XCTAssertEqual(m[2][2], 0.5)
        XCTAssertEqual(m[2][3], 0.5)
        XCTAssertEqual(m[3].reduce(0, +), 0)
        XCTAssertEqual(m[4][4], 1)
        XCTAssertEqual(m[7][7], 1)
    }

    /// "a cat" → "a black cat": the new word is unaligned (α 0), the rest copy their source tokens.
    func testRefinementAlignment() {
        let (map, alpha) = PromptAlignment.refinement(source: [100, 1, 2, 101], target: [100, 1, 9, 2, 101], length: 8)
        XCTAssertEqual(Array(map.prefix(5)), [0, 1, 0, 2, 3])
        XCTAssertEqual(Array(alpha.prefix(5)), [1, 1, 0, 1, 1])
        XCTAssertEqual(Array(map.suffix(3)), [5, 6, 7])
        XCTAssertEqual(Array(alpha.suffix(3)), [1, 1, 1])
    }

    func testSchedules() {
        let cross = PromptToPromptController.crossSchedule(fraction: 0.8, steps: 10, tokens: 3, perToken: [2: 0.4])
        XCTAssertEqual(cross.count, 11)
        XCTAssertEqual(cross.map { $0[0] }, [1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0])  // int(0.8 · 11) = 8
        XCTAssertEqual(cross.map { $0[2] }, [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0])  // int(0.4 · 11) = 4
        XCTAssertEqual(PromptToPromptController.selfSchedule(start: 0, end: 0.4, steps: 50), 0..<20)
    }

    /// Two prompts, one head, two query tokens, four keys: the target's cross-attention becomes the source's
    /// through the mapper while α = 1, reweighted by the equaliser; self-attention is copied in its window.
    func testControllerEdits() {
        var swap = Array(repeating: Array(repeating: Float(0), count: 4), count: 4)
        swap[0][0] = 1
        swap[1][2] = 1
        swap[2][1] = 1
        swap[3][3] = 1
        let schedule: [[Float]] = [[1, 1, 1, 1], [0, 0, 0, 0]]
        let c = PromptToPromptController(
            prompts: 2, edit: .replace(mappers: [swap]), crossReplace: [schedule],
            equalizer: [[1, 2, 1, 1]], selfReplace: 0..<1, selfReplaceMaxTokens: 4)
        let base: [Float] = [0.1, 0.2, 0.3, 0.4, 0.4, 0.3, 0.2, 0.1]
        let own: [Float] = [0.25, 0.25, 0.25, 0.25, 0.7, 0.1, 0.1, 0.1]
        let p = Tensor(shape: [4, 1, 2, 4], values: Array(repeating: 0, count: 16) + base + own)
        let cross = AttentionSite(name: "up_blocks.1.attentions.0.transformer_blocks.0.attn2", place: .up, isCross: true)
        c.beginStep(0)
        XCTAssertTrue(c.wants(cross))
        c.edit(p, at: cross)
        XCTAssertEqual(Array(p.scalars.suffix(8)), [0.1, 0.6, 0.2, 0.4, 0.4, 0.4, 0.3, 0.1])
        let later = Tensor(shape: [4, 1, 2, 4], values: Array(repeating: 0, count: 16) + base + own)
        c.beginStep(1)
        c.edit(later, at: cross)
        XCTAssertEqual(Array(later.scalars.suffix(8)), own, "α = 0: the target keeps its own attention")
        var selfSite = AttentionSite(name: "down_blocks.0.attentions.0.transformer_blocks.0.attn1", place: .down, isCross: false)
        selfSite.queryTokens = 2
        XCTAssertFalse(c.wants(selfSite), "outside the self-replace window")
        c.beginStep(0)
        XCTAssertTrue(c.wants(selfSite))
        let selfP = Tensor(shape: [4, 1, 2, 4], values: Array(repeating: 0, count: 16) + base + own)
        c.edit(selfP, at: selfSite)
        XCTAssertEqual(Array(selfP.scalars.suffix(8)), base)
        selfSite.queryTokens = 5
        XCTAssertFalse(c.wants(selfSite), "larger than the self-replace resolution")
    }
}

/// Local blend on a hand-made attention map.
final class LocalBlendTests: XCTestCase {
    func testMaskFromTheWordsAttention() {
        let blend = LocalBlend(wordTokens: [[0, 0, 0, 0], [0, 0, 1, 0]], threshold: 0.3, startStep: 0, latent: LatentGrid(side: 16))
        // [uncond × 2, cond × 2], 1 head, 4×4 query tokens, 4 keys; the target attends to token 2 at the top-left.
        var values = [Float](repeating: 0, count: 4 * 16 * 4)
        values[(3 * 16 + 0) * 4 + 2] = 1
        let p = Tensor(shape: [4, 1, 16, 4], values: values)
        let site = AttentionSite(name: "up_blocks.1.attentions.0.transformer_blocks.0.attn2", place: .up, isCross: true)
        let controller = PromptToPromptController(
            prompts: 2, edit: .none, crossReplace: [[[0, 0, 0, 0]]], equalizer: nil,
            selfReplace: 0..<0, selfReplaceMaxTokens: 0)
        controller.localBlend = blend
        controller.edit(p, at: site)
        var z = Tensor(shape: [2, 1, 8, 8], values: Array(repeating: 0, count: 64) + Array(repeating: 1, count: 64))
        blend.apply(&z, afterStep: 0)
        for y in 0..<8 {
            for x in 0..<8 {
                // 3×3 max-pool spreads the hot cell to the 2×2 top-left cells of the 4×4 map: 4×4 latent pixels.
                XCTAssertEqual(z.data[64 + y * 8 + x], y < 4 && x < 4 ? 1 : 0, "(\(y), \(x))")
            }
        }
        XCTAssertEqual(Array(z.scalars.prefix(64)), Array(repeating: 0, count: 64), "the source is untouched")
    }

    func testNothingBeforeTheStartStep() {
        let blend = LocalBlend(wordTokens: [[0, 0, 0, 0], [0, 0, 1, 0]], startStep: 3, latent: LatentGrid(side: 16))
        var values = [Float](repeating: 0, count: 4 * 16 * 4)
        values[(3 * 16 + 0) * 4 + 2] = 1
        let controller = PromptToPromptController(
            prompts: 2, edit: .none, crossReplace: [[[0, 0, 0, 0]]], equalizer: nil,
            selfReplace: 0..<0, selfReplaceMaxTokens: 0)
        controller.localBlend = blend
        controller.edit(
            Tensor(shape: [4, 1, 16, 4], values: values),
            at: AttentionSite(name: "down_blocks.1.attentions.0.transformer_blocks.0.attn2", place: .down, isCross: true))
        let ones = Array(repeating: Float(1), count: 64)
        var z = Tensor(shape: [2, 1, 8, 8], values: Array(repeating: 0, count: 64) + ones)
        blend.apply(&z, afterStep: 1)  // steps 1…3 have not passed yet
        XCTAssertEqual(Array(z.scalars.suffix(64)), ones)
        blend.apply(&z, afterStep: 3)
        XCTAssertNotEqual(Array(z.scalars.suffix(64)), ones)
    }
}

/// The source's cross-attention maps behind `--attention-maps`.
final class CrossAttentionMapsTests: XCTestCase {
    /// Averaged over heads, layers and steps at the preferred size; other sizes, the mid block, the
    /// unconditional half and other prompts are left out.
    func testAveragesTheSourceMaps() throws {
        let maps = CrossAttentionMaps(prompts: 2, latent: LatentGrid(side: 8))  // prefers (8/4)² = 4 query tokens
        XCTAssertNil(maps.averaged())
        let down = AttentionSite(name: "down_blocks.0.attentions.0.transformer_blocks.0.attn2", place: .down, isCross: true)
        let mid = AttentionSite(name: "mid_block.attentions.0.transformer_blocks.0.attn2", place: .mid, isCross: true)
        let selfSite = AttentionSite(name: "down_blocks.0.attentions.0.transformer_blocks.0.attn1", place: .down, isCross: false)
        // [uncond × 2, cond × 2], 2 heads, 4 queries, 3 keys; the source's cond half holds head h, query q,
        // key k = 100·layer + 10·h + q + k; everything else is −1.
        func probs(_ layer: Float, queries: Int = 4) -> Tensor {
            var v = [Float](repeating: -1, count: 4 * 2 * queries * 3)
            for h in 0..<2 {
                for q in 0..<queries { for k in 0..<3 { v[((2 * 2 + h) * queries + q) * 3 + k] = 100 * layer + 10 * Float(h) + Float(q + k) } }
            }
            return Tensor(shape: [4, 2, queries, 3], values: v)
        }
        XCTAssertTrue(maps.wants(down))
        XCTAssertFalse(maps.wants(mid))
        XCTAssertFalse(maps.wants(selfSite))
        maps.edit(probs(0), at: down)
        maps.edit(probs(1), at: down)
        maps.edit(probs(7), at: mid)
        maps.edit(probs(9), at: selfSite)
        maps.edit(probs(5, queries: 16), at: down)
        let (height, width, values) = try XCTUnwrap(maps.averaged())
        XCTAssertEqual([height, width], [2, 2])
        XCTAssertEqual(values.count, 3)
        for k in 0..<3 {
            for q in 0..<4 {
                // mean over layers {0, 1} and heads {0, 1}: 50 + 5 + q + k
                XCTAssertEqual(values[k][q], 55 + Float(q + k), accuracy: 1e-4)
            }
        }
    }

    /// A chain materialises a layer when any controller wants it and hands it to those that do.
    func testChainPassesLayersToWhoWantsThem() {
        let maps = CrossAttentionMaps(prompts: 1, latent: LatentGrid(side: 8))
        let p2p = PromptToPromptController(
            prompts: 1, edit: .none, crossReplace: [], equalizer: nil,
            selfReplace: 0..<1, selfReplaceMaxTokens: 100)
        let chain = ControllerChain([maps, p2p])
        let selfSite = AttentionSite(name: "up_blocks.0.attentions.0.transformer_blocks.0.attn1", place: .up, isCross: false, queryTokens: 4)
        XCTAssertTrue(chain.wants(selfSite), "the P2P controller injects self-attention at step 0")
        chain.beginStep(1)
        XCTAssertEqual(p2p.step, 1)
        XCTAssertFalse(chain.wants(selfSite))
        chain.edit(
            Tensor(shape: [2, 1, 4, 2], values: Array(repeating: 0.5, count: 16)),
            at: AttentionSite(name: "up_blocks.0.attentions.0.transformer_blocks.0.attn2", place: .up, isCross: true))
        XCTAssertEqual(maps.averaged()?.values.first ?? [], [0.5, 0.5, 0.5, 0.5])
    }

    /// The token grids of a rectangular latent: each UNet level halves both sides (rounding up), and a
    /// layer's grid is found from its token count.
    func testLatentGridOfARectangularLatent() {
        let latent = LatentGrid(height: 48, width: 80)  // 384×640 pixels at SD's factor 8
        XCTAssertEqual(latent.tokens(downsampledBy: 4), 12 * 20)
        XCTAssertEqual(latent.tokens(downsampledBy: 2), 24 * 40)
        let g = latent.grid(tokens: 6 * 10)
        XCTAssertEqual([g.height, g.width], [6, 10])
        let odd = LatentGrid(height: 9, width: 5)
        XCTAssertEqual([odd.grid(factor: 2).height, odd.grid(factor: 2).width], [5, 3])
        let side = LatentGrid(side: 64).grid(tokens: 256)
        XCTAssertEqual([side.height, side.width], [16, 16])
    }
}
