#!/usr/bin/env python3
"""Does ``pivot learn`` learn? A concept of the shapes world learnt from 4 photos, checked against ground truth.

The demo model (samples/models/shapes) knows only its captions, "a {colour} {shape} on a {background}
background". Four photos of one colour–shape pair on one background (different positions, sizes, angles; rendered
by scripts/demo/shapes_world.py) become a token, learnt with an unrelated init word and a template file in the
model's grammar ("a {} on a gray background"). Then, for each ``--precision``:

* **generation**: ``pivot generate "a <token> on a B background"`` at 4 seeds, on the training background and on
  the two others (never seen with the token); a seed succeeds when the object's colour (median of the pixels
  far from the background, nearest of the world's colours) and its shape (best IoU of the world's three shapes
  fitted to the object's silhouette) are the concept's;
* **baseline**: the same prompts with the init word in the token's place, i.e. where learning started;
* **edit**: ``pivot edit --embedding`` of held-out photos of the concept's shape in other colours, on white,
  "a C S on a white background" → "a <token> on a white background"; it succeeds when the edited object's
  colour is the concept's, and the background PSNR outside the object is reported.

Writes OUT/learn-shapes.json, OUT/learn-shapes.md (the table for docs/QUALITY.md) and OUT/learn-shapes.png (the
photos, the generations, the edits), and pivot's own loss plot and previews beside the token.

    python3 -m scripts.demo.bench_learn_shapes [--model samples/models/shapes] [--out /tmp/learn-shapes]
        [--colour purple --shape triangle --background gray --init circle] [--steps 400] [--precision fp32 auto]
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image, ImageDraw

from scripts import REPO_ROOT
from scripts.demo.bench_p2p_shapes import psnr
from scripts.demo.shapes_world import BACKGROUNDS, COLOURS, SHAPES, model_image_size, object_colour, render_scene, shape_mask

PIVOT = os.path.join(REPO_ROOT, ".build", "release", "pivot")
TOKEN = "<concept>"
SEEDS = [0, 1, 2, 3]


def object_mask(image, background):
    a = np.asarray(image.convert("RGB"), dtype=np.float64)
    return np.sqrt(((a - np.asarray(BACKGROUNDS[background], dtype=np.float64)) ** 2).sum(-1)) > 60


def object_shape(image, background):
    """The shape whose best fit (centre at the silhouette's centroid ±2 px, size matching its area, any angle)
    overlaps the silhouette most (IoU); None when there is no object."""
    m = object_mask(image, background)
    if m.mean() < 0.02:
        return None
    ys, xs = np.nonzero(m)
    cy, cx = ys.mean() + 0.5, xs.mean() + 0.5
    area = m.sum()
    best, best_iou = None, -1.0
    for shape in SHAPES:
        side = m.shape[0]
        sizes = np.arange(8, 1.25 * side, 0.5)
        areas = [shape_mask(shape, side / 2, side / 2, s, 0, image_size=side, supersample=1).sum() for s in sizes]
        size = sizes[int(np.argmin(np.abs(np.array(areas) - area)))]
        for angle in ([0] if shape == "circle" else range(0, 120, 5)):
            for dx in (-2, 0, 2):
                for dy in (-2, 0, 2):
                    fit = shape_mask(shape, cx + dx, cy + dy, size, angle, image_size=side, supersample=1) > 0.5
                    iou = (fit & m).sum() / max((fit | m).sum(), 1)
                    if iou > best_iou:
                        best, best_iou = shape, iou
    return best


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT)
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stderr[-2000:]}")
    return p


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join(REPO_ROOT, "samples/models/shapes"))
    ap.add_argument("--out", default="/tmp/learn-shapes")
    ap.add_argument("--colour", default="purple")
    ap.add_argument("--shape", default="triangle")
    ap.add_argument("--background", default="gray")
    ap.add_argument("--init", default="circle")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--vectors", type=int, default=1)
    ap.add_argument("--lr", default="5e-3")
    ap.add_argument("--patience", type=int, default=0, help="pivot learn --patience (with --validate-every 25)")
    ap.add_argument("--generate-steps", type=int, default=20)
    ap.add_argument("--precision", nargs="+", default=["fp32", "auto"])
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(3)

    size = model_image_size(args.model)
    k = size / 64  # the positions and sizes below are in pixels of a 64x64 scene
    photos = []
    for i in range(4):
        image = render_scene(args.colour, args.shape, args.background, cx=k * rng.uniform(22, 42), cy=k * rng.uniform(22, 42),
                             size=k * rng.uniform(24, 40), angle=rng.uniform(0, 120), image_size=size)[0]
        path = os.path.join(args.out, f"photo{i}.png")
        image.save(path)
        photos.append(path)
    templates = os.path.join(args.out, "templates.txt")
    with open(templates, "w") as f:
        f.write(f"a {{}} on a {args.background} background\n")
    edit_colours = [c for c in COLOURS if c != args.colour][:4]
    edits = []
    for i, colour in enumerate(edit_colours):
        image, caption, info = render_scene(colour, args.shape, "white", cx=k * rng.uniform(24, 40), cy=k * rng.uniform(24, 40),
                                            size=k * rng.uniform(28, 40), angle=rng.uniform(0, 120), image_size=size)
        path = os.path.join(args.out, f"edit-source{i}.png")
        image.save(path)
        edits.append((path, caption, info))

    def generated(prompt, tag, embedding=None):
        out = []
        for seed in SEEDS:
            path = os.path.join(args.out, f"{tag}-seed{seed}.png")
            cmd = [PIVOT, "generate", "--model", args.model, "--seed", str(seed), "--steps", str(args.generate_steps),
                   "--quiet", "-o", path, prompt]
            if embedding:
                cmd += ["--embedding", embedding]
            run(cmd)
            out.append(path)
        return out

    def judge(paths, background):
        rows = []
        for p in paths:
            image = Image.open(p).convert("RGB")
            colour, shape = object_colour(image, background), object_shape(image, background)
            rows.append(dict(path=p, colour=colour, shape=shape, ok=colour == args.colour and shape == args.shape))
        return rows

    results = {"concept": f"{args.colour} {args.shape} on {args.background}", "init": args.init, "steps": args.steps,
               "vectors": args.vectors, "lr": args.lr, "patience": args.patience,
               "photos": photos, "runs": {}}
    baseline = {}
    for bg in BACKGROUNDS:
        baseline[bg] = judge(generated(f"a {args.init} on a {bg} background", f"baseline-{bg}"), bg)
    results["baseline"] = baseline
    for precision in args.precision:
        token = os.path.join(args.out, f"concept-{precision}.safetensors")
        p = run([PIVOT, "learn", *photos, "--model", args.model, "--token", TOKEN, "--init", args.init, "--vectors", str(args.vectors), "--lr", args.lr, "--templates",
                 templates, "--steps", str(args.steps), "--precision", precision, "--preview-every", str(max(1, args.steps // 4)),
                 "--preview-prompt", f"a {TOKEN} on a {args.background} background", "--save-every", "0", "--patience", str(args.patience), "--validate-every", "25" if args.patience else "0", "--quiet", "--json",
                 "-o", token])
        seconds = max(json.loads(l)["seconds"] for l in p.stdout.splitlines() if l.startswith("{"))
        gen = {bg: judge(generated(f"a {TOKEN} on a {bg} background", f"{precision}-{bg}", token), bg) for bg in BACKGROUNDS}
        edited = []
        for i, (source, caption, info) in enumerate(edits):
            out = os.path.join(args.out, f"{precision}-edit{i}.png")
            run([PIVOT, "edit", source, "--model", args.model, "--embedding", token, "--source", caption, "--target",
                 f"a {TOKEN} on a white background", "--method", "direct", "--output-size", "model", "--no-cache", "--quiet",
                 "-o", out])
            image = Image.open(out).convert("RGB")
            inside = info["mask"] > 0.5
            mean = np.asarray(image, dtype=np.float64)[inside].mean(0)
            colour = min(COLOURS, key=lambda c: np.sum((np.array(COLOURS[c]) - mean) ** 2))
            outside = ~object_mask(Image.open(source), "white") & ~object_mask(image, "white")
            edited.append(dict(path=out, colour=colour, ok=colour == args.colour,
                               background_psnr=psnr(image, Image.open(source).convert("RGB"), outside)))
        results["runs"][precision] = dict(seconds=seconds, generation=gen, edits=edited, token=token)
        ok = {bg: sum(r["ok"] for r in rows) for bg, rows in gen.items()}
        print(precision, f"{seconds:.1f} s", ok, "edits", sum(e["ok"] for e in edited), flush=True)

    with open(os.path.join(args.out, "learn-shapes.json"), "w") as f:
        json.dump(results, f, indent=1)
    n = len(SEEDS)
    lines = [f"| | learnt in | {args.background} (trained) | " + " | ".join(b for b in BACKGROUNDS if b != args.background)
             + " | edits into photos | edit background PSNR (dB) |", "|---|---|---|---|---|---|---|"]
    order = [args.background] + [b for b in BACKGROUNDS if b != args.background]
    lines.append(f"| baseline: \"a {args.init} on a … background\" | – | "
                 + " | ".join(f"{sum(r['ok'] for r in baseline[b])}/{n}" for b in order) + " | – | – |")
    for precision, r in results["runs"].items():
        lines.append(f"| `--precision {precision}` | {r['seconds']:.0f} s | "
                     + " | ".join(f"{sum(x['ok'] for x in r['generation'][b])}/{n}" for b in order)
                     + f" | {sum(e['ok'] for e in r['edits'])}/{len(r['edits'])} | "
                     f"{np.mean([e['background_psnr'] for e in r['edits']]):.1f} |")
    with open(os.path.join(args.out, "learn-shapes.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))

    # The picture: photos; per precision the generations on each background and the edits (source above result).
    cell, gap = size, 4
    rows = [("photos", photos)] + [(f"baseline {b}", [r["path"] for r in baseline[b]]) for b in order[:1]]
    for precision, r in results["runs"].items():
        for b in order:
            rows.append((f"{precision} {b}", [x["path"] for x in r["generation"][b]]))
        rows.append(("edit sources", [e[0] for e in edits]))
        rows.append((f"{precision} edits", [e["path"] for e in r["edits"]]))
    label_w = 110
    sheet = Image.new("RGB", (label_w + 4 * (cell + gap), len(rows) * (cell + gap)), "white")
    draw = ImageDraw.Draw(sheet)
    for y, (label, paths) in enumerate(rows):
        draw.text((4, y * (cell + gap) + cell // 2 - 5), label, fill="black")
        for x, p in enumerate(paths[:4]):
            sheet.paste(Image.open(p).convert("RGB").resize((cell, cell)), (label_w + x * (cell + gap), y * (cell + gap)))
    sheet.save(os.path.join(args.out, "learn-shapes.png"))


if __name__ == "__main__":
    main()
