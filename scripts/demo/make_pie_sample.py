#!/usr/bin/env python3
"""Write `samples/pie-shapes/`: a PIE-Bench-format sample made from the shapes world, for `pivot eval`.

Eight scenes of `scripts/demo/shapes_world.py` (one object each by default, the world the shipped demo model
knows; `--objects 2` for two, one of them edited), rendered at PIE-Bench's 512x512, each with one edit of
PIE-Bench's editing type 6 ("change sth's color"): one object recoloured. The layout is PnPInversion's
(what its `evaluation/evaluate.py` reads and `pivot eval` reads):

    samples/pie-shapes/data/mapping_file.json      entries as PIE-Bench's: image_path, original_prompt and
                                                   editing_prompt (the changed word in [brackets]),
                                                   editing_instruction, editing_type_id "6", blended_word
                                                   ("circle circle"), mask (RLE: [start, length, …] runs of
                                                   ones over the row-major 512x512 grid)
    samples/pie-shapes/data/annotation_images/6_change_attribute_color_8/<key>.png   the sources
    samples/pie-shapes/output/ground-truth/annotation_images/…                       the renderer's ideal edits
    samples/pie-shapes/edits.csv                   a `pivot batch` manifest of the same edits

The mask is the edited object's region: every pixel its anti-aliased coverage touches. The ground-truth
"method" is the same scene with only that object recoloured (`shapes_world.render_variant`), so its background
is the source's exactly (background PSNR inf, MSE 0, SSIM 1): the upper bound a method is measured against.
Edits by pivot go beside it (see the folder's README.md). Deterministic: the same files on every run.

    python3 -m scripts.demo.make_pie_sample [--out samples/pie-shapes] [--count 8] [--objects 1|2]
"""

import argparse
import csv
import json
import os

import numpy as np

from scripts import REPO_ROOT
from scripts.demo import shapes_world as world

SIDE = 512                      # PIE-Bench's image size (the reference decodes masks at 512x512)
TYPE_ID = "6"                   # PIE-Bench's "change sth's color"
FOLDER = "6_change_attribute_color_8"
FIRST_SEED = 7000               # scenes are the first two-object scenes of different shapes from here


def runs_of(mask):
    """RLE of a 0/1 [H, W] array as PIE-Bench stores it: [start, length, …], one pair per run of ones."""
    flat = np.concatenate([[0], mask.reshape(-1).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(flat))
    starts, ends = edges[0::2], edges[1::2]
    return [int(v) for pair in zip(starts, ends - starts) for v in pair]


def scenes(count, objects_per_scene=2):
    """``count`` (seed, objects, background) of ``objects_per_scene`` objects (of different shapes), at 512x512."""
    out, seed = [], FIRST_SEED
    while len(out) < count:
        objects, background = world.sample_objects(seed, SIDE)
        if len(objects) == objects_per_scene and len({o["shape"] for o in objects}) == len(objects):
            out.append((seed, objects, background))
        seed += 1
    return out


def bracketed(objects, background, index, colour):
    """The caption with object ``index`` in ``colour`` (its own when None) and that colour word in brackets."""
    things = []
    for k, o in enumerate(objects):
        c = o["colour"] if k != index or colour is None else colour
        things.append(f"a [{c}] {o['shape']}" if k == index else f"a {c} {o['shape']}")
    return " and ".join(things) + f" on a {background} background"


def write_sample(out, count, objects_per_scene=2):
    mapping, rows = {}, []
    colours = list(world.COLOURS)
    for n, (seed, objects, background) in enumerate(scenes(count, objects_per_scene)):
        key = f"6{n:011d}"
        image_path = f"{FOLDER}/{key}.png"
        index = n % objects_per_scene
        used = {o["colour"] for o in objects}
        colour = [c for c in colours[n % len(colours):] + colours[:n % len(colours)] if c not in used][0]
        image, caption, info = world.render_objects(objects, background, SIDE)
        edited, target, _ = world.render_variant(info, colour=colour, index=index)
        mask = (info["objects"][index]["mask"] > 0).astype(np.uint8)
        edited_object = objects[index]
        for folder, picture in (("data/annotation_images", image), ("output/ground-truth/annotation_images", edited)):
            path = os.path.join(out, folder, image_path)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            picture.save(path, optimize=True)
        mapping[key] = {
            "image_path": image_path,
            "original_prompt": bracketed(objects, background, index, None),
            "editing_prompt": bracketed(objects, background, index, colour),
            "editing_instruction": f"Make the {edited_object['colour']} {edited_object['shape']} {colour}",
            "editing_type_id": TYPE_ID,
            "blended_word": f"{edited_object['shape']} {edited_object['shape']}",
            "mask": runs_of(mask),
            "seed": seed,
        }
        rows.append({"image": image_path, "source": caption, "target": target, "output": image_path,
                     "blend": edited_object["shape"]})
    os.makedirs(os.path.join(out, "data"), exist_ok=True)
    with open(os.path.join(out, "data", "mapping_file.json"), "w") as f:
        # One entry per line (a mask's runs would take a line each with json's indent).
        f.write("{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in mapping.items()) + "\n}\n")
    with open(os.path.join(out, "edits.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["image", "source", "target", "output", "blend"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return mapping


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO_ROOT, "samples", "pie-shapes"))
    ap.add_argument("--count", type=int, default=8)
    ap.add_argument("--objects", type=int, choices=[1, 2], default=1,
                    help="objects a scene (1, the default: the one-object world the shipped demo model knows; "
                         "2: recolour one of two, for a model trained on the two-object world)")
    args = ap.parse_args()
    mapping = write_sample(args.out, args.count, args.objects)
    for key, item in mapping.items():
        print(f"{key}  {item['editing_instruction']}: {item['original_prompt']!r} -> {item['editing_prompt']!r}")
    total = sum(os.path.getsize(os.path.join(d, n)) for d, _, files in os.walk(args.out) for n in files)
    print(f"wrote {len(mapping)} entries to {args.out} ({total} bytes)")


if __name__ == "__main__":
    main()
