#!/usr/bin/env python3
"""One textual-inversion training step, pivot beside PyTorch, in one run (issue: `pivot learn` speed).

The step is diffusers' ``examples/textual_inversion/textual_inversion.py`` at batch 1: text encoder forward with
the token embedding table trainable (everything else frozen), UNet forward at the latent of a ``--size``² photo,
``F.mse_loss`` against the noise, backward, AdamW (lr 5e-3, weight decay 1e-2) over the table, the other rows
restored. Each engine runs in its own process, one after the other, ``--rounds`` times:

* pivot: ``.build/release/pivot bench --network learn-step --precision P --json`` for P in fp32, auto;
* PyTorch fp32 and bf16 autocast, each twice: ``reference`` as the script runs it (the photo is VAE-encoded
  every step, ``latent_dist.sample()``), and ``cached`` with the latents computed once (as pivot does), so that
  the engines are compared on the same work.

Prints a Markdown table naming the CPU and its flags: median seconds per step, peak RSS, the ratios against
PyTorch and the projected time of a 3000-step run.

    python3 -m scripts.bench.bench_learn --model /tmp/sd15-fp32 [--size 512] [--runs 3] [--rounds 1] [--threads 2]
        [--json-out FILE]

Build pivot first (``swift build -c release``). Worker mode (one PyTorch measurement, one JSON line):
``python3 -m scripts.bench.bench_learn --worker --model M --precision fp32|bf16 --variant reference|cached``.
"""
import argparse
import contextlib
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from scripts import REPO_ROOT
from scripts.bench.bench_peers import cpu_info

PIVOT = os.path.join(REPO_ROOT, ".build", "release", "pivot")
STEPS = 3000


