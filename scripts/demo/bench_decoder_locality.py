#!/usr/bin/env python3
"""Is a shapes model's VAE decoder local? The ground truth of a recolour, put into the source's latent on the
edited object only, decoded: does the other object keep its pixels?

A Prompt-to-Prompt edit that is perfect in latent space changes the latent on the edited object and nowhere
else. On the first ``--scenes`` held-out two-object scenes of `bench_p2p_shapes` (the same scenes and recolour
targets), this script encodes the scene and the renderer's ground truth of its recolour, puts the ground
truth's latent on the edited object's coverage (grown by one latent pixel; `finetune_decoder.latent_region`)
and the source's elsewhere, decodes, and measures the other object's PSNR inside its mask against the
source's own reconstruction. ``x2`` and ``x4`` scale that latent change by 2 and 4 (guidance 7.5 overshoots
the change). A local decoder keeps the other object at its reconstruction's PSNR (~32 dB) in all three.

    python3 -m scripts.demo.bench_decoder_locality --model /tmp/shapesX --scenes 20
"""
import argparse
import json
import os

import numpy as np
import torch

from scripts.demo.bench_p2p_shapes import psnr, two_object_scenes
from scripts.demo.finetune_decoder import latent_region
from scripts.demo.shapes_model import decode_image, encode_image

SCALES = (1, 2, 4)


def scene_parser(doc):
    """The argument parser of a per-scene benchmark of a model (``doc`` its module docstring): ``--model``,
    ``--scenes`` (20) and ``--threads`` (2)."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=doc)
    ap.add_argument("--model", required=True, help="a shapes model folder (diffusers layout)")
    ap.add_argument("--scenes", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    return ap


def check_scene_args(args, needs, missing):
    """One-line exits for ``--scenes`` below 1 and for a model folder without the file ``needs`` (``missing``
    says what the folder then is not); sets torch's threads."""
    if args.scenes < 1:
        raise SystemExit("--scenes must be at least 1")
    if not os.path.isfile(os.path.join(args.model, needs)):
        raise SystemExit(f"{args.model}: {missing}")
    torch.set_num_threads(args.threads)


def edited_region(scene, side):
    """[1, 1, side, side] 0/1: the latent pixels of a `bench_p2p_shapes` scene's recoloured object (its coverage
    before and after the edit, grown by one latent pixel)."""
    k = scene["k"]
    cover = np.maximum(scene["info"]["objects"][k]["mask"], scene["recoloured"][2]["objects"][k]["mask"])
    return latent_region(cover[None], side)


def main():
    args = scene_parser(__doc__).parse_args()
    check_scene_args(args, os.path.join("vae", "config.json"), "not a diffusers model folder with a VAE")
    from diffusers import AutoencoderKL
    vae = AutoencoderKL.from_pretrained(args.model, subfolder="vae").eval()

    rows = []
    for scene in two_object_scenes(args.scenes):
        k = scene["k"]
        other = scene["info"]["objects"][1 - k]["mask"] > 0.5
        z, z_edit = encode_image(vae, scene["image"]), encode_image(vae, scene["recoloured"][0])
        region = edited_region(scene, z.shape[-1])
        reconstruction = decode_image(vae, z)
        row = dict(scene=scene["index"], reconstruction_db=round(psnr(reconstruction, np.array(scene["image"]),
                                                                      other), 2))
        for s in SCALES:
            row[f"x{s}_other_db"] = round(psnr(decode_image(vae, z + s * (z_edit - z) * region), reconstruction, other), 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"{'latent change':14} {'other object mean / median (dB)':>32} {'< 28 dB':>8}")
    for s in SCALES:
        v = [r[f"x{s}_other_db"] for r in rows]
        print(f"{'x' + str(s):14} {np.mean(v):15.1f} / {np.median(v):<14.1f} {sum(x < 28 for x in v):8d}")


if __name__ == "__main__":
    main()
