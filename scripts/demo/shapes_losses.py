"""The word losses of the shapes demo model: where each word's cross-attention goes, what each pixel reads,
and what a swapped word may change.

`train_shapes` (from scratch) and `finetune_shapes` (from a trained model) share them; `bench_p2p_shapes`
reads attention with the same recorder. All act on the cross-attention probabilities a
`CrossAttentionRecorder` keeps (per layer [B, N, 77], averaged over heads) and on the supervised words of a
caption: up to `SLOTS` colour, shape and background words, their token positions ``pos`` [B, SLOTS] (-1
unused), their regions ``reg`` [B, SLOTS] (0, 1: objects, 2: background) and the regions' coverage ``masks``
[B, 3, 16, 16]; ``valid`` [B, SLOTS] marks the words of rows that kept their caption.

* token loss (TokenCompose's L_token, Wang et al., CVPR 2024): (1 - the share of a word's mass inside its
  region)^2, so a word's map lies on its object;
* function mass: the mass on tokens other than `<|startoftext|>` and the supervised words, which carry the
  object before them in a causal encoder;
* foreign mass: the attention each pixel gives to another region's words, so a word swapped in one object's
  phrase reaches no pixel of the other object;
* own shortfall: how far a pixel's attention to its own region's words falls below a floor, so P2P's
  reweighting (which scales that attention) and a swapped word's value reach the pixel;
* leakage: the relative change of the other supervised words' embeddings when a word is swapped;
* edit locality: the change of the noise prediction outside a swapped word's region;
* self-attention locality: the self-attention mass a region's pixels give to pixels outside it;
* calibrated guidance: a target that makes guidance 7.5 act as a smaller scale;
* reweighting: with one object's colour word's attention scaled by w (P2P's equalizer), the model denoises
  towards the scene with that object's colour `reweighted_saturation(w)` times as far from grey.
"""
import math
from typing import NamedTuple

import torch

from scripts.demo import shapes_world as world

GUIDANCE = 7.5  # pivot's default guidance scale


class CrossAttentionRecorder:
    """An attention processor for the cross-attention layers that keeps their probabilities, and with
    ``self_attention`` those of the self-attention layers too.

    Installed on every `attn2` of the UNet (and every `attn1` with ``self_attention``; `install`); while
    ``recording`` each cross-attention call appends its probabilities, averaged over heads, [B, N, 77], to
    ``maps``, and each self-attention call its [B, N, N] to ``self_maps``. With an ``equalizer`` [B, 77] the
    cross-attention probabilities are multiplied by it per token and not renormalised, as Prompt-to-Prompt's
    reweighting does. The arithmetic is diffusers' `AttnProcessor` (no attention mask: SD passes none).
    """

    def __init__(self, self_attention=False):
        self.maps = []
        self.self_maps = []
        self.sides = []
        self.last = []
        self.self_last = []
        self.recording = False
        self.equalizer = None
        self.self_attention = self_attention

    def handles(self, name):
        """Whether the processor ``name`` (diffusers' `attn_processors` key) is this recorder's."""
        return name.endswith("attn2.processor") or (self.self_attention and name.endswith("attn1.processor"))

    def install(self, unet):
        from diffusers.models.attention_processor import AttnProcessor2_0
        unet.set_attn_processor({name: (self if self.handles(name) else AttnProcessor2_0())
                                 for name in unet.attn_processors})

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kw):
        b, n, _ = hidden_states.shape
        cross = encoder_hidden_states is not None

        def adjust(probs):  # [B * heads, N, M]
            if cross and self.equalizer is not None:
                probs = probs * self.equalizer.repeat_interleave(attn.heads, 0)[:, None, :].to(probs)
            if self.recording:
                (self.maps if cross else self.self_maps).append(probs.view(b, attn.heads, n, -1).mean(1))
            return probs

        return attend(attn, hidden_states, encoder_hidden_states, adjust)


def attend(attn, hidden_states, encoder_hidden_states, adjust):
    """One attention layer with its probabilities [B * heads, N, M] passed through ``adjust`` (which may keep,
    scale or replace them) before they weight the values: diffusers' `AttnProcessor` arithmetic, no attention
    mask (SD passes none)."""
    context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
    query = attn.head_to_batch_dim(attn.to_q(hidden_states))
    key = attn.head_to_batch_dim(attn.to_k(context))
    value = attn.head_to_batch_dim(attn.to_v(context))
    probs = adjust(attn.get_attention_scores(query, key, None))
    out = attn.batch_to_head_dim(torch.bmm(probs, value))
    out = attn.to_out[1](attn.to_out[0](out))
    return out / attn.rescale_output_factor