def worker(args):
    import scripts.oracle  # noqa: F401  (quiet libraries)
    import torch
    import torch.nn.functional as F
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel

    torch.set_num_threads(args.threads)
    m = args.model
    text_encoder = CLIPTextModel.from_pretrained(os.path.join(m, "text_encoder"))
    unet = UNet2DConditionModel.from_pretrained(os.path.join(m, "unet"))
    vae = AutoencoderKL.from_pretrained(os.path.join(m, "vae"))
    scheduler = DDPMScheduler.from_pretrained(os.path.join(m, "scheduler"))
    vocab = text_encoder.config.vocab_size
    text_encoder.resize_token_embeddings(vocab + 1)
    token = vocab  # the new token's row
    table = text_encoder.get_input_embeddings().weight
    with torch.no_grad():
        table[token] = table[320].clone()  # "a</w>" in CLIP's vocabulary
    original = table.detach().clone()
    keep = torch.ones(vocab + 1, dtype=torch.bool)
    keep[token] = False
    vae.requires_grad_(False)
    unet.requires_grad_(False)
    text_encoder.requires_grad_(False)
    table.requires_grad_(True)
    unet.train()
    text_encoder.train()
    optimizer = torch.optim.AdamW([table], lr=5e-3, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
    g = torch.Generator().manual_seed(0)
    pixels = torch.rand(1, 3, args.size, args.size, generator=g) * 2 - 1
    ids = torch.full((1, 77), 49407, dtype=torch.long)
    ids[0, :6] = torch.tensor([49406, 320, 1125, 539, token, 49407])  # <bos> a photo of <token> <eos>
    with torch.no_grad():
        cached = vae.encode(pixels).latent_dist.sample(generator=g) * vae.config.scaling_factor

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16) if args.precision == "bf16" else contextlib.nullcontext()

    def step():
        t0 = time.perf_counter()
        with autocast():
            if args.variant == "reference":
                with torch.no_grad():
                    latents = vae.encode(pixels).latent_dist.sample(generator=g).detach() * vae.config.scaling_factor
            else:
                latents = cached
            noise = torch.randn(latents.shape, generator=g)
            t = torch.tensor([500])
            noisy = scheduler.add_noise(latents, noise, t)
            hidden = text_encoder(ids)[0]
            pred = unet(noisy, t, hidden).sample
            loss = F.mse_loss(pred.float(), noise.float(), reduction="mean")
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        with torch.no_grad():
            table[keep] = original[keep]
        return time.perf_counter() - t0

    step()  # warm-up
    times = [step() for _ in range(args.runs)]
    print(json.dumps({"engine": "pytorch", "precision": args.precision, "variant": args.variant,
                      "median_s": statistics.median(times), "times": times, "torch": torch.__version__,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)


def run(cmd):
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if p.returncode != 0 or not lines:
        return {"error": (p.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(lines[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json-out")
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--variant", default="cached", choices=["reference", "cached"])
    args = ap.parse_args()
    if args.worker:
        return worker(args)

    if not os.path.isdir(os.path.join(args.model, "tokenizer")):
        from scripts.bench.make_sd15_random import write_tokenizer
        write_tokenizer(args.model)
    cases = [("pivot", p, "cached") for p in ("fp32", "auto")]
    cases += [("pytorch", p, v) for p in ("fp32", "bf16") for v in ("cached", "reference")]
    results = {c: [] for c in cases}
    env_threads = ["--threads", str(args.threads)]
    for _ in range(args.rounds):
        for engine, precision, variant in cases:
            if engine == "pivot":
                r = run([PIVOT, "bench", "--model", args.model, "--network", "learn-step", "--size", str(args.size), "--runs",
                         str(args.runs), "--precision", precision, "--json", *env_threads])
                if "median_s" in r:
                    r["peak_rss_mb"] = r["peak_rss_bytes"] / 2**20
            else:
                r = run([sys.executable, "-m", "scripts.bench.bench_learn", "--worker", "--model", args.model, "--size",
                         str(args.size), "--runs", str(args.runs), "--precision", precision, "--variant", variant,
                         *env_threads])
            print(json.dumps(r), file=sys.stderr, flush=True)
            results[(engine, precision, variant)].append(r)

    def median(c):
        ok = [r["median_s"] for r in results[c] if "median_s" in r]
        return statistics.median(ok) if ok else None

    def rss(c):
        ok = [r["peak_rss_mb"] for r in results[c] if "peak_rss_mb" in r]
        return max(ok) / 1024 if ok else None

    torch_fp32 = median(("pytorch", "fp32", "cached"))
    cpu, flags = cpu_info()
    described = f"{cpu} ({' '.join(f for f, has in flags.items() if has) or 'no AVX2'})"
    lines = [f"CPU: {described}; {args.threads} threads; {args.size}² photo, batch 1; "
             f"{datetime.date.today().isoformat()}; median of {args.runs} steps after a warm-up, {args.rounds} round(s)", "",
             "| engine | precision | latents | s / step | vs PyTorch fp32 (cached) | vs PyTorch same precision (cached) | "
             "3000 steps | peak RSS (GB) |", "|---|---|---|---|---|---|---|---|"]
    for c in cases:
        engine, precision, variant = c
        s = median(c)
        if s is None:
            err = next((r.get("error") for r in results[c] if "error" in r), "no result")
            lines.append(f"| {engine} | {precision} | {variant} | error: {err} | | | | |")
            continue
        peer = median(("pytorch", "bf16" if precision in ("auto", "bf16") else "fp32", "cached"))
        ratio = f"{s / torch_fp32:.2f}×" if torch_fp32 else ""
        same = f"{s / peer:.2f}×" if peer and engine == "pivot" else ""
        hours = s * STEPS / 3600
        label = "once" if variant == "cached" else "every step (the reference)"
        lines.append(f"| {engine} | {precision} | {label} | {s:.2f} | {ratio} | {same} | {hours:.1f} h | {rss(c):.2f} |")
    print("\n".join(lines))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({" / ".join(k): v for k, v in results.items()}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
