#!/usr/bin/env python3
"""Reference images for `pivot generate` from diffusers' StableDiffusionPipeline (DDIM) on the sd1-tiny fixture.

Completes ``Tests/PivotModelsTests/Fixtures/sd1-tiny/model`` into a full pipeline folder (copies the tiny
CLIP tokenizer from ``Tests/PivotTextTests/Fixtures/tiny-tokenizer`` and lists it in model_index.json), then
renders a few cases and writes ``Tests/PivotModelsTests/Fixtures/generate/<case>.safetensors`` holding
``image`` (uint8 [H, W, 3], diffusers' ``numpy_to_pil`` rounding) and the settings as metadata.

Run from the package root after make_fixtures.py:  python3 scripts/make_generate_fixtures.py
"""
import json
import os
import shutil
import warnings

import numpy as np
import torch

torch.set_num_threads(2)
warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

from diffusers import DDIMScheduler, StableDiffusionPipeline  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "Tests/PivotModelsTests/Fixtures/sd1-tiny/model")
OUT = os.path.join(ROOT, "Tests/PivotModelsTests/Fixtures/generate")
TOKENIZER = os.path.join(ROOT, "Tests/PivotTextTests/Fixtures/tiny-tokenizer")

CASES = [
    dict(name="eps-guided", prompt="a red circle on a white background", negative="", steps=10, guidance=7.5,
         seed=42, width=32, height=32, prediction="epsilon"),
    dict(name="v-guided", prompt="a red circle on a white background", negative="", steps=10, guidance=7.5,
         seed=42, width=32, height=32, prediction="v_prediction"),
    dict(name="eps-unguided-wide", prompt="a blue square", negative="blurry", steps=5, guidance=1.0,
         seed=3, width=48, height=32, prediction="epsilon"),
    dict(name="eps-negative", prompt="a green triangle, photo", negative="blurry, dark", steps=4, guidance=4.0,
         seed=2**32 + 7, width=32, height=40, prediction="epsilon"),
]


def main():
    dst = os.path.join(MODEL, "tokenizer")
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(TOKENIZER, dst)
    index_path = os.path.join(MODEL, "model_index.json")
    index = json.load(open(index_path))
    index["tokenizer"] = ["transformers", "CLIPTokenizer"]
    json.dump(index, open(index_path, "w"), indent=2)
    os.makedirs(OUT, exist_ok=True)
    pipe = StableDiffusionPipeline.from_pretrained(MODEL, safety_checker=None, requires_safety_checker=False,
                                                   torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    base = dict(pipe.scheduler.config)
    for case in CASES:
        pipe.scheduler = DDIMScheduler.from_config(base, prediction_type=case["prediction"])
        g = torch.Generator().manual_seed(case["seed"])
        image = pipe(case["prompt"], negative_prompt=case["negative"] or None, num_inference_steps=case["steps"],
                     guidance_scale=case["guidance"], generator=g, height=case["height"], width=case["width"],
                     output_type="np").images[0]
        pixels = (image * 255).round().astype(np.uint8)
        meta = {k: str(v) for k, v in case.items()}
        save_file({"image": torch.from_numpy(np.ascontiguousarray(pixels))}, os.path.join(OUT, case["name"] + ".safetensors"), metadata=meta)
        print(case["name"], pixels.shape, pixels.mean())


if __name__ == "__main__":
    main()