def word_attention(maps, pos, reg, masks):
    """Per cross-attention layer, each supervised word's attention and its region's coverage at every pixel:
    pairs ([B, N, SLOTS], [B, N, SLOTS]). ``masks`` are average-pooled to each layer's side (8x8 inside)."""
    index = pos.clamp(min=0)
    for m in maps:
        bsz, n, _ = m.shape
        side = int(round(math.sqrt(n)))
        region = masks if side == masks.shape[-1] else torch.nn.functional.adaptive_avg_pool2d(masks, side)
        region = region.flatten(2)  # [B, 3, N]
        a = torch.gather(m, 2, index[:, None, :].expand(bsz, n, index.shape[1]))  # [B, N, SLOTS]
        w = torch.gather(region, 1, reg[:, :, None].expand(-1, -1, n)).transpose(1, 2)  # [B, N, SLOTS]
        yield a, w


def token_inside(maps, pos, reg, masks):
    """Per layer, the share of each supervised word's cross-attention mass inside its region: [layers, B, SLOTS]."""
    return torch.stack([(a * w).sum(1) / a.sum(1).clamp_min(1e-12) for a, w in word_attention(maps, pos, reg, masks)])


def token_loss(inside, valid):
    """TokenCompose's L_token: the mean over valid words and layers of (1 - share inside)^2."""
    v = valid.float()[None]
    return (((1 - inside) ** 2) * v).sum() / (v.sum() * inside.shape[0]).clamp_min(1)


def noised(z0, t, noise, acp):
    """The forward process at timesteps ``t``: sqrt(acp) z0 + sqrt(1 - acp) noise."""
    a = acp[t].view(-1, 1, 1, 1)
    return a.sqrt() * z0 + (1 - a).sqrt() * noise


def min_snr_mse(pred, target, t, acp, gamma):
    """Per-sample MSE of ``pred`` against ``target`` [B, ...], with ``gamma`` > 0 each sample weighted
    min(SNR, gamma) / SNR (Min-SNR, Hang et al. 2023): [B]."""
    per_sample = ((pred.float() - target) ** 2).flatten(1).mean(1)
    if gamma > 0:
        snr = acp[t] / (1 - acp[t])
        per_sample = per_sample * snr.clamp(max=gamma) / snr
    return per_sample


def function_mass(maps, ids, content_pos):
    """Mean over layers, pixels and captions of the attention mass on tokens that are neither
    `<|startoftext|>` nor a supervised word: [B] per caption, averaged over layers."""
    bsz = ids.shape[0]
    keep = torch.zeros(bsz, ids.shape[1], dtype=torch.bool, device=ids.device)
    keep[:, 0] = True
    rows = torch.arange(bsz, device=ids.device)[:, None].expand_as(content_pos)
    ok = content_pos >= 0
    keep[rows[ok], content_pos[ok]] = True
    total = 0
    for m in maps:  # [B, N, 77]
        total = total + (m * (~keep)[:, None, :].float()).sum(-1).mean(-1)
    return total / len(maps)


def foreign_mass(maps, pos, reg, masks, valid):
    """Mean over layers and pixels of the attention each pixel gives to supervised words of *other* regions
    (another object's colour or shape word, or the background's, from inside an object): [B]."""
    total = 0
    for a, own in word_attention(maps, pos, reg, masks):  # [B, N, SLOTS] each
        total = total + (a * (1 - own) * valid[:, None, :].float()).sum(-1).mean(-1)
    return total / len(maps)


def self_foreign_mass(self_maps, masks):
    """Mean over self-attention layers of the self-attention mass a region's pixels (object 0, object 1, the
    background; coverage ``masks`` [B, 3, h, w], block-averaged to each layer's side) give to pixels outside
    that region, each region present weighted alike: [B]. In this world objects are independent of each
    other, so a pixel of one object has nothing to read at another; when it does, an edit of one object
    reaches the other through self-attention (P2P injects self-attention maps for only the first steps)."""
    total = 0
    for m in self_maps:  # [B, N, N]
        side = int(round(math.sqrt(m.shape[1])))
        cover = masks if side == masks.shape[-1] else torch.nn.functional.adaptive_avg_pool2d(masks, side)
        cover = cover.flatten(2).to(m)  # [B, 3, N]
        outside = torch.einsum("bij,brj->bri", m, 1 - cover)  # [B, 3, N]: mass of query i outside region r
        area = cover.sum(-1)  # [B, 3]
        per_region = (cover * outside).sum(-1) / area.clamp_min(1e-6)
        present = (area >= 0.5).float()
        total = total + (per_region * present).sum(1) / present.sum(1).clamp_min(1)
    return total / max(len(self_maps), 1)


