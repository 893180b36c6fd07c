#!/usr/bin/env python3
"""Prompt-to-Prompt on the shapes world: does only what the words changed change?

Held-out scenes with two objects (seeds from 1,000,000 up, never trained on; the first ``--scenes`` of them
with two objects) are edited by pivot's own ``pivot batch`` (release build, inversions cached per method, so
every edit of a scene reuses one inversion), one object at a time (object 0 in even scenes, 1 in odd ones):

* **recolour**: that object's colour word swapped for a colour neither object has;
* **recolour + blend**: the same with ``blend`` = the old and the new colour word;
* **shape swap**: that object's shape word swapped;
* **reweight 0.5 / 2**: the source prompt with that object's colour word reweighted.

The renderer draws the ground truth of the recolour and the shape swap. Per edit, on what pivot writes by
default (the photo plus the change the edit made, ``output``) and on the model's own rendering (``render``):

* colour success: inside the edited object's ground-truth mask, the mean colour is nearest to the target's;
* other object: PSNR inside the other object's mask (coverage > 0.5) against the photo;
* background: PSNR outside both objects' source and target masks dilated by 2 pixels, against the photo;
* shape success: near the edited object (its source and target masks, dilated by 4 pixels), the pixels far
  from the background colour overlap the target shape better (IoU) than the source shape;
* reweight: the mean HSV saturation inside the object; success when 0.5 gives less than 2 does.

Every method (null-text, negative-prompt, direct, ddim) runs the recolour; the default method (null-text at
its defaults unless ``--steps``/``--inner-steps``/``--pivot-args`` say otherwise) runs every edit (or the
``--edits`` named). With ``--attention`` (the
default) it also measures where the words look: the scene's DDIM inversion under its caption in diffusers
(same weights), the conditional cross-attention of the 16x16 down and up layers averaged over heads, layers
and steps (P2P's maps), and per colour or shape word the share of that map's mass inside its object's
coverage (block-averaged to 16x16), and per object pixel the share of its attention its own colour and shape
words get (what P2P's reweighting scales). Writes ``--out/p2p.json``, ``--out/p2p.md``, per method the scores of every
scene ``--out/<method>-scenes.csv``, and a picture of a few scenes' edits ``--out/p2p-examples.png``.

    swift build -c release --product pivot
    python3 -m scripts.demo.bench_p2p_shapes --model samples/models/shapes --scenes 100 --out /tmp/p2p
"""
import argparse
import colorsys
import csv
import json
import math
import os
import shlex
import subprocess
import sys
import time

import numpy as np
from PIL import Image

from scripts.demo import shapes_world as world  # noqa: E402
from scripts import REPO_ROOT  # noqa: E402

ROOT = REPO_ROOT
METHODS = ["null-text", "negative-prompt", "direct", "ddim"]
EDITS = ["recolour", "recolour_blend", "shape", "reweight_low", "reweight_high"]
SEED_BASE = 1_000_000


def psnr(a, b, mask=None):
    """PSNR (dB) of two RGB images (arrays or PIL images, 0-255) over the pixels of ``mask`` [H, W] bool (every
    pixel when None); NaN for an empty mask (no pixels to compare), 99 for identical pixels."""
    d = (np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) / 255
    se = (d ** 2).mean(-1)
    se = se.ravel() if mask is None else se[mask]
    if se.size == 0:
        return float("nan")
    mse = se.mean()
    return 99.0 if mse == 0 else float(10 * np.log10(1 / mse))


