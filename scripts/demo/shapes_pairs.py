"""Edit pairs of the shapes world and the Prompt-to-Prompt pair loss: train a model to render the ground truth of
a word swap while Prompt-to-Prompt holds its attention to the source's.

An edit pair is a training scene and the renderer's ground truth of one word swapped in its caption (one
object's colour or shape; the positions, sizes and angles kept). At edit time Prompt-to-Prompt (Hertz et al.
2022, google/prompt-to-prompt's `AttentionReplace` with pivot's defaults) denoises the target prompt with the
source's cross-attention probabilities for the first 80% of the steps (t >= 200 of 1000 here) and its
self-attention probabilities for the first 40% (t >= 600), so a model whose words act through *where* they are
read cannot change a shape, and one whose later words carry an earlier swap through the causal encoder moves
the other object too. The pair loss is that edit as a training example: the source scene noised, its
attention recorded (no gradient); the ground truth noised with the same noise, denoised under the target
caption with those probabilities injected, regressing to the noise (Min-SNR weighted like the diffusion loss).
With ``--pair-source`` the target caption denoises the *source's* noised latent instead, as an edit does, and
regresses to the noise whose x0 prediction is the ground truth of the edit: the model learns to move away from
the source where the words changed, not to read the edited object off an x_t that already shows it.

Limitations: one swap per pair, colour or shape words only (background swaps change most pixels and teach
nothing about locality); the injection schedule is pivot's default, not sampled.
"""
import numpy as np
import torch

from scripts.demo import shapes_model
from scripts.demo import shapes_world as world
from scripts.demo.shapes_losses import GUIDANCE, attend, min_snr_mse, noised, regions_alike

CROSS_UNTIL_T = 200  # cross-attention replaced while t >= this (the first 80% of 50 DDIM steps)
SELF_UNTIL_T = 600  # self-attention replaced while t >= this (the first 40%)
PAIR_SEED_BASE = 30_000_000  # a stream of its own, for the random swaps


def edited_scene(seed, rng):
    """(edited image, edited caption, masks) of training scene ``seed`` with one of its objects' colour or shape
    word swapped, drawn with ``rng``; ``masks`` [3, H, W] are the coverage of the edited object (source or
    edit), of the other object (zero in one-object scenes) and of every object."""
    _, _, info = world.render(int(seed))
    k = int(rng.integers(len(info["objects"])))
    obj = info["objects"][k]
    if rng.random() < 0.5:
        taken = [o["colour"] for o in info["objects"]]  # the world's objects differ in colour
        colour = str(rng.choice([c for c in world.COLOURS if c not in taken]))
        edited, caption, new = world.render_variant(info, colour=colour, index=k)
    else:
        shape = str(rng.choice([s for s in world.SHAPES if s != obj["shape"]]))
        edited, caption, new = world.render_variant(info, shape=shape, index=k)
    cover = [np.maximum(o["mask"], n["mask"]) for o, n in zip(info["objects"], new["objects"])]
    other = cover[1 - k] if len(cover) == 2 else np.zeros_like(cover[k])
    return edited, caption, np.stack([cover[k], other, np.maximum(cover[k], other)]).astype(np.float32)


def outside_weights(masks, size, grow=1):
    """Pixel weights [1, h, w] of an edit pair's unedited regions at latent ``size`` (h, w), from its
    ``masks`` [3, H, W] (`edited_scene`): the other object's pixels and the background's, each region summing to
    1 / (regions present), outside the edited object's coverage grown by ``grow`` latent pixels. Each region
    counts alike, so a small object is not outweighed by the background."""
    cover = torch.nn.functional.interpolate(torch.from_numpy(masks)[None], size=size, mode="area")[0]  # [3, h, w]
    edited = torch.nn.functional.max_pool2d((cover[:1] > 0).float(), 2 * grow + 1, 1, grow) > 0  # [1, h, w]
    regions = torch.cat([(cover[1:2] > 0.5) & ~edited, (cover[2:3] == 0) & ~edited]).float()  # [2, h, w]
    return regions_alike(regions[None])[0]


