#!/usr/bin/env python3
"""Which path carries a recolour to the *other* object: the swapped word's attention, or GroupNorm?

Two measurements on the first ``--scenes`` held-out two-object scenes of `bench_p2p_shapes` (the same scenes
and recolour targets):

- **attention**: the edited colour word's cross-attention map, averaged over a DDIM inversion (50 steps) and
  over the UNet layers at the latent's own side and at half of it, normalised over the pixels as
  Prompt-to-Prompt's maps are: the share on the edited object and on the other one. P2P injects these maps,
  so a word whose map lies on its own object cannot repaint the other through its attention.
- **groupnorm**: the captioned noise prediction of a perfect edit in latent space (the renderer's ground
  truth on the edited object, the source's latent elsewhere; the target caption) against the source's (the
  source caption), at t = 700, 400 and 150 with the same noise: the mean square change on the other object
  and on the edited one. Then again with every UNet GroupNorm using the statistics it computed on the source
  (``frozen``): GroupNorm normalises over all the pixels, so a change on one object shifts every pixel's
  features, and what freezing removes is what that path carries.

    python3 -m scripts.demo.bench_edit_paths --model /tmp/shapesS --scenes 20
"""
import json

import numpy as np
import torch

from scripts.demo.bench_decoder_locality import check_scene_args, edited_region, scene_parser
from scripts.demo.bench_p2p_shapes import inversion_maps, two_object_scenes
from scripts.demo.shapes_model import encode_image, region_masks, tokenize, word_slots

TIMESTEPS = (700, 400, 150)


class GroupNormStats:
    """Replaces the forward of every GroupNorm of a module: ``mode`` "plain" computes as usual, "record" also
    keeps each layer's statistics, "replay" normalises with the recorded ones instead of its input's."""

    def __init__(self, module):
        self.mode, self.stats = "plain", {}
        for name, norm in module.named_modules():
            if isinstance(norm, torch.nn.GroupNorm):
                norm.forward = self._forward(norm, name, norm.forward)

    def _forward(self, norm, name, plain):
        def forward(x):  # [B, C, ...]
            if self.mode == "plain":
                return plain(x)
            grouped = x.reshape(x.shape[0], norm.num_groups, -1)  # [B, G, C / G * pixels]
            if self.mode == "record":
                self.stats[name] = (grouped.mean(-1, keepdim=True), grouped.var(-1, unbiased=False, keepdim=True))
            mean, var = self.stats[name]
            y = ((grouped - mean) / torch.sqrt(var + norm.eps)).reshape(x.shape)
            if norm.affine:
                shape = (1, -1) + (1,) * (x.dim() - 2)
                y = y * norm.weight.view(shape) + norm.bias.view(shape)
            return y
        return forward


def colour_word_shares(pipe, recorder, scene, z, steps=50):
    """{side: (share on the edited object, share on the other)} of the edited colour word's inversion map (of
    the scene's latent ``z``), at the latent's own side and at half of it."""
    by_side = inversion_maps(pipe, recorder, z, scene["caption"], steps)
    side = max(by_side)  # the latent's own side
    pos, _ = word_slots(pipe.tokenizer, scene["caption"], scene["info"])
    k = scene["k"]
    masks = torch.from_numpy(region_masks(scene["info"], side)).float()  # [3, side, side]
    out = {}
    for n in (side, side // 2):
        cover = torch.nn.functional.adaptive_avg_pool2d(masks, n).flatten(1)  # [3, n * n]
        word = by_side[n][0][:, pos[2 * k]]  # [n * n]
        word = word / word.sum()
        out[n] = (float((word * cover[k]).sum()), float((word * cover[1 - k]).sum()))
    return out


def prediction_change(pipe, norms, scene, z, gen):
    """{mode: [(other, edited)] per timestep}: the mean square change of the captioned noise prediction (the
    scene's latent ``z``)."""
    acp = pipe.scheduler.alphas_cumprod
    side = z.shape[-1]
    edited = edited_region(scene, side)  # [1, 1, side, side]
    other = torch.from_numpy(region_masks(scene["info"], side)[1 - scene["k"]] > 0.5).float() * (1 - edited[0, 0])
    z_edit = z + (encode_image(pipe.vae, scene["recoloured"][0]) - z) * edited
    out = dict(plain=[], frozen=[])
    with torch.no_grad():
        source, target = (pipe.text_encoder(tokenize(pipe.tokenizer, [caption]))[0]
                          for caption in (scene["caption"], scene["targets"]["recolour"][0]))
        for t in TIMESTEPS:
            noise = torch.randn(z.shape, generator=gen)
            a = acp[t]
            x, x_edit = [a.sqrt() * v + (1 - a).sqrt() * noise for v in (z, z_edit)]
            step = torch.tensor([t])
            for mode, (first, second) in (("plain", ("plain", "plain")), ("frozen", ("record", "replay"))):
                norms.mode = first
                before = pipe.unet(x, step, source).sample
                norms.mode = second
                change = (pipe.unet(x_edit, step, target).sample - before).pow(2).mean(1)[0]  # [side, side]
                out[mode].append((float((change * other).sum() / other.sum().clamp_min(1)),
                                  float((change * edited[0, 0]).sum() / edited.sum())))
    norms.mode = "plain"
    return out


def main():
    args = scene_parser(__doc__).parse_args()
    check_scene_args(args, "model_index.json", "not a diffusers model folder")
    from diffusers import StableDiffusionPipeline
    from scripts.demo.shapes_losses import CrossAttentionRecorder
    pipe = StableDiffusionPipeline.from_pretrained(args.model, safety_checker=None, requires_safety_checker=False)
    recorder = CrossAttentionRecorder()
    recorder.install(pipe.unet)
    norms = GroupNormStats(pipe.unet)
    gen = torch.Generator().manual_seed(0)
    shares, changes = {}, dict(plain=[], frozen=[])
    for scene in two_object_scenes(args.scenes):
        row, z = dict(scene=scene["index"]), encode_image(pipe.vae, scene["image"])
        for n, (own, other) in colour_word_shares(pipe, recorder, scene, z).items():
            shares.setdefault(n, []).append((own, other))
            row[f"word_{n}x{n}"] = dict(edited=round(own, 3), other=round(other, 3))
        for mode, values in prediction_change(pipe, norms, scene, z, gen).items():
            changes[mode] += values
            row[mode] = [[round(v, 5) for v in pair] for pair in values]
        print(json.dumps(row), flush=True)
    for n, v in sorted(shares.items(), reverse=True):
        v = np.array(v)
        print(f"edited colour word's map at {n}x{n}: {v[:, 0].mean():.3f} on its object, {v[:, 1].mean():.3f} on "
              f"the other ({(v[:, 1] > 0.1).sum()} of {len(v)} scenes over 0.1)")
    for mode, v in changes.items():
        v = np.array(v)
        print(f"GroupNorm {mode:6}: prediction change (mean square) {v[:, 0].mean():.4f} on the other object, "
              f"{v[:, 1].mean():.4f} on the edited one (ratio {v[:, 0].mean() / v[:, 1].mean():.3f})")


if __name__ == "__main__":
    main()
