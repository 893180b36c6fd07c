#!/usr/bin/env python3
"""Write a tiny random-weight Stable Diffusion folder for `pivot info` demos.

Output: ``samples/models/tiny-random/`` (diffusers layout: ``model_index.json``,
``text_encoder/``, ``unet/``, ``vae/``, ``scheduler/``; fp16 safetensors) plus a
``README.md`` saying the weights are random and made by this script, and the
tiny 1000-token test tokenizer of the ``sd1-tiny`` fixture (so prompts work), and
``samples/red-circle.png``, the photo the README's first command edits.

Architectures (``--arch``):

* ``mini`` (default, ~0.9 MB, fits the 1 MB budget for committed samples): the
  block layout of the ``sd1-tiny`` test fixture (quick_gelu CLIP 32 wide with
  4 heads, 3 layers, vocab 1000; UNet CrossAttnDown/Down + Up/CrossAttnUp,
  VAE 2 levels) at half width: UNet ``block_out_channels [16, 32]``,
  ``norm_num_groups 8``, 4 heads, 1 layer per block; VAE ``[16, 32]``, 8 groups.
* ``sd1-tiny``: exactly the ``sd1-tiny`` fixture architecture (~3.5 MB in fp16).

Seed 42 (the fixtures use seeds 1-3), norms and constant parameters perturbed
by ``0.02*randn`` like the fixtures.  Deterministic.  Run from the package root:

    python3 scripts/make_sample_model.py [--arch mini|sd1-tiny] [--out samples/models/tiny-random]
"""

import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

import make_fixtures as fx  # noqa: E402  (sets torch threads to 2, quiets the libraries)

torch.set_num_threads(2)

ARCHS = {
    "sd1-tiny": dict(clip=fx.CLIP_SD1, unet=fx.UNET_SD1, vae=fx.VAE_SD1),
    "mini": dict(
        clip=fx.CLIP_SD1,
        unet=dict(fx.UNET_SD1, block_out_channels=[16, 32], norm_num_groups=8,
                  attention_head_dim=4, layers_per_block=1),
        vae=dict(fx.VAE_SD1, block_out_channels=[16, 32], norm_num_groups=8),
    ),
}

README = """# tiny-random

A Stable Diffusion 1.x-shaped model folder (diffusers layout) with **random weights**, made by
`scripts/make_sample_model.py --arch {arch}` (seed {seed}, fp16 safetensors). It produces noise, not
pictures: it exists so that `pivot info`, loading and pipeline plumbing can be demonstrated and tested
without downloading a real checkpoint.

- text encoder: CLIPTextModel, hidden {clip_hidden}, {clip_heads} heads, {clip_layers} layers,
  `{clip_act}`, vocabulary {vocab}; `tokenizer/` is the tiny 1000-token tokenizer of the test fixtures
- UNet: `block_out_channels` {unet_ch}, {unet_heads} heads, `layers_per_block` {unet_lpb},
  cross-attention dim {xdim}
- VAE: `block_out_channels` {vae_ch} (downsampling factor {factor}), {latent} latent channels
- scheduler: SD 1.5's `DDIMScheduler` config

Regenerate with `python3 scripts/make_sample_model.py` from the package root.
"""


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(fx.ROOT, "samples", "models", "tiny-random"))
    ap.add_argument("--arch", default="mini", choices=sorted(ARCHS))
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()

    arch = ARCHS[args.arch]
    dtype = torch.float16
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out)

    fx.write_model_index(args.out)
    fx.write_scheduler(args.out)
    torch.manual_seed(args.seed)
    te = fx.round_through_(fx.build_text_encoder(arch["clip"]), dtype)
    fx.save_component(te, os.path.join(args.out, "text_encoder"), dtype)
    del te
    torch.manual_seed(args.seed * 1000 + 1)
    unet = fx.round_through_(fx.build_unet(arch["unet"]), dtype)
    fx.save_component(unet, os.path.join(args.out, "unet"), dtype)
    del unet
    torch.manual_seed(args.seed * 1000 + 2)
    vae = fx.round_through_(fx.build_vae(arch["vae"]), dtype)
    fx.save_component(vae, os.path.join(args.out, "vae"), dtype)
    del vae

    tokenizer = os.path.join(fx.ROOT, "Tests/PivotModelsTests/Fixtures/sd1-tiny/model/tokenizer")
    shutil.copytree(tokenizer, os.path.join(args.out, "tokenizer"), dirs_exist_ok=True)
    y, x = np.mgrid[0:64, 0:64]
    img = np.full((64, 64, 3), 128, np.uint8)
    img[((x - 27) ** 2 + (y - 34) ** 2) <= 17 ** 2] = (220, 30, 40)
    Image.fromarray(img).save(os.path.join(fx.ROOT, "samples/red-circle.png"))

    c, u, v = arch["clip"], arch["unet"], arch["vae"]
    with open(os.path.join(args.out, "README.md"), "w") as f:
        f.write(README.format(
            arch=args.arch, seed=args.seed, clip_hidden=c["hidden_size"], clip_heads=c["num_attention_heads"],
            clip_layers=c["num_hidden_layers"], clip_act=c["hidden_act"], vocab=c["vocab_size"],
            unet_ch=u["block_out_channels"], unet_heads=u["attention_head_dim"],
            unet_lpb=u["layers_per_block"], xdim=u["cross_attention_dim"], vae_ch=v["block_out_channels"],
            factor=2 ** (len(v["block_out_channels"]) - 1), latent=v["latent_channels"]))
    print(f"wrote {args.out}: {fx.folder_size(args.out) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