@torch.no_grad()
def encode_pairs(vae, train, count, tokenizer, batch=32, normalise=None):
    """The pairs of the first ``count`` training scenes (seeds 0, 1, ...), whose latents and token ids ``train``
    (`shapes_model.encode_scenes` of those seeds) already holds: latent means of the sources and the edits
    [N, 4, h, w] and their token ids [N, 77]. ``normalise`` maps the VAE's latents to those of ``train``
    (train_shapes' per-channel normalisation, before it is folded into the VAE)."""
    if count > train["latents"].shape[0]:
        raise ValueError(f"{count} pairs need as many training scenes; there are {train['latents'].shape[0]}")
    rng = np.random.default_rng(PAIR_SEED_BASE)
    edited, edited_ids, outside = [], [], []
    for i in range(0, count, batch):
        rows = [edited_scene(s, rng) for s in range(i, min(i + batch, count))]
        z = vae.encode(shapes_model.images_to_tensor([r[0] for r in rows])).latent_dist.mean.float()
        edited.append(z if normalise is None else normalise(z))
        edited_ids.append(shapes_model.tokenize(tokenizer, [r[1] for r in rows]))
        outside.append(torch.stack([outside_weights(r[2], z.shape[-2:]) for r in rows]))
    return dict(source=train["latents"][:count], source_ids=train["ids"][:count], edited=torch.cat(edited),
                edited_ids=torch.cat(edited_ids), outside=torch.cat(outside))