def own_shortfall(maps, pos, reg, masks, valid, floor):
    """Mean over layers of how far each pixel's attention to its own region's words falls short of ``floor``:
    coverage x relu(floor - mass)^2 summed over pixels and words, over the summed coverage: [B].
    Without it `<|startoftext|>` takes ~95% of an object pixel's attention and its colour word < 1%, so P2P's
    reweighting (which scales that < 1%) changes nothing and a swapped word's value barely reaches the pixel."""
    total = 0
    for a, own in word_attention(maps, pos, reg, masks):  # [B, N, SLOTS] each
        w = own * valid[:, None, :].float()
        total = total + (w * torch.relu(floor - a) ** 2).sum((1, 2)) / w.sum((1, 2)).clamp_min(1e-6)
    return total / len(maps)


def captioned_mean(per_row, captioned):
    """The mean of ``per_row`` [B] over the rows that kept their caption (0 when none did)."""
    c = captioned.float()
    return (per_row * c).sum() / c.sum().clamp_min(1)


def word_kinds(tokenizer):
    """Token ids of the world's colour, shape and background words: {kind: [N] int64}."""
    def ids(words):
        return torch.tensor([tokenizer(w).input_ids[1] for w in words])
    return dict(colour=ids(world.COLOURS), shape=ids(world.SHAPES), background=ids(world.BACKGROUNDS))


def swapped_words(ids, pos, valid, kinds, gen):
    """Each captioned row of ``ids`` [B, 77] with one supervised word (a random valid slot of ``pos``)
    swapped for another word of its kind; [B, 77] the positions whose embedding must not change: the other
    supervised words (the words pixels read) but, after a swapped colour word, the word it describes; [B, 77]
    the other tokens after the swapped phrase (function words, end and padding: in a model whose attention
    rests on them they carry a swap to every pixel that reads them); and [B] the slot swapped (-1 in rows
    without a caption)."""
    out = ids.clone()
    keep = torch.zeros(ids.shape, dtype=torch.bool)
    rest = torch.zeros(ids.shape, dtype=torch.bool)
    slot = torch.full((ids.shape[0],), -1, dtype=torch.long)
    rows = valid.any(1).nonzero().flatten().tolist()
    for b in rows:
        slots = valid[b].nonzero().flatten()
        j = int(slots[torch.randint(len(slots), (1,), generator=gen)])
        p = int(pos[b, j])
        token = ids[b, p]
        kind = next(k for k, v in kinds.items() if bool((v == token).any()))
        others = kinds[kind][kinds[kind] != token]
        out[b, p] = others[torch.randint(len(others), (1,), generator=gen)]
        phrase_end = p if kind == "shape" else p + 1  # a colour or background word describes the next one
        keep[b, pos[b, slots]] = True
        keep[b, p:phrase_end + 1] = False
        rest[b, phrase_end + 1:] = True
        rest[b, pos[b, slots]] = False
        slot[b] = j
    return out, keep, rest, slot


class Denoised(NamedTuple):
    """One training pass of the denoising loss: the noised latents ``zt`` [B, 4, h, w], the caption
    embeddings ``context`` [B, 77, D] and the noise prediction ``pred`` [B, 4, h, w] (all with their graph),
    which the leak and locality losses reuse instead of running the text encoder and the UNet again."""
    zt: torch.Tensor
    context: torch.Tensor
    pred: torch.Tensor


def leakage(context, swapped_context, keep, rows):
    """Mean over ``rows`` and their ``keep`` positions of each embedding's relative squared change from the
    caption's ``context`` to the ``swapped_context`` [B, 77, D]: 0 when a swapped word reaches no token but its
    own phrase. Per position, so that the few words the pixels read are not outweighed by the many tokens they
    do not."""
    rel = ((context - swapped_context) ** 2).sum(-1) / (context ** 2).sum(-1).clamp_min(1e-12)  # [B, 77]
    k = keep.float()
    per_row = (rel * k).sum(1) / k.sum(1).clamp_min(1)
    return per_row[rows].mean() if rows.any() else per_row.sum() * 0


