#!/usr/bin/env python3
"""Every inversion method on a PIE-Bench-format sample, measured by `pivot eval`, with its cost beside it.

For each method (null-text, negative-prompt, direct, ddim, fixed-point, fixed-point+direct, ddpm) this runs pivot's own
``pivot batch`` over the sample's photos with its manifest (``edits.csv``: source, target, blend word, output
path), writing the edits where PIE-Bench's evaluation expects a method's outputs
(``OUT/output/<method>/annotation_images/…``), then ``pivot eval OUT --json`` over all of them (the sample's
``ground-truth`` folder included, the upper bound). Each method's inversions go to their own cache folder, so
their metadata (null-text's and fixed-point's iterations) give the exact number of UNet evaluations each photo
cost. Reports, per method:

* the PIE-Bench figures ``pivot eval`` computes (background PSNR, MSE, SSIM outside the edited object's mask,
  and the reference's other offline figures),
* UNet evaluations per photo: forward passes (single-sample equivalents: a guided pair counts 2) and
  forward+backward passes (null-text only), the inversion and the edit together,
* seconds per photo on the demo model here (the batch journal's row times, the inversion included),
* seconds per photo projected at SD 1.5 size (512², 50 steps) from the per-pass times measured side by side in
  docs/BENCHMARKS.md on an AMD EPYC Zen 4, 2 threads, under ``--precision auto`` (forward passes bf16
  2.78 s, forward+backward passes fp32 12.2 s, VAE encode 3.2 s and decode 6.3 s in bf16): evaluations ×
  pass times, not a timed run.

Writes ``OUT/methods.json``, ``OUT/methods.md`` (the table for docs/QUALITY.md) and ``OUT/methods.png`` (per
scene: the photo, the ground truth, then each method's edit).

    swift build -c release
    python3 -m scripts.demo.make_pie_sample          # samples/pie-shapes (already committed)
    python3 -m scripts.demo.bench_methods_pie --model samples/models/shapes --out /tmp/pie-methods
"""
import argparse
import csv
import glob
import json
import os
import shutil
import subprocess
import time

import numpy as np
from PIL import Image
from safetensors import safe_open

from scripts import REPO_ROOT

METHODS = ["null-text", "negative-prompt", "direct", "ddim", "fixed-point", "fixed-point+direct", "ddpm"]
# Per-pass seconds at SD 1.5 size (docs/BENCHMARKS.md, AMD EPYC Zen 4, 2 threads, pivot under auto).
SD15 = dict(forward=2.781, gradient=12.217, vae_encode=3.214, vae_decode=6.311)


def unet_evaluations(method, steps, targets, metadata):
    """(forward passes, forward+backward passes) of one photo's inversion and edit, single-sample equivalents.

    The edit renders 1 + targets branches, guided: 2·(1 + targets) samples a step."""
    edit = steps * 2 * (1 + targets)
    if method in ("ddim", "negative-prompt"):
        return steps + edit, 0
    if method == "direct":
        return steps + 2 * steps + edit, 0
    if method == "ddpm":
        return 2 * steps + edit, 0
    if method == "fixed-point":
        iterations = [int(v) for v in metadata["fixed_point_iterations"].split(",")]
        return sum(2 * (1 + k) for k in iterations) + edit, 0
    if method == "fixed-point+direct":  # unguided refinements, then the offsets' guided pair a step
        iterations = [int(v) for v in metadata["fixed_point_iterations"].split(",")]
        return sum(1 + k for k in iterations) + 2 * steps + edit, 0
    if method == "null-text":
        inner = sum(int(v) for v in metadata["null_text_iterations"].split(","))
        # the trajectory, ε_c once a step, the guided step with the final ∅ (its unconditional pass), the edit
        return steps + steps + steps + edit, inner
    raise ValueError(method)


def run_method(pivot, model, sample, out, method, steps, precision, manifest):
    folder = os.path.join(out, "output", method, "annotation_images")
    cache = os.path.join(out, "cache", method)
    for path in (folder, cache):
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
    cmd = [pivot, "batch", os.path.join(sample, "data", "annotation_images"), "--manifest", manifest,
           "--model", model, "-o", folder, "--method", method, "--steps", str(steps), "--precision", precision,
           "--progress", "none", "--json"]
    started = time.time()
    run = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PIVOT_CACHE_DIR=cache))
    wall = time.time() - started
    if run.returncode != 0:
        raise SystemExit(f"{method}: pivot batch failed ({run.returncode}): {run.stderr.strip()[-2000:]}")
    rows = [json.loads(line) for line in open(os.path.join(folder, "pivot-batch.jsonl")) if line.strip()]
    ok = [r for r in rows if r.get("status") == "ok"]
    metas = []
    for entry in glob.glob(os.path.join(cache, "*.safetensors")):
        with safe_open(entry, "np") as f:
            metas.append(f.metadata())
    return dict(rows=len(rows), ok=len(ok), seconds=[r["seconds"] for r in ok], wall=wall, metadata=metas)


