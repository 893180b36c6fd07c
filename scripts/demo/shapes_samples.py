#!/usr/bin/env python3
"""Write the sample scenes of the shapes world that the README edits with `samples/models/shapes`.

Each scene is a 64x64 PNG `samples/shapes/<name>.png` rendered by `scripts/demo/shapes_world.py` from fixed
parameters (no randomness), and `samples/shapes/captions.txt` lists them, one per line, as
``<name>.png<TAB><caption>`` (the caption is the `--source` prompt of an edit).  With ``--truth`` the
ground truth of an edit of every scene (the same scene with another colour, see `EDITS`) is written
too, as `samples/shapes/<name>.<colour>.png`.

Run from the package root:

    python3 -m scripts.demo.shapes_samples [--out samples/shapes] [--truth]

and edit one of them, e.g.

    pivot edit samples/shapes/red-circle.png --model samples/models/shapes \\
        --source "a red circle on a white background" --target "a blue circle on a white background"
"""

import argparse
import os
import sys


from scripts.demo import shapes_world as world  # noqa: E402
from scripts import REPO_ROOT  # noqa: E402

ROOT = REPO_ROOT

# name: (colour, shape, background, cx, cy, size, angle), sizes in pixels of a 64x64 image
SCENES = {
    "red-circle": ("red", "circle", "white", 30.0, 33.0, 34.0, 0.0),
    "blue-square": ("blue", "square", "gray", 34.0, 30.0, 38.0, 20.0),
    "green-triangle": ("green", "triangle", "black", 32.0, 34.0, 40.0, 0.0),
    "yellow-circle": ("yellow", "circle", "black", 36.0, 30.0, 28.0, 0.0),
    "orange-square": ("orange", "square", "white", 28.0, 34.0, 36.0, 45.0),
    "purple-triangle": ("purple", "triangle", "gray", 33.0, 31.0, 36.0, 200.0),
}
# the colour each scene is edited to in the README (and its ground truth with --truth)
EDITS = {
    "red-circle": "blue", "blue-square": "red", "green-triangle": "yellow",
    "yellow-circle": "purple", "orange-square": "green", "purple-triangle": "orange",
}


def write_samples(out, truth=False):
    """Render every scene (and with ``truth`` its edit's ground truth) into ``out``; returns the lines."""
    os.makedirs(out, exist_ok=True)
    lines = []
    for name, params in SCENES.items():
        image, caption, info = world.render_scene(*params)
        image.save(os.path.join(out, f"{name}.png"))
        lines.append(f"{name}.png\t{caption}")
        if truth:
            colour = EDITS[name]
            edited, _, _ = world.render_variant(info, colour=colour)
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