def locality(unet, denoised, t, swapped_context, region, masks, rows, dilation=1):
    """The edit-locality loss: mean over ``rows`` of the squared change of the noise prediction of the pass
    ``denoised`` outside the ``region`` [B] of a swapped word (its coverage in ``masks`` [B, 3, h', w'] grown
    by ``dilation`` latent pixels) when the caption's embeddings become ``swapped_context``, the pass's own
    prediction being the fixed target. Each other region (the other object, the background) counts alike, so
    a small object is not outweighed by the background. What Prompt-to-Prompt needs of a model: a word swapped
    in one object's phrase changes that object only."""
    zt = denoised.zt
    if not rows.any():
        return zt.sum() * 0
    zt, t, region, source = zt[rows], t[rows], region[rows], denoised.pred[rows].detach()
    cover = torch.nn.functional.interpolate(masks[rows].float(), size=zt.shape[-2:], mode="area")  # [R, 3, h, w]
    edited = cover[torch.arange(len(zt)), region][:, None]  # [R, 1, h, w]
    grown = torch.nn.functional.max_pool2d(edited, 2 * dilation + 1, 1, dilation)
    others = (cover > 0.5).float() * (grown < 0.5).float()  # [R, 3, h, w]: each region's pixels kept
    others[torch.arange(len(zt)), region] = 0
    change = ((unet(zt, t, swapped_context[rows]).sample - source) ** 2).mean(1, keepdim=True)  # [R, 1, h, w]
    return (change * regions_alike(others)).sum((1, 2, 3)).mean()


def regions_alike(regions):
    """Pixel weights [R, 1, h, w] that give each region of ``regions`` [R, K, h, w] (0/1 masks) the same total
    and sum to 1 over the regions present (0 where none is): a weighted sum is then the mean over the regions
    of each region's mean, so a small object is not outweighed by the background."""
    area = regions.sum((2, 3), keepdim=True)  # [R, K, 1, 1]
    present = (area > 0).float()
    return (regions / area.clamp_min(1)).sum(1, keepdim=True) / present.sum(1, keepdim=True).clamp_min(1)


@torch.no_grad()
def calibrated_target(unet, text_encoder, z0, t, noise, acp, empty, captioned, scale):
    """What a captioned row's prediction regresses to so that guidance w acts as w * ``scale`` does on a plain
    model: eps_u + scale (eps - eps_u), with eps_u the model's own (detached) prediction under the empty prompt;
    rows without a caption keep ``noise``. Its minimiser is (1 - scale) eps_u + scale E[eps | x_t, c]."""
    zt = noised(z0, t, noise, acp)
    context = text_encoder(empty[None].expand(z0.shape[0], -1).to(z0.device))[0]
    eps_u = unet(zt, t, context).sample.float()
    target = eps_u + scale * (noise - eps_u)
    return torch.where(captioned.view(-1, 1, 1, 1), target, noise)


# The options of `WordLosses`, as argparse destinations; a training command must repeat those that differ.
OPTIONS = ("function_loss", "foreign_loss", "own_loss", "own_mass", "own_max_t", "leak_loss", "function_leak_loss",
           "locality_loss", "locality_rows", "self_locality_loss")


def add_arguments(ap, function_loss=0.0, foreign_loss=0.0, own_loss=0.0, leak_loss=0.0, locality_loss=0.0,
                  self_locality_loss=0.0):
    """Adds the options of `WordLosses` to an argparse parser, with these default weights."""
    ap.add_argument("--function-loss", type=float, default=function_loss,
                    help="weight of the attention mass on tokens other than <|startoftext|> and the "
                    "colour, shape and background words")
    ap.add_argument("--foreign-loss", type=float, default=foreign_loss,
                    help="weight of the attention each pixel gives to another region's words")
    ap.add_argument("--own-loss", type=float, default=own_loss,
                    help="weight of the shortfall of a pixel's attention to its own region's words below "
                    "--own-mass (at timesteps below --own-max-t)")
    ap.add_argument("--own-mass", type=float, default=0.2, help="the attention each own word should get at least")
    ap.add_argument("--own-max-t", type=int, default=800, help="the own loss applies at timesteps below this")
    ap.add_argument("--leak-loss", type=float, default=leak_loss,
                    help="weight of the phrase-locality loss: swapping a colour, shape or background word may "
                    "change that word's embedding and the next word's, no other caption token's")
    ap.add_argument("--function-leak-loss", type=float, default=0.0,
                    help="weight of the leak loss on the other tokens after a swapped phrase (function words, end "
                    "and padding): they may not carry the swap either, so the attention a model gives them "
                    "repaints nothing")
    ap.add_argument("--locality-loss", type=float, default=locality_loss,
                    help="weight of the edit-locality loss: swapping a word may change the noise prediction "
                    "on its own region (grown by one latent pixel), nowhere else")
    ap.add_argument("--locality-rows", type=int, default=8, help="rows of a batch the locality loss edits")
    ap.add_argument("--self-locality-loss", type=float, default=self_locality_loss,
                    help="weight of the self-attention mass a region's pixels give to pixels outside their region "
                    "(an object's pixels to the other object or the background, and the background's to the objects)")


