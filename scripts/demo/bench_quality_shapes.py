#!/usr/bin/env python3
"""Edit quality on the shapes world, where the renderer draws the ground truth of every edit.

For ``--scenes`` held-out one-object scenes (seeds from 1,000,000, never used in training), each with a colour swap or a
shape swap (alternating), and for every inversion method (null-text, negative-prompt, direct, ddim, fixed-point,
ddpm; ``--methods`` picks some), runs
pivot's own ``pivot batch --side-by-side`` (release build) with a manifest of one row per scene, whose output holds
the source branch (the reconstruction) beside the edit. Reports per method:

* reconstruction PSNR of the source branch against the photo (what the inversion method is for: null-text and
  direct inversion keep the source branch on the pivot, negative-prompt inversion guides it with the source
  prompt as the negative one, plain DDIM does neither),
* colour-swap accuracy: inside the ground-truth object, the edited pixels' mean colour is nearest to the
  target colour among the palette,
* shape-swap accuracy: the edited object's mask (pixels far from the background colour) overlaps the
  ground-truth target shape better (IoU) than the source shape,
* background PSNR outside both objects (dilated by 2 pixels) against the photo,
* seconds per edit (the inversion included, from the batch journal).

It checks the expected ordering: plain DDIM reconstructs far worst. Writes ``--out/quality.json`` and a
Markdown table (``--out/quality.md``) for docs/QUALITY.md.

    swift build -c release
    python3 -m scripts.demo.bench_quality_shapes --model samples/models/shapes --scenes 50 --steps 20 --out /tmp/quality
"""
import argparse
import csv
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

from scripts.demo.shapes_world import BACKGROUNDS, COLOURS, SHAPES, model_image_size, render_single, render_variant  # noqa: E402
from scripts import REPO_ROOT  # noqa: E402
from scripts.demo.bench_p2p_shapes import dilate, psnr  # noqa: E402

ROOT = REPO_ROOT
METHODS = ["null-text", "negative-prompt", "direct", "ddim", "fixed-point", "fixed-point+direct", "ddpm"]


def scenes(n, size):
    rows = []
    for i in range(n):
        image, caption, info = render_single(1_000_000 + i, size)
        if i % 2 == 0:
            colour = [c for c in COLOURS if c != info["colour"]][i // 2 % (len(COLOURS) - 1)]
            edited, target, tinfo = render_variant(info, colour=colour)
            kind = "colour"
        else:
            shape = [s for s in SHAPES if s != info["shape"]][i // 2 % (len(SHAPES) - 1)]
            edited, target, tinfo = render_variant(info, shape=shape)
            kind = "shape"
        rows.append(dict(index=i, image=image, caption=caption, info=info, truth=edited, target=target, tinfo=tinfo, kind=kind))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(ROOT, "samples/models/shapes"))
    ap.add_argument("--scenes", type=int, default=50)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--inner-steps", type=int, default=10)
    ap.add_argument("--out", default="/tmp/quality")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated (default: every method)")
    ap.add_argument("--precision", default="auto", help="pivot's --precision (default auto)")
    args = ap.parse_args()
    exe = os.path.join(ROOT, ".build/release/pivot")
    inputs = os.path.join(args.out, "photos")
    os.makedirs(inputs, exist_ok=True)
    data = scenes(args.scenes, model_image_size(args.model))
    for s in data:
        s["image"].save(os.path.join(inputs, f"scene{s['index']:03d}.png"))
    results = {}
    for method in [m for m in args.methods.split(",") if m]:
        out = os.path.join(args.out, method)
        manifest = os.path.join(args.out, f"{method}.csv")
        with open(manifest, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["image", "source", "target", "output"])
            for s in data:
                name = f"scene{s['index']:03d}"
                w.writerow([name + ".png", s["caption"], s["target"], f"{name}.png"])
        r = subprocess.run([exe, "batch", inputs, "--model", args.model, "-o", out, "--manifest", manifest, "--method", method,
                            "--steps", str(args.steps), "--inner-steps", str(args.inner_steps), "--side-by-side", "--output-size", "model",
                            "--no-cache", "--quiet", "--json", "--precision", args.precision],
                           capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"pivot batch failed for {method}: {r.stderr[-2000:]}")
        seconds = [json.loads(l)["seconds"] for l in r.stdout.splitlines() if '"seconds"' in l]
        recon, colour_ok, shape_ok, background = [], [], [], []
        for s in data:
            name = f"scene{s['index']:03d}"
            photo = np.asarray(s["image"])
            pair = np.asarray(Image.open(os.path.join(out, f"{name}.png")).convert("RGB"))
            rec, edit = pair[:, :photo.shape[1]], pair[:, photo.shape[1]:]
            recon.append(psnr(rec, photo))
            src_mask, tgt_mask = s["info"]["mask"] > 0.5, s["tinfo"]["mask"] > 0.5
            outside = ~dilate(src_mask | tgt_mask, 2)
            background.append(psnr(edit, photo, outside))
            if s["kind"] == "colour":
                mean = edit[tgt_mask].mean(0)
                nearest = min(COLOURS, key=lambda c: np.sum((np.array(COLOURS[c]) - mean) ** 2))
                colour_ok.append(nearest == s["tinfo"]["colour"])
            else:
                bg = np.array(BACKGROUNDS[s["info"]["background"]])
                obj = np.sqrt(((edit.astype(np.float64) - bg) ** 2).sum(-1)) > 60

                def iou(m):
                    return (obj & m).sum() / max((obj | m).sum(), 1)
                shape_ok.append(iou(tgt_mask) > iou(src_mask))
        results[method] = dict(reconstruction_psnr=float(np.mean(recon)), colour_swap_accuracy=float(np.mean(colour_ok)),
                               shape_swap_accuracy=float(np.mean(shape_ok)), background_psnr=float(np.mean(background)),
                               seconds_per_row=float(np.mean(seconds)), rows=len(seconds))
        print(method, json.dumps(results[method]), flush=True)
    with open(os.path.join(args.out, "quality.json"), "w") as f:
        json.dump(dict(scenes=args.scenes, steps=args.steps, inner_steps=args.inner_steps, results=results), f, indent=1)
    lines = ["| method | reconstruction PSNR (dB) | colour swap | shape swap | background PSNR (dB) | s / edit |", "|---|---|---|---|---|---|"]
    for m, r in results.items():
        lines.append(f"| {m} | {r['reconstruction_psnr']:.1f} | {r['colour_swap_accuracy']:.0%} | {r['shape_swap_accuracy']:.0%} | "
                     f"{r['background_psnr']:.1f} | {r['seconds_per_row']:.2f} |")
    with open(os.path.join(args.out, "quality.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    if "ddim" not in results:
        return
    worst = min(results, key=lambda m: results[m]["reconstruction_psnr"])
    others = [results[m]["reconstruction_psnr"] for m in results if m != "ddim"]
    ok = worst == "ddim" and results["ddim"]["reconstruction_psnr"] < min(others) - 3
    print("expected ordering (plain DDIM reconstructs far worst):", "holds" if ok else "DOES NOT HOLD")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
