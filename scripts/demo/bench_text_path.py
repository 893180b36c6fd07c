#!/usr/bin/env python3
"""Which tokens carry a recolour? Null-text + Prompt-to-Prompt word swaps with the target's text embedding
cut down to some of its tokens.

In a causal text encoder every token after a swapped word changes with it. This script asks which of those
changes make the edit, and which of them repaint the other object. On the first ``--scenes`` held-out
two-object scenes of `bench_p2p_shapes` (the same scenes and recolour targets), each scene is inverted once
by the Python reference (`scripts/reference/null_text.py`, 50 steps × up to 10 inner iterations, guidance
7.5) and its recolour rendered by the reference P2P controller (word swap, cross-attention replaced for 80%
of the steps, self-attention for 40%) three times, with the target prompt's embedding rows:

* ``p2p``: all of them (what P2P does);
* ``phrase``: the source's rows but for the swapped colour word and the word after it (its shape);
* ``word``: the source's rows but for the swapped colour word.

Per variant: colour success (the mean colour inside the edited object's ground-truth mask is nearest to the
target's among the world's colours) and the other object's PSNR inside its mask against the reconstruction
(the source rendered in the same run); for ``p2p`` also ``p2p_local_other_db``, the other object's PSNR when
only the edited object's latent (its coverage grown by one latent pixel) takes the edit's, the rest the
reconstruction's: what the VAE decoder alone carries across. Writes ``--out`` (JSON lines, one per scene, then a summary) and
prints the summary.

    python3 -m scripts.demo.bench_text_path --model /tmp/shapesT --scenes 20 --out /tmp/text-path.jsonl
"""
import json
import os

import numpy as np
import torch

from scripts.demo import shapes_world as world
from scripts.demo.bench_p2p_shapes import psnr, two_object_scenes
from scripts.demo.bench_decoder_locality import check_scene_args, edited_region, scene_parser
from scripts.demo.shapes_model import decode_image, encode_image, tokenize

VARIANTS = ("p2p", "phrase", "word")


def load(model):
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer
    return dict(
        tok=CLIPTokenizer.from_pretrained(os.path.join(model, "tokenizer")),
        te=CLIPTextModel.from_pretrained(os.path.join(model, "text_encoder")).eval(),
        unet=UNet2DConditionModel.from_pretrained(os.path.join(model, "unet")).eval().requires_grad_(False),
        vae=AutoencoderKL.from_pretrained(os.path.join(model, "vae")).eval(),
        scheduler=DDIMScheduler.from_pretrained(os.path.join(model, "scheduler")))


def measure(net, scene):
    """One scene: invert, then the three renderings of its recolour; returns the scene's row."""
    from diffusers.models.attention_processor import AttnProcessor
    from scripts.reference.null_text import Reference
    from scripts.reference.p2p import Controller, edit, word_token_positions

    tok, te, unet, vae = net["tok"], net["te"], net["unet"], net["vae"]

    def embed(texts):
        with torch.no_grad():
            return te(tokenize(tok, texts)).last_hidden_state

    source, target = scene["caption"], scene["targets"]["recolour"][0]
    z0 = encode_image(vae, scene["image"])
    unet.set_attn_processor(AttnProcessor())  # the previous scene's controller is still installed
    ref = Reference(unet, net["scheduler"], 50)
    cond = embed([source])
    latents = ref.ddim_inversion(z0, cond)
    nulls, _, _ = ref.null_text_optimization(latents, cond, embed([""]), inner_steps=10)

    full = embed([source, target])  # [2, 77, D]
    word = full.clone()
    word[1] = full[0]
    positions = word_token_positions(target, scene["colour"], tok)
    word[1, positions] = full[1, positions]
    phrase = word.clone()
    after = [p + 1 for p in positions]
    phrase[1, after] = full[1, after]

    k = scene["k"]
    other = scene["info"]["objects"][1 - k]["mask"] > 0.5
    edited = scene["recoloured"][2]["objects"][k]["mask"] > 0.5
    row = dict(scene=scene["index"], source=source, target=target)
    for name, context in zip(VARIANTS, (full, phrase, word)):
        controller = Controller([source, target], 50, tok, "replace", cross_replace=0.8, self_replace=0.4)
        z = edit(unet, net["scheduler"], latents[-1], context, nulls, controller)
        reconstruction, result = decode_image(vae, z[:1]), decode_image(vae, z[1:])
        row[f"{name}_colour"] = world.nearest_colour(result[edited].mean(0)) == scene["colour"]
        row[f"{name}_other_db"] = round(psnr(result, reconstruction, other), 2)
        if name == "p2p":  # the edit's latent on the edited object only: what the decoder alone repaints
            region = edited_region(scene, z.shape[-1])
            local = decode_image(vae, z[:1] * (1 - region) + z[1:] * region)
            row["p2p_local_other_db"] = round(psnr(local, reconstruction, other), 2)
    return row


def summary(rows):
    out = {}
    for name in VARIANTS:
        db = [r[f"{name}_other_db"] for r in rows]
        out[name] = dict(colour=sum(r[f"{name}_colour"] for r in rows) / len(rows), other_mean_db=float(np.mean(db)),
                         other_median_db=float(np.median(db)), other_below_16db=sum(v < 16 for v in db))
    return out


def main():
    ap = scene_parser(__doc__)
    ap.add_argument("--out", default="/tmp/text-path.jsonl")
    args = ap.parse_args()
    check_scene_args(args, "model_index.json", "not a diffusers model folder (no model_index.json)")
    net = load(args.model)
    rows = []
    with open(args.out, "w") as f:
        for scene in two_object_scenes(args.scenes):
            rows.append(measure(net, scene))
            f.write(json.dumps(rows[-1]) + "\n")
            f.flush()
            print(json.dumps(rows[-1]), flush=True)
        result = summary(rows)
        f.write(json.dumps(dict(summary=result, model=args.model, scenes=len(rows))) + "\n")
    print(f"{'variant':8} {'colour':>7} {'other object mean / median (dB)':>33} {'< 16 dB':>8}")
    for name, r in result.items():
        print(f"{name:8} {r['colour']:7.0%} {r['other_mean_db']:15.1f} / {r['other_median_db']:<15.1f} "
              f"{r['other_below_16db']:8d}")


if __name__ == "__main__":
    main()
