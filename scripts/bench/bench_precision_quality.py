#!/usr/bin/env python3
"""What bf16 costs in image quality on the demo model, against fp32, measured with pivot itself.

For every sample scene in samples/shapes (captions.txt):

* the README's demo edit (direct inversion, colour swap to blue) in fp32 and in bf16: PSNR of the two
  edited images (the issue's bar: >= 30 dB);
* null-text reconstruction (target = source, default 50 steps x up to 10 inner iterations) in fp32, in
  ``auto`` (bf16 passes, fp32 gradients) and in bf16 everywhere: PSNR of each reconstruction against the
  photo (the bar for letting the optimisation run in bf16: within 0.5 dB of fp32).

Prints one JSON line per scene and a Markdown summary; ``--json-out`` writes everything. Every run uses a
fresh inversion cache, so nothing is shared between precisions.

    python3 -m scripts.bench.bench_precision_quality [--model samples/models/shapes] [--scenes N] [--json-out FILE]

Build pivot first (``swift build -c release``).
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile

import numpy as np
from PIL import Image
from scripts import REPO_ROOT  # noqa: E402

ROOT = REPO_ROOT
PIVOT = os.path.join(ROOT, ".build", "release", "pivot")
COLOURS = ["red", "green", "blue", "yellow", "orange", "purple"]


def psnr(a, b):
    d = (np.asarray(a, np.float64) - np.asarray(b, np.float64)) / 255
    mse = float((d ** 2).mean())
    return 99.0 if mse == 0 else 10 * np.log10(1 / mse)


def run_edit(photo, source, target, precision, method, out, cache):
    env = dict(os.environ, PIVOT_CACHE_DIR=cache)
    cmd = [PIVOT, "edit", photo, "--model", ARGS.model, "--source", source, "--target", target,
           "--method", method, "--precision", precision, "--output-size", "model", "-o", out]
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return Image.open(out).convert("RGB")


def main():
    scenes = []
    with open(os.path.join(ROOT, "samples/shapes/captions.txt")) as f:
        for line in f:
            name, caption = line.rstrip("\n").split("\t")
            scenes.append((os.path.join(ROOT, "samples/shapes", name), caption))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (photo, caption) in enumerate(scenes[: ARGS.scenes]):
            colour = caption.split()[1]
            new = "blue" if colour != "blue" else "red"
            target = caption.replace(f" {colour} ", f" {new} ", 1)
            photo_img = Image.open(photo).convert("RGB")
            row = {"scene": os.path.basename(photo), "source": caption, "target": target}
            edits = {}
            for p in ["fp32", "bf16"]:
                edits[p] = run_edit(photo, caption, target, p, "direct", f"{tmp}/e-{i}-{p}.png", f"{tmp}/c-{i}-{p}-d")
            row["edit_psnr_bf16_vs_fp32"] = psnr(edits["bf16"], edits["fp32"])
            for p in ["fp32", "auto", "bf16"]:
                rec = run_edit(photo, caption, caption, p, "null-text", f"{tmp}/r-{i}-{p}.png", f"{tmp}/c-{i}-{p}-n")
                size = rec.size
                row[f"recon_psnr_{p}"] = psnr(rec, photo_img.resize(size, Image.BICUBIC) if photo_img.size != size else photo_img)
            print(json.dumps(row), flush=True)
            rows.append(row)
    med = lambda k: statistics.median(r[k] for r in rows)
    print("\n| scenes | demo edit bf16 vs fp32 (PSNR) | null-text reconstruction fp32 | auto | bf16 |")
    print("|---|---|---|---|---|")
    print(f"| {len(rows)} | {med('edit_psnr_bf16_vs_fp32'):.1f} dB (min {min(r['edit_psnr_bf16_vs_fp32'] for r in rows):.1f}) "
          f"| {med('recon_psnr_fp32'):.2f} dB | {med('recon_psnr_auto'):.2f} dB | {med('recon_psnr_bf16'):.2f} dB |")
    if ARGS.json_out:
        with open(ARGS.json_out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(ROOT, "samples/models/shapes"))
    ap.add_argument("--scenes", type=int, default=6)
    ap.add_argument("--json-out")
    ARGS = ap.parse_args()
    main()
