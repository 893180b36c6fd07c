#!/usr/bin/env python3
"""Write full-size (SD 1.5 shaped) parity inputs and reference outputs.

Same convention as the test fixtures: ``<component>.in.safetensors`` and
``<component>.out.safetensors`` in ``--out``, fp32 tensors except ids/timestep:

* ``text-encoder``: in ``input_ids`` int64 [1,77] (random ids below the vocab
  size, seed 0) -> out ``last_hidden_state`` [1,77,D];
* ``unet``: in ``sample`` [1,4,h,w] randn, ``timestep`` int64 scalar 500,
  ``encoder_hidden_states`` = the text encoder output above -> out ``out``;
* ``vae-encode``: in ``image`` [1,3,H,W] uniform in [-1,1] -> out ``mean``
  (``latent_dist.mean``, unscaled);
* ``vae-decode``: in ``latent`` [1,4,h,w] randn -> out ``image``
  (``decode(latent).sample``, unscaled, unclamped).

H = W = ``--size`` (default: the model's native resolution, 512 for SD 1.5),
h = H / VAE factor.  The models are loaded in fp32 whatever their storage
dtype, one network at a time, and run on 2 threads.  Check a port's outputs
against these files with scripts/reference/compare.py.

    python3 -m scripts.reference.parity_sd15 --model /tmp/sd15-fp32 --out /tmp/sd15-parity [--size 512] [--only unet]

Takes a few minutes on 2 cores (the VAE at 512x512 dominates).
"""

import argparse
import gc
import json
import os
import time

import torch

import scripts.oracle  # noqa: E402,F401  (2 torch threads, warnings off, the libraries quiet)

from safetensors.torch import save_file  # noqa: E402

COMPONENTS = ["text-encoder", "unet", "vae-encode", "vae-decode"]


def save(path, tensors):
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, path)


def report(name, t, t0):
    print(f"{name:13s} {str(tuple(t.shape)):18s} max|ref| = {float(t.abs().max()):.6g}  "
          f"({time.time() - t0:.1f} s)", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="diffusers folder (e.g. from make_sd15_random.py)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", type=int, default=None, help="image side in pixels (default: native)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", action="append", choices=COMPONENTS)
    args = ap.parse_args()

    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    os.makedirs(args.out, exist_ok=True)
    only = set(args.only or COMPONENTS)

    with open(os.path.join(args.model, "vae", "config.json")) as f:
        vae_cfg = json.load(f)
    with open(os.path.join(args.model, "unet", "config.json")) as f:
        unet_cfg = json.load(f)
    with open(os.path.join(args.model, "text_encoder", "config.json")) as f:
        te_cfg = json.load(f)
    factor = 2 ** (len(vae_cfg["block_out_channels"]) - 1)
    size = args.size or unet_cfg["sample_size"] * factor
    lat = size // factor
    lc = unet_cfg["in_channels"]

    g = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(0, te_cfg["vocab_size"], (1, te_cfg["max_position_embeddings"]), generator=g)
    sample = torch.randn((1, lc, lat, lat), generator=g)
    timestep = torch.tensor(500, dtype=torch.int64)
    image = torch.rand((1, 3, size, size), generator=g) * 2 - 1
    latent = torch.randn((1, vae_cfg["latent_channels"], lat, lat), generator=g)

    with torch.inference_mode():
        # the UNet needs the context, so the text encoder always runs
        t0 = time.time()
        te = CLIPTextModel.from_pretrained(os.path.join(args.model, "text_encoder"),
                                           torch_dtype=torch.float32).eval()
        context = te(input_ids=ids).last_hidden_state.float()
        del te
        gc.collect()
        if "text-encoder" in only:
            save(os.path.join(args.out, "text-encoder.in.safetensors"), {"input_ids": ids})
            save(os.path.join(args.out, "text-encoder.out.safetensors"), {"last_hidden_state": context})
            report("text-encoder", context, t0)

        if "unet" in only:
            t0 = time.time()
            unet = UNet2DConditionModel.from_pretrained(os.path.join(args.model, "unet"),
                                                        torch_dtype=torch.float32).eval()
            out = unet(sample, timestep, encoder_hidden_states=context).sample.float()
            del unet
            gc.collect()
            save(os.path.join(args.out, "unet.in.safetensors"),
                 {"sample": sample, "timestep": timestep, "encoder_hidden_states": context})
            save(os.path.join(args.out, "unet.out.safetensors"), {"out": out})
            report("unet", out, t0)

        if only & {"vae-encode", "vae-decode"}:
            vae = AutoencoderKL.from_pretrained(os.path.join(args.model, "vae"),
                                                torch_dtype=torch.float32).eval()
            if "vae-encode" in only:
                t0 = time.time()
                mean = vae.encode(image).latent_dist.mean.float()
                save(os.path.join(args.out, "vae-encode.in.safetensors"), {"image": image})
                save(os.path.join(args.out, "vae-encode.out.safetensors"), {"mean": mean})
                report("vae-encode", mean, t0)
            if "vae-decode" in only:
                t0 = time.time()
                dec = vae.decode(latent).sample.float()
                save(os.path.join(args.out, "vae-decode.in.safetensors"), {"latent": latent})
                save(os.path.join(args.out, "vae-decode.out.safetensors"), {"image": dec})
                report("vae-decode", dec, t0)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
