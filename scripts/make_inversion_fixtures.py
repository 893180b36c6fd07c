#!/usr/bin/env python3
"""Fixtures for DDIM inversion and null-text optimisation, from the Python reference (scripts/reference).

On the sd1-tiny fixture model (with its tiny tokenizer), encodes a synthetic 32×32 photo (a red disk on a
grey background, also written as ``photo.png``), inverts it with 10 DDIM steps under "a red circle" and
runs null-text optimisation (guidance 7.5, up to 10 inner Adam steps). Writes
``Tests/PivotModelsTests/Fixtures/inversion/reference.safetensors``: ``z0`` [1,4,16,16], ``cond`` and
``uncond`` [1,77,32], ``latents`` [11,4,16,16] (z*_0 … z*_T), ``nulls`` [10,77,32], ``iterations`` (int64
[10], inner steps run per outer step) and ``losses`` [10,10] (NaN where not run); and the same for the
model's v-prediction twin (its scheduler with ``prediction_type="v_prediction"``) in ``reference-v.safetensors``.

Run from the package root after make_fixtures.py and make_generate_fixtures.py:
    python3 scripts/make_inversion_fixtures.py
"""
import math
import os
import sys
import warnings

import numpy as np
import torch

torch.set_num_threads(2)
warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference"))

from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import CLIPTextModel, CLIPTokenizer  # noqa: E402

from null_text import Reference  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "Tests/PivotModelsTests/Fixtures/sd1-tiny/model")
OUT = os.path.join(ROOT, "Tests/PivotModelsTests/Fixtures/inversion")
STEPS, PROMPT = 10, "a red circle"


def photo():
    y, x = np.mgrid[0:32, 0:32]
    disk = ((x - 13.5) ** 2 + (y - 17.0) ** 2) <= 8.5 ** 2
    img = np.full((32, 32, 3), 128, np.uint8)
    img[disk] = (220, 30, 40)
    return img


def main():
    os.makedirs(OUT, exist_ok=True)
    img = photo()
    Image.fromarray(img).save(os.path.join(OUT, "photo.png"))
    tok = CLIPTokenizer.from_pretrained(os.path.join(MODEL, "tokenizer"))
    te = CLIPTextModel.from_pretrained(os.path.join(MODEL, "text_encoder")).eval()
    unet = UNet2DConditionModel.from_pretrained(os.path.join(MODEL, "unet")).eval().requires_grad_(False)
    vae = AutoencoderKL.from_pretrained(os.path.join(MODEL, "vae")).eval()

    def embed(text):
        ids = tok(text, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        with torch.no_grad():
            return te(ids).last_hidden_state

    x = torch.from_numpy(img).float().permute(2, 0, 1)[None] / 127.5 - 1
    with torch.no_grad():
        z0 = vae.encode(x).latent_dist.mean * vae.config.scaling_factor
    cond, uncond = embed(PROMPT), embed("")
    for suffix, prediction in [("", "epsilon"), ("-v", "v_prediction")]:
        scheduler = DDIMScheduler.from_pretrained(os.path.join(MODEL, "scheduler"), prediction_type=prediction)
        ref = Reference(unet, scheduler, STEPS)
        latents = ref.ddim_inversion(z0, cond)
        nulls, iterations, losses = ref.null_text_optimization(latents, cond, uncond)
        loss_table = torch.full((STEPS, 10), math.nan)
        for i, row in enumerate(losses):
            loss_table[i, : len(row)] = torch.tensor(row)
        save_file({"z0": z0.contiguous(), "cond": cond.contiguous(), "uncond": uncond.contiguous(),
                   "latents": torch.cat(latents).contiguous(), "nulls": torch.cat(nulls).contiguous(),
                   "iterations": torch.tensor(iterations, dtype=torch.int64), "losses": loss_table},
                  os.path.join(OUT, f"reference{suffix}.safetensors"),
                  metadata={"prompt": PROMPT, "steps": str(STEPS), "guidance": "7.5", "inner_steps": "10",
                            "prediction_type": prediction})
        print(prediction, "iterations", iterations)
        print(prediction, "final losses", [row[-1] for row in losses])


if __name__ == "__main__":
    main()
