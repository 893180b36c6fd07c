#!/usr/bin/env python3
"""Null-text inversion plus one Prompt-to-Prompt edit at 512², in pivot and in the PyTorch reference, side by
side in one run on the same machine and the same weights.

pivot runs as users run it (``pivot invert`` then ``pivot edit`` from the inversion file, release build);
the reference is the Python port in scripts/reference (diffusers' UNet, VAE and CLIP underneath, the
null-text loop of null_text.py, the controllers of p2p.py), each phase timed with the same clock. Both use
2 threads. Early stopping may end null-text steps after different inner-iteration counts in the two; both
counts are reported, with the time per inner iteration.

Example (SD 1.5-size random weights from make_sd15_random.py; a full 50 × 10 run takes hours on 2 cores,
so the default is 5 steps × 2 inner iterations and the per-unit times are extrapolated to 50 × 10):
    swift build -c release
    python3 -m scripts.bench.bench_edit_sd15 --model /tmp/sd15-fp32 --steps 5 --inner-steps 2 --out /tmp/bench-edit
"""
import argparse
import json
import os
import subprocess
import time
import warnings

import numpy as np
import torch
from scripts import REPO_ROOT  # noqa: E402

warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

ROOT = REPO_ROOT
SOURCE, TARGET = "a cat sitting on a bench", "a tiger sitting on a bench"


def photo(path, size=512):
    """A synthetic 512² photo (soft shapes on a gradient), so the run needs no data set."""
    from PIL import Image
    y, x = np.mgrid[0:size, 0:size] / size
    img = np.stack([0.3 + 0.5 * x, 0.4 + 0.3 * y, 0.6 - 0.3 * x * y], -1)
    disk = ((x - 0.45) ** 2 + (y - 0.55) ** 2) < 0.05
    img[disk] = (0.85, 0.45, 0.2)
    img[(np.abs(x - 0.5) < 0.35) & (np.abs(y - 0.8) < 0.04)] = (0.35, 0.25, 0.15)
    Image.fromarray((img * 255).clip(0, 255).astype(np.uint8)).save(path)


def run_pivot(args, photo_path):
    exe = os.path.join(ROOT, ".build/release/pivot")
    inv = os.path.join(args.out, "pivot-inversion.safetensors")
    times = {}
    t0 = time.perf_counter()
    subprocess.run([exe, "invert", photo_path, "--model", args.model, "--prompt", SOURCE, "--steps", str(args.steps),
                    "--inner-steps", str(args.inner_steps), "-o", inv, "--quiet"], check=True)
    times["invert"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    subprocess.run([exe, "edit", inv, "--model", args.model, "--source", SOURCE, "--target", TARGET,
                    "-o", os.path.join(args.out, "pivot-edit.png"), "--quiet"], check=True)
    times["edit"] = time.perf_counter() - t0
    from safetensors import safe_open
    with safe_open(inv, "pt") as f:
        meta = f.metadata()
    iterations = [int(v) for v in meta.get("null_text_iterations", "").split(",") if v]
    return times, iterations


def run_reference(args, photo_path):
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from PIL import Image
    from transformers import CLIPTextModel, CLIPTokenizer

    from scripts.reference.null_text import Reference
    from scripts.reference.p2p import Controller, edit

    times = {}
    t0 = time.perf_counter()
    m = args.model
    tok = CLIPTokenizer.from_pretrained(os.path.join(m, "tokenizer"))
    te = CLIPTextModel.from_pretrained(os.path.join(m, "text_encoder")).eval()
    unet = UNet2DConditionModel.from_pretrained(os.path.join(m, "unet")).eval().requires_grad_(False)
    vae = AutoencoderKL.from_pretrained(os.path.join(m, "vae")).eval()
    scheduler = DDIMScheduler.from_pretrained(os.path.join(m, "scheduler"))
    times["load"] = time.perf_counter() - t0

    def embed(texts):
        ids = tok(texts, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        with torch.no_grad():
            return te(ids).last_hidden_state

    t0 = time.perf_counter()
    img = np.asarray(Image.open(photo_path).convert("RGB"))
    x = torch.from_numpy(img).float().permute(2, 0, 1)[None] / 127.5 - 1
    with torch.no_grad():
        z0 = vae.encode(x).latent_dist.mean * vae.config.scaling_factor
    cond, uncond = embed([SOURCE]), embed([""])
    ref = Reference(unet, scheduler, args.steps)
    t1 = time.perf_counter()
    latents = ref.ddim_inversion(z0, cond)
    times["trajectory"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    nulls, iterations, _ = ref.null_text_optimization(latents, cond, uncond, inner_steps=args.inner_steps)
    times["null_text"] = time.perf_counter() - t1
    times["invert"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    prompts = [SOURCE, TARGET]
    controller = Controller(prompts, args.steps, tok, "replace", cross_replace=0.8, self_replace=0.4)
    z = edit(unet, scheduler, latents[-1], embed(prompts), nulls, controller)
    with torch.no_grad():
        vae.decode(z / vae.config.scaling_factor)
    times["edit"] = time.perf_counter() - t0
    return times, iterations


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--inner-steps", type=int, default=2)
    p.add_argument("--out", default="/tmp/bench-edit")
    args = p.parse_args()
    torch.set_num_threads(2)
    os.makedirs(args.out, exist_ok=True)
    photo_path = os.path.join(args.out, "photo.png")
    photo(photo_path)
    pivot_times, pivot_iters = run_pivot(args, photo_path)
    print("pivot", json.dumps(pivot_times), "inner iterations", pivot_iters, flush=True)
    ref_times, ref_iters = run_reference(args, photo_path)
    print("reference", json.dumps(ref_times), "inner iterations", ref_iters, flush=True)
    result = {"steps": args.steps, "inner_steps": args.inner_steps, "pivot": pivot_times, "pivot_iterations": pivot_iters,
              "reference": ref_times, "reference_iterations": ref_iters}
    with open(os.path.join(args.out, "result.json"), "w") as f:
        json.dump(result, f, indent=1)
    total_p = pivot_times["invert"] + pivot_times["edit"]
    total_r = ref_times["invert"] + ref_times["edit"]
    print(f"invert + edit: pivot {total_p:.1f} s (process start and model loading included), "
          f"reference {total_r:.1f} s (loading excluded): {total_r / total_p:.2f}x")


if __name__ == "__main__":
    main()
