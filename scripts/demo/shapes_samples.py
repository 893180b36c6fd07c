#!/usr/bin/env python3
"""Write the sample scenes of the shapes world that the README edits with `samples/models/shapes`.

Each scene is a 128x128 PNG `samples/shapes/<name>.png` rendered by `scripts/demo/shapes_world.py` from fixed
parameters (no randomness), and `samples/shapes/captions.txt` lists them, one per line, as
``<name>.png<TAB><caption>`` (the caption is the `--source` prompt of an edit).  With ``--truth`` the
ground truth of an edit of every scene (the same scene with one object in another colour, see `EDITS`) is written
too, as `samples/shapes/<name>.<colour>.png`.

Run from the package root:

    python3 -m scripts.demo.shapes_samples [--out samples/shapes] [--truth]

and edit one of them, e.g.

    pivot edit samples/shapes/red-circle-blue-square.png --model samples/models/shapes \\
        --source "a red circle and a blue square on a white background" \\
        --target "a green circle and a blue square on a white background"
"""

import argparse
import os


from scripts.demo import shapes_world as world  # noqa: E402
from scripts import REPO_ROOT  # noqa: E402

ROOT = REPO_ROOT

# name: (objects as (colour, shape, cx, cy, size, angle), background), sizes in pixels of a 128x128 image
SCENES = {
    "red-circle": ([("red", "circle", 60.0, 66.0, 68.0, 0.0)], "white"),
    "blue-square": ([("blue", "square", 68.0, 60.0, 76.0, 20.0)], "gray"),
    "green-triangle": ([("green", "triangle", 64.0, 68.0, 80.0, 0.0)], "black"),
    "yellow-circle": ([("yellow", "circle", 72.0, 60.0, 56.0, 0.0)], "black"),
    "orange-square": ([("orange", "square", 56.0, 68.0, 72.0, 45.0)], "white"),
    "purple-triangle": ([("purple", "triangle", 66.0, 62.0, 72.0, 200.0)], "gray"),
    "red-circle-blue-square": ([("red", "circle", 38.0, 42.0, 46.0, 0.0),
                                ("blue", "square", 88.0, 84.0, 48.0, 15.0)], "white"),
    "yellow-triangle-purple-circle": ([("yellow", "triangle", 84.0, 40.0, 50.0, 10.0),
                                       ("purple", "circle", 40.0, 86.0, 44.0, 0.0)], "gray"),
}
# the object and colour each scene is edited to in the README (and its ground truth with --truth)
EDITS = {
    "red-circle": (0, "blue"), "blue-square": (0, "red"), "green-triangle": (0, "yellow"),
    "yellow-circle": (0, "purple"), "orange-square": (0, "green"), "purple-triangle": (0, "orange"),
    "red-circle-blue-square": (0, "green"), "yellow-triangle-purple-circle": (1, "orange"),
}


def scene(name):
    """``(image, caption, info)`` of the sample ``name``."""
    objects, background = SCENES[name]
    keys = ("colour", "shape", "cx", "cy", "size", "angle")
    return world.render_objects([dict(zip(keys, o)) for o in objects], background)


def write_samples(out, truth=False):
    """Render every scene (and with ``truth`` its edit's ground truth) into ``out``; returns the lines."""
    os.makedirs(out, exist_ok=True)
    lines = []
    for name in SCENES:
        image, caption, info = scene(name)
        image.save(os.path.join(out, f"{name}.png"))
        lines.append(f"{name}.png\t{caption}")
        if truth:
            index, colour = EDITS[name]
            edited, _, _ = world.render_variant(info, colour=colour, index=index)
            edited.save(os.path.join(out, f"{name}.{colour}.png"))
    with open(os.path.join(out, "captions.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "samples", "shapes"))
    ap.add_argument("--truth", action="store_true", help="also write the ground truth of each scene's edit")
    args = ap.parse_args()
    for line in write_samples(args.out, args.truth):
        print(line.replace("\t", "  "))
    print(f"wrote {len(SCENES)} scenes and captions.txt to {args.out}")


if __name__ == "__main__":
    main()