def picture(sample, out, methods, scenes, path):
    mapping = json.load(open(os.path.join(sample, "data", "mapping_file.json")))
    keys = sorted(mapping)[:scenes]
    columns = ["photo", "ground-truth"] + methods
    tile = 96
    canvas = Image.new("RGB", (tile * len(columns), tile * len(keys)), "white")
    for r, key in enumerate(keys):
        rel = mapping[key]["image_path"]
        for c, name in enumerate(columns):
            src = (os.path.join(sample, "data", "annotation_images", rel) if name == "photo" else
                   os.path.join(sample if name == "ground-truth" else out, "output", name, "annotation_images", rel))
            if os.path.exists(src):
                canvas.paste(Image.open(src).convert("RGB").resize((tile, tile), Image.BICUBIC), (c * tile, r * tile))
    canvas.save(path)
    return columns


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(REPO_ROOT, "samples/models/shapes"))
    ap.add_argument("--sample", default=os.path.join(REPO_ROOT, "samples/pie-shapes"))
    ap.add_argument("--pivot", default=os.path.join(REPO_ROOT, ".build/release/pivot"))
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--out", default="/tmp/pie-methods")
    ap.add_argument("--no-blend", action="store_true",
                    help="drop the manifest's blend words (local blend), for a model whose words do not attend to their objects")
    args = ap.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    os.makedirs(args.out, exist_ok=True)
    # The evaluation reads OUT/data and OUT/output/<method>: link the sample's data and its ground truth.
    for name, src in (("data", os.path.join(args.sample, "data")),
                      (os.path.join("output", "ground-truth"), os.path.join(args.sample, "output", "ground-truth"))):
        dst = os.path.join(args.out, name)
        os.makedirs(os.path.dirname(dst) or args.out, exist_ok=True)
        if not os.path.lexists(dst):
            os.symlink(os.path.abspath(src), dst)
    manifest = os.path.join(args.sample, "edits.csv")
    if args.no_blend:
        with open(manifest, newline="") as f:
            rows = list(csv.DictReader(f))
        manifest = os.path.join(args.out, "edits-no-blend.csv")
        with open(manifest, "w", newline="") as f:
            fields = [k for k in rows[0] if k != "blend"]
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
    targets = 1
    results = {}
    for method in methods:
        print(f"== {method}", flush=True)
        r = run_method(args.pivot, args.model, args.sample, args.out, method, args.steps, args.precision, manifest)
        evals = [unet_evaluations(method, args.steps, targets, m) for m in r["metadata"]]
        fwd = float(np.mean([e[0] for e in evals])) if evals else float("nan")
        grad = float(np.mean([e[1] for e in evals])) if evals else float("nan")
        sd15 = fwd * SD15["forward"] + grad * SD15["gradient"] + SD15["vae_encode"] + (1 + targets) * SD15["vae_decode"]
        results[method] = dict(rows=r["rows"], ok=r["ok"], seconds=float(np.mean(r["seconds"])) if r["seconds"] else None,
                               forward=fwd, gradient=grad, sd15_seconds=sd15)
        print(f"   {r['ok']}/{r['rows']} rows, {results[method]['seconds']:.2f} s a photo, {fwd:.0f} forward + {grad:.0f} "
              f"forward+backward passes, SD 1.5 projection {sd15 / 60:.1f} min", flush=True)
    run = subprocess.run([args.pivot, "eval", args.out, "--json"], capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"pivot eval failed: {run.stderr.strip()}")
    report = json.loads(run.stdout)
    json.dump(dict(model=args.model, steps=args.steps, precision=args.precision, costs=results, eval=report),
              open(os.path.join(args.out, "methods.json"), "w"), indent=1)
    columns = picture(args.sample, args.out, methods, 6, os.path.join(args.out, "methods.png"))
    with open(os.path.join(args.out, "methods.md"), "w") as f:
        f.write(render_table(report, results, methods))
    print(open(os.path.join(args.out, "methods.md")).read())
    print(f"picture: {os.path.join(args.out, 'methods.png')} (columns: {', '.join(columns)})")


def render_table(report, costs, methods):
    """The means `pivot eval --json` reports per method (raw values; "nan"/"inf" as strings), with each
    method's costs."""
    per = {m["name"]: m for m in report.get("methods", [])}
    metric_names = list(report.get("metrics", []))
    head = ["method"] + metric_names + ["forward passes", "fwd+bwd passes", "s/photo here", "SD 1.5 min/photo (projected)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in ["ground-truth"] + methods:
        m = per.get(name, {})
        vals = [fmt(m.get("mean", {}).get(k)) for k in metric_names]
        c = costs.get(name)
        cost = ([f"{c['forward']:.0f}", f"{c['gradient']:.0f}", f"{c['seconds']:.2f}", f"{c['sd15_seconds'] / 60:.1f}"]
                if c else ["–"] * 4)
        lines.append("| " + " | ".join([name] + vals + cost) + " |")
    return "\n".join(lines) + "\n"


def fmt(v):
    if v is None:
        return "–"
    if isinstance(v, float):
        return "nan" if v != v else f"{v:.4g}"
    return str(v)


if __name__ == "__main__":
    main()