def dilate(mask, r):
    """``mask`` [H, W] bool grown by ``r`` pixels (a square neighbourhood), not wrapping round the borders."""
    out = mask.copy()
    h, w = mask.shape
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            shifted = np.zeros_like(mask)
            shifted[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
                mask[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
            out |= shifted
    return out


def saturation(pixels):
    if len(pixels) == 0:
        return float("nan")
    return float(np.mean([colorsys.rgb_to_hsv(*(p / 255.0))[1] for p in pixels]))


def replace_word(caption, index, word):
    words = caption.split()
    words[index] = word
    return " ".join(words)


def two_object_scenes(n):
    """The first ``n`` held-out scenes with two objects, each with its edits' prompts and ground truths."""
    out, seed = [], SEED_BASE
    while len(out) < n:
        image, caption, info = world.render(seed)
        seed += 1
        if len(info["objects"]) != 2:
            continue
        i = len(out)
        k = i % 2
        obj, other = info["objects"][k], info["objects"][1 - k]
        colours = [c for c in world.COLOURS if c not in (obj["colour"], other["colour"])]
        colour = colours[(i // 2) % len(colours)]
        shapes = [s for s in world.SHAPES if s != obj["shape"]]
        shape = shapes[(i // 2) % len(shapes)]
        recoloured = world.render_variant(info, colour=colour, index=k)
        reshaped = world.render_variant(info, shape=shape, index=k)
        out.append(dict(
            index=i, seed=seed - 1, image=image, caption=caption, info=info, k=k,
            colour=colour, shape=shape, recoloured=recoloured, reshaped=reshaped,
            targets=dict(
                recolour=(replace_word(caption, 1 + 4 * k, colour), {}),
                recolour_blend=(replace_word(caption, 1 + 4 * k, colour), {"blend": f"{obj['colour']} {colour}"}),
                shape=(replace_word(caption, 2 + 4 * k, shape), {}),
                reweight_low=(caption, {"reweight": f"{obj['colour']}=0.5"}),
                reweight_high=(caption, {"reweight": f"{obj['colour']}=2"}))))
    return out


def run_batch(exe, args, method, data, edits, photos):
    """One `pivot batch` of ``edits`` for every scene; returns {(scene, edit): (reconstruction, rendering)}
    and the seconds per row from pivot's --json lines."""
    out = os.path.join(args.out, method)
    manifest = os.path.join(args.out, f"{method}.csv")
    keys = sorted({key for s in data for e in edits for key in s["targets"][e][1]})
    with open(manifest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "source", "target", "output"] + keys)
        for s in data:
            for e in edits:
                target, extra = s["targets"][e]
                w.writerow([f"scene{s['index']:03d}.png", s["caption"], target, f"scene{s['index']:03d}-{e}.png"]
                           + [extra.get(key, "") for key in keys])
    cmd = [exe, "batch", photos, "--model", args.model, "-o", out, "--manifest", manifest, "--method", method,
           "--side-by-side", "--output-size", "model", "--progress", "none", "--json"]
    if args.steps:
        cmd += ["--steps", str(args.steps)]
    if args.inner_steps:
        cmd += ["--inner-steps", str(args.inner_steps)]
    if args.guidance:
        cmd += ["--guidance", str(args.guidance)]
    cmd += shlex.split(args.pivot_args)
    env = dict(os.environ, PIVOT_CACHE_DIR=os.path.join(args.out, "cache", method))
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"pivot batch failed for {method}: {r.stderr[-2000:]}")
    seconds = [json.loads(line)["seconds"] for line in r.stdout.splitlines() if '"seconds"' in line]
    results = {}
    for s in data:
        for e in edits:
            pair = np.asarray(Image.open(os.path.join(out, f"scene{s['index']:03d}-{e}.png")).convert("RGB"))
            side = pair.shape[1] // 2
            results[(s["index"], e)] = (pair[:, :side], pair[:, side:])
    return results, seconds, time.time() - t0


def composite(photo, recon, edit):
    """What pivot writes by default at the model's size: the photo plus the change where it exceeds 1/255."""
    change = edit.astype(np.int32) - recon.astype(np.int32)
    moved = (np.abs(change) > 1).any(-1, keepdims=True)
    return np.where(moved, np.clip(photo.astype(np.int32) + change, 0, 255), photo).astype(np.uint8)


def score(s, edit_name, image):
    """The metrics of one edited image of scene ``s``."""
    info, k = s["info"], s["k"]
    photo = np.asarray(s["image"])
    src = [o["mask"] > 0.5 for o in info["objects"]]
    truth_info = (s["reshaped"] if edit_name == "shape" else s["recoloured"])[2]
    tgt = [o["mask"] > 0.5 for o in truth_info["objects"]]
    outside = ~dilate(src[0] | src[1] | tgt[0] | tgt[1], 2)
    m = dict(background=psnr(image, photo, outside), other=psnr(image, photo, src[1 - k] & tgt[1 - k]))
    if edit_name in ("recolour", "recolour_blend"):
        mean = image[tgt[k]].mean(0)
        m["colour_ok"] = world.nearest_colour(mean) == s["colour"]
    elif edit_name == "shape":
        bg = np.asarray(world.BACKGROUNDS[info["background"]], dtype=np.float64)
        near = dilate(src[k] | tgt[k], 4) & ~dilate(src[1 - k], 1)
        obj = (np.sqrt(((image.astype(np.float64) - bg) ** 2).sum(-1)) > 60) & near

        def iou(mask):
            return (obj & mask).sum() / max((obj | mask).sum(), 1)
        m["shape_ok"] = bool(iou(tgt[k]) > iou(src[k]))
    else:
        m["saturation"] = saturation(image[src[k]].astype(np.float64))
    return m


def summarise(rows, data, edits):
    """Means and rates over the scenes, per edit."""
    out = {}
    for e in edits:
        ms = [rows[(s["index"], e)] for s in data]
        r = dict(background_psnr=float(np.nanmean([m["background"] for m in ms])),
                 background_psnr_min=float(np.nanmin([m["background"] for m in ms])),
                 other_object_psnr=float(np.nanmean([m["other"] for m in ms])),
                 other_object_psnr_min=float(np.nanmin([m["other"] for m in ms])))
        if "colour_ok" in ms[0]:
            r["colour_success"] = float(np.mean([m["colour_ok"] for m in ms]))
        if "shape_ok" in ms[0]:
            r["shape_success"] = float(np.mean([m["shape_ok"] for m in ms]))
        if "saturation" in ms[0]:
            r["saturation"] = float(np.nanmean([m["saturation"] for m in ms]))
        out[e] = r
    if "reweight_low" in edits and "reweight_high" in edits:
        order = [rows[(s["index"], "reweight_low")]["saturation"] < rows[(s["index"], "reweight_high")]["saturation"]
                 for s in data]
        out["reweight_order"] = float(np.mean(order))
    return out


def inversion_maps(pipe, recorder, z, caption, steps):
    """{side: [1, side * side, 77]}: the cross-attention maps of a DDIM inversion of the latent ``z`` under
    ``caption`` (``steps`` steps; ``recorder`` a `CrossAttentionRecorder` installed on ``pipe.unet``),
    averaged over the steps and over the layers of each side (at the latent's own side, P2P's 16x16 here, the
    down and up layers; the mid block sits at half of it)."""
    import torch
    from diffusers import DDIMInverseScheduler
    from scripts.demo.shapes_model import tokenize

    inverse = DDIMInverseScheduler.from_config(pipe.scheduler.config)
    inverse.set_timesteps(steps)
    totals, layers = {}, {}
    with torch.no_grad():
        context = pipe.text_encoder(tokenize(pipe.tokenizer, [caption]))[0]
        for t in inverse.timesteps:
            recorder.maps.clear()
            recorder.recording = True
            eps = pipe.unet(z, t, context).sample
            recorder.recording = False
            for m in recorder.maps:  # [1, N, 77]
                side = int(round(math.sqrt(m.shape[1])))
                totals[side] = m if side not in totals else totals[side] + m
                layers[side] = layers.get(side, 0) + 1
            z = inverse.step(eps, t, z).prev_sample
    return {side: totals[side] / layers[side] for side in totals}


def attention_shares(model, data, steps):
    """Per colour/shape word of every scene, the share of its P2P map (16x16, DDIM inversion) inside its object."""
    import torch
    from diffusers import StableDiffusionPipeline
    from scripts.demo.shapes_losses import CrossAttentionRecorder, token_inside
    from scripts.demo.shapes_model import encode_image, region_masks, word_slots

    pipe = StableDiffusionPipeline.from_pretrained(model, safety_checker=None, requires_safety_checker=False)
    tokenizer = pipe.tokenizer
    recorder = CrossAttentionRecorder()
    recorder.install(pipe.unet)
    colour, shape = [], []
    reads = dict(colour=[], shape=[], start=[])  # what an object pixel reads: its colour word, shape word, <sot>
    with torch.no_grad():
        for s in data:
            by_side = inversion_maps(pipe, recorder, encode_image(pipe.vae, s["image"]), s["caption"], steps)
            side = max(by_side)  # the latent's own side
            maps = by_side[side]
            pos, reg = word_slots(tokenizer, s["caption"], s["info"])
            masks = torch.from_numpy(region_masks(s["info"], side))[None]
            inside = token_inside([maps], torch.tensor([pos]), torch.tensor([reg]), masks)[0, 0]
            for j, (word, region) in enumerate(world.word_regions(s["info"])):
                if region == "background":
                    continue
                (colour if word % 4 == 1 else shape).append(float(inside[j]))
            for k in range(len(s["info"]["objects"])):
                pixels = masks[0, k].flatten() > 0.5
                if pixels.any():
                    rows = maps[0][pixels]  # [pixels, 77]
                    reads["colour"].append(float(rows[:, pos[2 * k]].mean()))
                    reads["shape"].append(float(rows[:, pos[2 * k + 1]].mean()))
                    reads["start"].append(float(rows[:, 0].mean()))
    both = colour + shape
    return dict(colour_mean=float(np.mean(colour)), shape_mean=float(np.mean(shape)), mean=float(np.mean(both)),
                median=float(np.median(both)), min=float(np.min(both)),
                at_least_70=float(np.mean([v >= 0.7 for v in both])), words=len(both),
                pixel_colour=float(np.mean(reads["colour"])), pixel_shape=float(np.mean(reads["shape"])),
                pixel_start=float(np.mean(reads["start"])))


def example_grid(data, renders, path, n=6):
    """Rows: photo, recolour, recolour + blend, shape swap, reweight 0.5, reweight 2 (null-text output)."""
    side = world.IMAGE_SIZE
    grid = Image.new("RGB", (side * 6, side * n), "white")
    for r, s in enumerate(data[:n]):
        grid.paste(s["image"], (0, r * side))
        for c, e in enumerate(EDITS):
            grid.paste(Image.fromarray(renders[(s["index"], e)]), ((c + 1) * side, r * side))
    grid.save(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(ROOT, "samples/models/shapes"))
    ap.add_argument("--scenes", type=int, default=100)
    ap.add_argument("--steps", type=int, default=0, help="DDIM steps (default: pivot's, 50)")
    ap.add_argument("--inner-steps", type=int, default=0, help="null-text inner steps (default: pivot's, 10)")
    ap.add_argument("--guidance", type=float, default=0, help="guidance scale (default: pivot's, 7.5)")
    ap.add_argument("--methods", nargs="+", default=METHODS)
    ap.add_argument("--edits", nargs="+", default=EDITS, choices=EDITS,
                    help="the default method's edits (default: all; recolour always runs)")
    ap.add_argument("--pivot-args", default="",
                    help="more `pivot batch` flags for every edit, e.g. \"--self-replace 0.6\" (default: none)")
    ap.add_argument("--no-attention", dest="attention", action="store_false")
    ap.add_argument("--out", default="/tmp/p2p")
    args = ap.parse_args()
    exe = os.path.join(ROOT, ".build/release/pivot")
    photos = os.path.join(args.out, "photos")
    os.makedirs(photos, exist_ok=True)
    data = two_object_scenes(args.scenes)
    for s in data:
        s["image"].save(os.path.join(photos, f"scene{s['index']:03d}.png"))
    report = dict(scenes=args.scenes, steps=args.steps or 50, inner_steps=args.inner_steps or 10,
                  pivot_args=args.pivot_args, methods={})
    for method in args.methods:
        edits = ["recolour"] + [e for e in args.edits if e != "recolour"] if method == METHODS[0] else ["recolour"]
        results, seconds, wall = run_batch(exe, args, method, data, edits, photos)
        out_rows, render_rows, recon = {}, {}, []
        outputs = {}
        for s in data:
            photo = np.asarray(s["image"])
            for e in edits:
                rec, edit = results[(s["index"], e)]
                outputs[(s["index"], e)] = composite(photo, rec, edit)
                out_rows[(s["index"], e)] = score(s, e, outputs[(s["index"], e)])
                render_rows[(s["index"], e)] = score(s, e, edit)
            recon.append(psnr(results[(s["index"], edits[0])][0], photo, np.ones(photo.shape[:2], bool)))
        report["methods"][method] = dict(
            output=summarise(out_rows, data, edits), render=summarise(render_rows, data, edits),
            reconstruction_psnr=float(np.mean(recon)), seconds_per_row=float(np.mean(seconds)),
            seconds_per_scene=wall / len(data), rows=len(seconds))
        print(method, json.dumps(report["methods"][method]), flush=True)
        write_scene_rows(os.path.join(args.out, f"{method}-scenes.csv"), data, edits, out_rows, recon)
        if method == METHODS[0] and len(edits) == len(EDITS):
            example_grid(data, outputs, os.path.join(args.out, "p2p-examples.png"))
    if args.attention:
        report["attention"] = attention_shares(args.model, data, report["steps"])
        print("attention", json.dumps(report["attention"]), flush=True)
    with open(os.path.join(args.out, "p2p.json"), "w") as f:
        json.dump(report, f, indent=1)
    lines = markdown(report)
    with open(os.path.join(args.out, "p2p.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def write_scene_rows(path, data, edits, rows, recon):
    """Per scene and edit, what was asked and how the output scored (to see which edits fail, and how)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["scene", "edit", "source", "object", "target", "reconstruction", "background", "other", "result"])
        for s, rec in zip(data, recon):
            obj = s["info"]["objects"][s["k"]]
            for e in edits:
                m = rows[(s["index"], e)]
                target = dict(recolour=s["colour"], recolour_blend=s["colour"], shape=s["shape"]).get(e, "")
                result = m.get("colour_ok", m.get("shape_ok", m.get("saturation")))
                w.writerow([s["index"], e, s["caption"], f"{obj['colour']} {obj['shape']}", target, f"{rec:.1f}",
                            f"{m['background']:.1f}", f"{m['other']:.1f}", result])


def markdown(report):
    lines = ["| method | output | recolour: colour | other object (dB) | background (dB) | recolour + blend: background (dB) "
             "| shape swap | reweight 0.5 < 2 | reconstruction (dB) | s / scene |", "|---|---|---|---|---|---|---|---|---|---|"]
    for method, r in report["methods"].items():
        for kind in ("output", "render"):
            m = r[kind]
            rc = m["recolour"]
            blend = f"{m['recolour_blend']['background_psnr']:.1f}" if "recolour_blend" in m else "–"
            shape = f"{m['shape']['shape_success']:.0%}" if "shape" in m else "–"
            order = f"{m['reweight_order']:.0%}" if "reweight_order" in m else "–"
            lines.append(f"| {method} | {kind} | {rc['colour_success']:.0%} | {rc['other_object_psnr']:.1f} | "
                         f"{rc['background_psnr']:.1f} | {blend} | {shape} | {order} | {r['reconstruction_psnr']:.1f} | "
                         f"{r['seconds_per_scene']:.1f} |")
    if "attention" in report:
        a = report["attention"]
        lines += ["", f"Attention inside the object (P2P's 16x16 maps over the DDIM inversion, {a['words']} words): "
                  f"colour words {a['colour_mean']:.1%}, shape words {a['shape_mean']:.1%}, median {a['median']:.1%}, "
                  f"worst {a['min']:.1%}; {a['at_least_70']:.0%} of the words have at least 70%. An object pixel "
                  f"gives {a['pixel_colour']:.1%} of its attention to its colour word, {a['pixel_shape']:.1%} to its "
                  f"shape word and {a['pixel_start']:.1%} to <|startoftext|>."]
    return lines


if __name__ == "__main__":
    main()
