import PivotTensor

/// Where an attention layer sits in the UNet, as Prompt-to-Prompt's controllers see it.
public struct AttentionSite: Sendable, Hashable {
    public enum Place: String, Sendable { case down, mid, up }

    /// Parameter prefix of the layer (e.g. `up_blocks.1.attentions.0.transformer_blocks.0.attn2`).
    public let name: String
    public let place: Place
    /// Cross-attention (`attn2`, keys from the text) or self-attention (`attn1`).
    public let isCross: Bool
    /// Query tokens (h·w of the feature map) and heads of the current call.
    public var queryTokens = 0
    public var heads = 0

    public init(name: String, place: Place, isCross: Bool, queryTokens: Int = 0, heads: Int = 0) {
        self.name = name
        self.place = place
        self.isCross = isCross
        self.queryTokens = queryTokens
        self.heads = heads
    }
}

/// Reads and edits attention probabilities during a UNet pass (the hook of Prompt-to-Prompt), in the spirit of
/// diffusers' attention processors: the controller is an argument of the UNet call
/// (`unet(x, timesteps:, context:, controller:)`), handed down block by block to every attention layer.
public protocol AttentionController: AnyObject {
    /// Whether the controller needs the probabilities at `site` (others take the fast fused path).
    func wants(_ site: AttentionSite) -> Bool
    /// Called with the probabilities [B, heads, N, M] of a wanted layer; may edit them in place.
    func edit(_ probabilities: Tensor, at site: AttentionSite)
    /// Called before the UNet pass of denoising step `index` (0-based).
    func beginStep(_ index: Int)
}

extension AttentionController {
    public func beginStep(_ index: Int) {}
}