class WordLosses:
    """The weighted sum of the function, foreign, own and leak losses of one training pass (the options of
    `add_arguments`, read from ``args``); the token loss stays with the diffusion loss that records the maps."""

    def __init__(self, args, tokenizer):
        for key in OPTIONS:
            setattr(self, key, getattr(args, key))
        self.kinds = word_kinds(tokenizer)

    @property
    def active(self):
        return any(w > 0 for w in (self.function_loss, self.foreign_loss, self.own_loss, self.leak_loss,
                                   self.function_leak_loss, self.locality_loss, self.self_locality_loss))

    def __call__(self, maps, text_encoder, ids, t, words, gen, unet=None, denoised=None, self_maps=None):
        """(weighted total, {name: value}) for a batch whose cross-attention ``maps`` (and self-attention
        ``self_maps``, needed by the self-locality loss) were recorded in the pass ``denoised`` (a `Denoised`,
        needed by the leak and locality losses); ``gen`` draws their swapped words, and the locality loss
        denoises the swapped captions with ``unet``."""
        pos, reg, masks, valid = words
        masks = masks.float()
        captioned = valid.any(1)
        zero = torch.zeros((), device=ids.device)
        values = dict(function=zero, foreign=zero, own=zero, leak=zero, function_leak=zero, locality=zero,
                      self_locality=zero)
        total = zero
        if self.function_loss > 0:
            values["function"] = captioned_mean(function_mass(maps, ids, pos), captioned)
            total = total + self.function_loss * values["function"]
        if self.foreign_loss > 0:
            values["foreign"] = captioned_mean(foreign_mass(maps, pos, reg, masks, valid), captioned)
            total = total + self.foreign_loss * values["foreign"]
        if self.own_loss > 0:
            values["own"] = captioned_mean(own_shortfall(maps, pos, reg, masks, valid, self.own_mass),
                                           captioned & (t < self.own_max_t))
            total = total + self.own_loss * values["own"]
        if self.leak_loss > 0 or self.function_leak_loss > 0 or self.locality_loss > 0:
            swapped, keep, rest, slot = swapped_words(ids.cpu(), pos.cpu(), valid.cpu(), self.kinds, gen)
            swapped, keep, rest, slot = (x.to(ids.device) for x in (swapped, keep, rest, slot))
            swapped_context = text_encoder(swapped)[0]  # [B, 77, D]
        if self.leak_loss > 0:
            values["leak"] = leakage(denoised.context, swapped_context, keep, captioned)
            total = total + self.leak_loss * values["leak"]
        if self.function_leak_loss > 0:
            values["function_leak"] = leakage(denoised.context, swapped_context, rest, captioned)
            total = total + self.function_leak_loss * values["function_leak"]
        if self.locality_loss > 0:
            rows = captioned & (torch.cumsum(captioned.long(), 0) <= self.locality_rows)
            region = reg.gather(1, slot.clamp_min(0)[:, None])[:, 0]
            values["locality"] = locality(unet, denoised, t, swapped_context, region, masks, rows)
            total = total + self.locality_loss * values["locality"]
        if self.self_locality_loss > 0:
            values["self_locality"] = self_foreign_mass(self_maps, masks).mean()
            total = total + self.self_locality_loss * values["self_locality"]
        return total, {k: float(v) for k, v in values.items()}


def reweighted_saturation(weight):
    """The saturation scale (`shapes_world.saturated`) the reweighting loss pairs with a colour word's
    attention weight: w^0.3, so 0.5 -> 0.81 and 2 -> 1.23 (guidance then amplifies the difference)."""
    return weight ** 0.3


REWEIGHTS = (0.5, 2.0)


def reweighted_scene(seed):
    """The reweighting example of scene ``seed``: (caption, the variant image, token position of the
    reweighted colour word, weight). The object (``seed`` mod its objects) and the weight (alternating over
    ``seed // 2``) are fixed by the seed."""
    _, caption, info = world.render(int(seed))
    k = int(seed) % len(info["objects"])
    weight = REWEIGHTS[(int(seed) // 2) % len(REWEIGHTS)]
    image, _, _ = world.render_variant(info, index=k, saturation=reweighted_saturation(weight))
    return caption, image, 2 + 4 * k, weight  # the colour word is word 1 + 4k, token 2 + 4k