class AttentionInjector:
    """One attention processor for every layer of a UNet that can record the attention probabilities of a pass
    and inject them into the next, per row, as Prompt-to-Prompt's replacement does.

    ``mode`` None: cross-attention goes to ``recorder`` (the token loss's `CrossAttentionRecorder`), if any, and
    self-attention to it too when it records self-attention, else to diffusers' `AttnProcessor2_0`; "plain":
    every layer to `AttnProcessor2_0`, nothing recorded; "record":
    the probabilities [B * heads, N, M] of every layer are kept in call order; "inject": the rows
    ``cross_rows`` / ``self_rows`` [B] bool take the recorded probabilities of the same layer instead of their
    own.
    """

    def __init__(self, recorder=None):
        from diffusers.models.attention_processor import AttnProcessor2_0
        self.recorder = recorder
        self.plain = AttnProcessor2_0()
        self.mode = None
        self.stored = []
        self.index = 0
        self.cross_rows = None
        self.self_rows = None

    def install(self, unet):
        unet.set_attn_processor(self)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kw):
        cross = encoder_hidden_states is not None
        if self.mode == "plain":
            return self.plain(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        if self.mode is None:
            if self.recorder is not None and (cross or self.recorder.self_attention):
                return self.recorder(attn, hidden_states, encoder_hidden_states)
            return self.plain(attn, hidden_states, encoder_hidden_states, attention_mask, temb)

        def adjust(probs):  # [B * heads, N, M]
            if self.mode == "record":
                self.stored.append(probs.detach())
                return probs
            rows = (self.cross_rows if cross else self.self_rows).repeat_interleave(attn.heads)
            probs = torch.where(rows[:, None, None], self.stored[self.index], probs)
            self.index += 1
            return probs

        return attend(attn, hidden_states, encoder_hidden_states, adjust)


# The options of the pair loss, as argparse destinations (`add_arguments`).
OPTIONS = ("pair_loss", "pair_consistency", "pair_invariance", "pair_scenes", "pair_batch", "pair_source")


def add_arguments(ap, scenes=3000):
    """``--pair-loss``, ``--pair-consistency`` and ``--pair-invariance`` (off by default), ``--pair-scenes`` and
    ``--pair-batch`` (8)."""
    ap.add_argument("--pair-loss", type=float, default=0.0,
                    help="weight of the Prompt-to-Prompt pair loss (shapes_pairs): render a word swap's ground "
                    "truth with the source's attention injected")
    ap.add_argument("--pair-consistency", type=float, default=0.0,
                    help="weight of the pair consistency loss (shapes_pairs.pair_loss): the guided prediction "
                    "of a word swap may not change outside the edited object")
    ap.add_argument("--pair-invariance", type=float, default=0.0,
                    help="weight of the pair invariance loss (shapes_pairs.invariance_loss): the captioned "
                    "prediction of a perfect edit (its ground truth noised like the source, the target caption) may "
                    "not change outside the edited object")
    ap.add_argument("--pair-scenes", type=int, default=scenes, help="edit pairs (of the first training scenes)")
    ap.add_argument("--pair-batch", type=int, default=8, help="pairs per step")
    ap.add_argument("--pair-source", action="store_true",
                    help="the pair loss denoises the *source* scene's noised latent, as an edit does, and regresses "
                    "to the noise that makes its x0 prediction the edit's ground truth (timesteps of the "
                    "cross-attention injection only); without it, the edit's own noised latent and its noise")


def active(args):
    """Whether any pair loss is on (then the pairs must be encoded)."""
    return args.pair_loss > 0 or args.pair_consistency > 0 or args.pair_invariance > 0


def terms(unet, text_encoder, injector, pairs, args, acp, gen, empty):
    """The weighted sum of the pair losses that are on (the options of `add_arguments`, read from ``args``) for
    one training step, and their values by name (for the progress line). ``empty``: the empty prompt's ids."""
    total, values = torch.zeros(()), {}
    if args.pair_loss > 0 or args.pair_consistency > 0:
        pair, consistent = pair_loss(unet, text_encoder, injector, pairs, args.pair_batch, acp, args.min_snr, gen,
                                     empty if args.pair_consistency > 0 else None, args.pair_source)
        total = total + args.pair_loss * pair + args.pair_consistency * consistent
        values.update(pair=pair.item(), consistency=consistent.item())
    if args.pair_invariance > 0:
        invariant = invariance_loss(unet, text_encoder, injector, pairs, args.pair_batch, acp, gen)
        total = total + args.pair_invariance * invariant
        values.update(invariance=invariant.item())
    return total, values


def check_arguments(args, scenes):
    """A one-line exit when the pair losses are on and ``--pair-scenes`` is not within the ``scenes`` training
    scenes the pairs are drawn from (`encode_pairs` needs them)."""
    if active(args) and not 0 < args.pair_scenes <= scenes:
        raise SystemExit(f"--pair-scenes must lie between 1 and the {scenes} training scenes, not {args.pair_scenes}")


def draw(pairs, count, gen, low=0):
    """``count`` pairs drawn with ``gen``: their indices [P], timesteps in [``low``, 1000) [P] and noise
    [P, 4, h, w], in that order (so a run's random stream does not depend on which pair loss draws)."""
    idx = torch.randint(pairs["source"].shape[0], (count,), generator=gen)
    t = torch.randint(low, 1000, (count,), generator=gen)
    return idx, t, torch.randn(pairs["source"][idx].shape, generator=gen)


def pair_loss(unet, text_encoder, injector, pairs, count, acp, snr_gamma, gen, empty=None, from_source=False):
    """The Prompt-to-Prompt pair loss of ``count`` pairs drawn with ``gen`` (see the module's header), and
    with ``empty`` (the empty prompt's token ids [77]) the pair consistency loss, else zero.

    With ``from_source`` the target caption denoises the source scene's noised latent x_t (what an edit starts
    from: P2P's target branch begins at the source's inverted noise), at timesteps of the cross-attention
    injection (t >= `CROSS_UNTIL_T`), and regresses to the noise whose x0 prediction is the edit's ground truth:
    eps* = n + sqrt(abar_t / (1 - abar_t)) (x0_source - x0_edit), equal to n wherever the two scenes agree. Without
    it the edit's own noised latent is denoised and the target is its noise, which a model can meet by reading
    the edited object off x_t, never learning to move away from the source.

    The consistency loss is the edit's change outside the edited object: per pair, the squared difference
    between the target's and the source's guided noise predictions (guidance `GUIDANCE`, the unconditional
    branch under the empty prompt and never injected, as in P2P) weighted by `outside_weights`. Its target is
    exactly zero, unlike the denoising loss's, whose noise leaves a large irreducible error at every pixel; and
    it sees the path the denoising loss cannot: the edited object's latent reaching the other object through the
    convolutions and self-attention, in both branches, multiplied by the guidance."""
    idx, t, noise = draw(pairs, count, gen, CROSS_UNTIL_T if from_source else 0)
    source = noised(pairs["source"][idx], t, noise, acp)  # [P, 4, h, w]
    if from_source:  # the edit starts from the source's latent; x0 regressed to the edit's
        abar = acp.to(t.device)[t].view(-1, 1, 1, 1)
        edited, target = source, noise + (abar / (1 - abar)).sqrt() * (pairs["source"][idx] - pairs["edited"][idx])
    else:
        edited, target = noised(pairs["edited"][idx], t, noise, acp), noise
    try:
        injector.mode, injector.stored = "record", []
        with torch.no_grad():
            source_cond = unet(source, t, text_encoder(pairs["source_ids"][idx])[0]).sample
        injector.mode, injector.index = "inject", 0
        injector.cross_rows, injector.self_rows = t >= CROSS_UNTIL_T, t >= SELF_UNTIL_T
        pred = unet(edited, t, text_encoder(pairs["edited_ids"][idx])[0]).sample
        consistency = torch.zeros(())
        if empty is not None:
            injector.mode, injector.stored = "plain", []
            uncond = text_encoder(empty[None])[0].expand(count, -1, -1)  # one encoding, shared by the rows
            with torch.no_grad():
                source_guided = guided(unet(source, t, uncond).sample, source_cond)
            change = (guided(unet(edited, t, uncond).sample, pred) - source_guided) ** 2  # [P, 4, h, w]
            consistency = (change.mean(1, keepdim=True) * pairs["outside"][idx]).sum((1, 2, 3)).mean()
    finally:
        injector.mode, injector.stored = None, []
    return min_snr_mse(pred, target, t, acp, snr_gamma).mean(), consistency


def invariance_loss(unet, text_encoder, injector, pairs, count, acp, gen):
    """The pair invariance loss of ``count`` pairs drawn with ``gen``: a perfect edit in latent space (the edit's
    ground truth, noised with the source's noise at the same timestep, under the target caption) against the
    source under its caption, the squared change of the captioned noise prediction weighted by
    `outside_weights` (the other object and the background alike, outside the edited object grown by one latent
    pixel). Both passes are trained.

    Why: wherever the two scenes agree, an ideal denoiser predicts the same noise for both (the posterior of the
    unedited pixels does not depend on the edited object), so this target is exact and has none of the
    denoising loss's irreducible error, while a model that reads the other object through the whole latent's
    statistics (GroupNorm, `bench_edit_paths`) or a swapped word's attention changes it. Unlike the consistency
    term of `pair_loss` it is unguided and not injected, so it cannot be met by making the caption matter less:
    the caption's words for the unedited regions are the same on both sides. Limitations: only the swaps of
    `edited_scene`; at high noise the boundary of the edited object is uncertain, which the one-pixel margin
    covers only in part."""
    idx, t, noise = draw(pairs, count, gen)
    latents = torch.cat([noised(pairs["source"][idx], t, noise, acp), noised(pairs["edited"][idx], t, noise, acp)])
    ids = torch.cat([pairs["source_ids"][idx], pairs["edited_ids"][idx]])  # [2P, 77]
    try:
        injector.mode = "plain"  # nothing recorded: the word losses read this step's maps of the main batch
        pred = unet(latents, torch.cat([t, t]), text_encoder(ids)[0]).sample  # [2P, 4, h, w]
    finally:
        injector.mode = None
    change = ((pred[count:] - pred[:count]) ** 2).mean(1, keepdim=True)  # [P, 1, h, w]
    return (change * pairs["outside"][idx]).sum((1, 2, 3)).mean()


def guided(uncond, cond):
    """Classifier-free guidance at pivot's default scale."""
    return uncond + GUIDANCE * (cond - uncond)
