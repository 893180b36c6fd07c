#!/usr/bin/env python3
"""The shapes world: a deterministic renderer of one or two coloured shapes on a plain background.

It is the training world of the demo model `samples/models/shapes` (see `scripts/demo/train_shapes.py`) and
the ground truth of its edits: every scene is a function of its parameters, so the same scene can be
rendered again with only one object's colour or shape (or the background) changed, which is exactly what a
perfect edit should produce.

A scene (`render(seed)`, 128x128) holds one object (probability 0.4: a circle, square or triangle, 1/3 to 2/3
of the side, as the first demo world had) or two (0.6: of different colours, each 1/4 to 0.42 of the side,
their discs at least 4 pixels apart) in the colours of `COLOURS` on one of `BACKGROUNDS`, captioned exactly
``"a {colour} {shape} on a {background} background"`` or ``"a {colour} {shape} and a {colour} {shape} on a
{background} background"`` with the two objects in a random order; squares and triangles are randomly
rotated. Edges are anti-aliased by 4x supersampling and a 4x4 box filter; each object's coverage (a float
mask in [0, 1]) is returned with the parameters, for ground-truth metrics ("did the edit keep the other
object?") and for the token loss that puts each word's attention on its object (`word_regions`).

Library use:

    from scripts.demo.shapes_world import render, render_objects, render_scene, render_variant
    image, caption, info = render(5)                 # PIL RGB 128x128, caption, parameters + masks
    edited, caption2, info2 = render_variant(info, colour="blue", index=1)   # the ideal edit of object 1
    image = render_scene("red", "circle", "white", cx=60, cy=68, size=56, angle=0)[0]
    image = render_objects([dict(colour="red", shape="circle", cx=40, cy=40, size=40, angle=0),
                            dict(colour="blue", shape="square", cx=90, cy=88, size=44, angle=15)], "white")[0]

Command line (prints the caption):

    python3 -m scripts.demo.shapes_world --seed 5 -o out.png
    python3 -m scripts.demo.shapes_world --seed 5 --colour blue --index 1 -o edited.png   # same scene, recoloured
"""

import argparse
import json
import math
import os

import numpy as np
from PIL import Image

IMAGE_SIZE = 128
SUPERSAMPLE = 4

# Fixed RGB values.  Names are single CLIP tokens.
COLOURS = {
    "red": (220, 30, 40),
    "green": (40, 170, 60),
    "blue": (40, 70, 220),
    "yellow": (240, 210, 40),
    "orange": (245, 130, 30),
    "purple": (140, 60, 180),
}
SHAPES = ("circle", "square", "triangle")
BACKGROUNDS = {
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "gray": (128, 128, 128),
}
# Object size (the diameter of the disc it fits, see `shape_mask`) as a fraction of the image side.
SIZE_RANGE = (1 / 3, 2 / 3)
# Scenes with two objects: how often, each object's size, and the least gap between their discs (pixels).
TWO_OBJECTS = 0.6
PAIR_SIZE_RANGE = (1 / 4, 0.42)
PAIR_GAP = 4.0


def caption_of(colour, shape, background):
    """The caption of a scene, exactly as the model was trained on."""
    return f"a {colour} {shape} on a {background} background"


def _square_side(size):
    # inscribed in the circle of diameter ``size``
    return size / math.sqrt(2)


def _triangle_radius(size):
    # equilateral, inscribed in the circle of diameter ``size`` (its height is 0.75 size)
    return size / 2


def shape_mask(shape, cx, cy, size, angle, image_size=IMAGE_SIZE, supersample=SUPERSAMPLE):
    """Coverage in [0, 1] (float32 [H, W]) of the object, by supersampling and a box filter.

    ``cx, cy`` are the centre in pixels (pixel (i, j) covers [j, j+1] x [i, i+1]); ``size`` is the
    diameter of the circle, or of the circle the square or the (equilateral) triangle is inscribed in, so
    every shape of a given size and centre fits the same disc at any angle; ``angle`` (degrees) rotates
    the square and the triangle about the centre (a triangle at 0 points up).
    """
    n = image_size * supersample
    coords = (np.arange(n, dtype=np.float64) + 0.5) / supersample
    x = coords[None, :] - cx
    y = coords[:, None] - cy
    a = math.radians(angle)
    # rotate the sample points by -angle, i.e. the object by +angle
    u = x * math.cos(a) + y * math.sin(a)
    v = -x * math.sin(a) + y * math.cos(a)
    if shape == "circle":
        inside = x * x + y * y <= (size / 2) ** 2
    elif shape == "square":
        h = _square_side(size) / 2
        inside = (np.abs(u) <= h) & (np.abs(v) <= h)
    elif shape == "triangle":
        r = _triangle_radius(size)
        inside = np.ones((n, n), dtype=bool)
        for k in range(3):
            # the edge opposite vertex k; vertices at angles -90 + 120 k (pointing up when angle = 0)
            t = math.radians(90 + 120 * k)
            nx, ny = math.cos(t), math.sin(t)  # outward normal of that edge (y points down)
            inside &= u * nx + v * ny <= r / 2
    else:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    cover = inside.astype(np.float32).reshape(image_size, supersample, image_size, supersample)
    return cover.mean(axis=(1, 3))


def saturated(colour_rgb, scale):
    """``colour_rgb`` moved away from (scale > 1) or towards (scale < 1) its grey of the same luma (Rec. 601),
    clipped to [0, 255]; float64 [3]. Scale 1 returns the colour itself."""
    c = np.asarray(colour_rgb, dtype=np.float64)
    if scale == 1:
        return c
    grey = float(c @ np.array([0.299, 0.587, 0.114]))
    return np.clip(grey + scale * (c - grey), 0, 255)


def composite(mask, colour_rgb, background_rgb):
    """uint8 [H, W, 3] image: the background with the colour laid over by coverage ``mask``."""
    m = mask[..., None].astype(np.float64)
    fg = np.asarray(colour_rgb, dtype=np.float64)
    bg = np.asarray(background_rgb, dtype=np.float64)
    return np.clip(np.rint(bg * (1 - m) + fg * m), 0, 255).astype(np.uint8)


def render_scene(colour, shape, background, cx, cy, size, angle, image_size=IMAGE_SIZE):
    """Render one scene given all its parameters (sizes in pixels of an ``image_size`` image).

    Returns ``(PIL RGB image, caption, info)``; ``info`` has the parameters and ``mask`` (float32 [H, W]
    coverage of the object).
    """
    if colour not in COLOURS:
        raise ValueError(f"unknown colour {colour!r}; known: {', '.join(COLOURS)}")
    if background not in BACKGROUNDS:
        raise ValueError(f"unknown background {background!r}; known: {', '.join(BACKGROUNDS)}")
    mask = shape_mask(shape, cx, cy, size, angle, image_size)
    image = Image.fromarray(composite(mask, COLOURS[colour], BACKGROUNDS[background]), "RGB")
    info = dict(colour=colour, shape=shape, background=background, cx=float(cx), cy=float(cy),
                size=float(size), angle=float(angle), image_size=int(image_size), mask=mask)
    return image, caption_of(colour, shape, background), info


def sample_params(seed, image_size=IMAGE_SIZE):
    """The one-object scene parameters of ``seed`` (numpy's PCG64 seeded with ``seed``)."""
    rng = np.random.default_rng(seed)
    colour = list(COLOURS)[rng.integers(len(COLOURS))]
    shape = SHAPES[rng.integers(len(SHAPES))]
    background = list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]
    size = rng.uniform(*SIZE_RANGE) * image_size
    # keep the object inside whatever the shape and angle: every shape fits the disc of diameter size
    r = size / 2 + 0.5
    cx = rng.uniform(r, image_size - r)
    cy = rng.uniform(r, image_size - r)
    angle = 0.0 if shape == "circle" else rng.uniform(0, 360)
    return dict(colour=colour, shape=shape, background=background, cx=cx, cy=cy, size=size, angle=angle)


def sample_objects(seed, image_size=IMAGE_SIZE):
    """The scene of ``seed`` in the world with one or two objects: ``(objects, background)``.

    With probability `TWO_OBJECTS` a scene has two objects of different colours (shapes may repeat), each
    `PAIR_SIZE_RANGE` of the side, their discs at least `PAIR_GAP` pixels apart, listed in a random order
    (the order of the caption); otherwise it is `sample_params`' one object.
    """
    rng = np.random.default_rng([seed, 2])
    if rng.uniform() >= TWO_OBJECTS:
        params = sample_params(seed, image_size)
        background = params.pop("background")
        return [params], background
    background = list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]
    colours = rng.choice(len(COLOURS), size=2, replace=False)
    objects = []
    for k in range(2):
        shape = SHAPES[rng.integers(len(SHAPES))]
        for _ in range(1000):
            size = rng.uniform(*PAIR_SIZE_RANGE) * image_size
            r = size / 2 + 0.5
            cx, cy = rng.uniform(r, image_size - r), rng.uniform(r, image_size - r)
            if all(math.hypot(cx - o["cx"], cy - o["cy"]) >= (size + o["size"]) / 2 + PAIR_GAP for o in objects):
                break
        else:  # pragma: no cover - the ranges always leave room
            raise RuntimeError(f"scene {seed}: no room for a second object")
        angle = 0.0 if shape == "circle" else rng.uniform(0, 360)
        objects.append(dict(colour=list(COLOURS)[colours[k]], shape=shape, cx=cx, cy=cy, size=size, angle=angle))
    return objects, background


def caption_of_objects(objects, background):
    """``a {colour} {shape} [and a {colour} {shape}] on a {background} background`` in the objects' order."""
    things = " and ".join(f"a {o['colour']} {o['shape']}" for o in objects)
    return f"{things} on a {background} background"


def render_objects(objects, background, image_size=IMAGE_SIZE):
    """Render objects (dicts of colour, shape, cx, cy, size, angle) over a background, later ones on top.

    Returns ``(PIL RGB image, caption, info)``; ``info`` has ``background``, ``image_size``, ``objects`` (each
    with its own coverage ``mask``, float32 [H, W], of what is visible of it) and ``mask`` (their union). A
    one-object scene also has that object's parameters at the top level, as `render_scene` gives them.
    """
    if background not in BACKGROUNDS:
        raise ValueError(f"unknown background {background!r}; known: {', '.join(BACKGROUNDS)}")
    a = np.empty((image_size, image_size, 3), dtype=np.float64)
    a[:] = BACKGROUNDS[background]
    union = np.zeros((image_size, image_size), dtype=np.float32)
    out = []
    for o in objects:
        if o["colour"] not in COLOURS:
            raise ValueError(f"unknown colour {o['colour']!r}; known: {', '.join(COLOURS)}")
        m = shape_mask(o["shape"], o["cx"], o["cy"], o["size"], o["angle"], image_size)
        a = a * (1 - m[..., None]) + saturated(COLOURS[o["colour"]], o.get("saturation", 1.0)) * m[..., None]
        for prev in out:
            prev["mask"] = prev["mask"] * (1 - m)
        union = np.maximum(union, m)
        out.append(dict({k: (float(v) if k in ("cx", "cy", "size", "angle") else v) for k, v in o.items()
                         if k != "mask"}, mask=m))
    image = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "RGB")
    info = dict(background=background, image_size=int(image_size), objects=out, mask=union)
    if len(out) == 1:
        info.update({k: v for k, v in out[0].items() if k != "mask"})
    return image, caption_of_objects(objects, background), info


def render(seed, image_size=IMAGE_SIZE):
    """Render the scene of ``seed`` (one or two objects): ``(PIL RGB image, caption, info)``; same seed, same image."""
    objects, background = sample_objects(seed, image_size)
    image, caption, info = render_objects(objects, background, image_size)
    info["seed"] = int(seed)
    return image, caption, info


def render_single(seed, image_size=IMAGE_SIZE):
    """Render the one-object scene of ``seed`` (the world of the first demo model)."""
    image, caption, info = render_scene(**sample_params(seed, image_size), image_size=image_size)
    info["seed"] = int(seed)
    return image, caption, info


def render_variant(info, colour=None, shape=None, background=None, index=0, saturation=None):
    """The same scene (positions, sizes, angles) with object ``index``'s colour, shape or ``saturation`` (a scale
    of its colour's distance from grey, `saturated`), or the background, changed.

    ``info`` is what `render`, `render_objects` or `render_scene` returned; this is the ground truth of an edit
    of it. A circle turned into a square or triangle keeps angle 0 (circles have no angle).
    """
    keys = ("colour", "shape", "cx", "cy", "size", "angle")
    if "objects" in info:
        objects = [{k: o[k] for k in keys} for o in info["objects"]]
    else:
        objects = [{k: info[k] for k in keys}]
    if colour is not None:
        objects[index]["colour"] = colour
    if shape is not None:
        objects[index]["shape"] = shape
    if saturation is not None:
        objects[index]["saturation"] = float(saturation)
    out = render_objects(objects, background or info["background"], info["image_size"])
    if "seed" in info:
        out[2]["seed"] = info["seed"]
    return out


def word_regions(info):
    """``[(word index in the caption, region)]`` for every colour, shape and background word of a scene.

    ``region`` is an object's index, or ``"background"``; every word of the world is one CLIP token, so the
    word's token is at position index + 1 (after the start token).
    """
    out = []
    for k in range(len(info.get("objects", [None]))):
        out += [(1 + 4 * k, k), (2 + 4 * k, k)]
    words = 4 * len(info.get("objects", [None])) - 1 + 4  # "... on a {background} background"
    out.append((words - 2, "background"))
    return out


def region_mask(info, region):
    """Coverage [H, W] of a region of `word_regions`: an object's visible part, or the background."""
    if region == "background":
        return 1.0 - info["mask"]
    return info["objects"][region]["mask"] if "objects" in info else info["mask"]


def model_image_size(model):
    """The image side a diffusers model folder was trained at (its VAE's ``sample_size``), for scripts that
    render scenes for a given model; `IMAGE_SIZE` when the folder has no VAE config or it names no size (a
    config that cannot be read is an error, not a silent default)."""
    path = os.path.join(model, "vae", "config.json")
    if not os.path.exists(path):
        return IMAGE_SIZE
    with open(path) as f:
        return int(json.load(f).get("sample_size", IMAGE_SIZE))


def all_captions():
    """Every one-object caption of the world, in a fixed order."""
    return [caption_of(c, s, b) for c in COLOURS for s in SHAPES for b in BACKGROUNDS]


def nearest_colour(rgb, names=None):
    """The name in `COLOURS` (restricted to ``names`` if given) nearest to ``rgb`` (Euclidean in RGB)."""
    names = list(names or COLOURS)
    rgb = np.asarray(rgb, dtype=np.float64)
    d = [np.sum((rgb - np.asarray(COLOURS[n], dtype=np.float64)) ** 2) for n in names]
    return names[int(np.argmin(d))]


def object_colour(image, background):
    """The dominant colour name of the object of a generated image on a known background.

    Pixels farther than 60 (RGB distance) from the background colour are the object; their median
    colour is matched to `COLOURS`.  Returns None when fewer than 2% of the pixels differ.
    """
    a = np.asarray(image.convert("RGB"), dtype=np.float64).reshape(-1, 3)
    bg = np.asarray(BACKGROUNDS[background], dtype=np.float64)
    far = np.sqrt(((a - bg) ** 2).sum(axis=1)) > 60
    if far.mean() < 0.02:
        return None
    return nearest_colour(np.median(a[far], axis=0))


def object_colours(image, background, count):
    """The ``count`` most common object colours (names, sorted) of an image on a known background.

    Pixels farther than 60 (RGB distance) from the background colour are matched to their nearest colour
    of `COLOURS`; the ``count`` names with most pixels (each at least 0.5% of the image) are returned.
    """
    a = np.asarray(image.convert("RGB"), dtype=np.float64).reshape(-1, 3)
    bg = np.asarray(BACKGROUNDS[background], dtype=np.float64)
    far = a[np.sqrt(((a - bg) ** 2).sum(axis=1)) > 60]
    names = list(COLOURS)
    if len(far) == 0:
        return []
    ref = np.asarray([COLOURS[n] for n in names], dtype=np.float64)
    nearest = np.argmin(((far[:, None, :] - ref[None]) ** 2).sum(-1), axis=1)
    counts = np.bincount(nearest, minlength=len(names))
    order = [k for k in np.argsort(-counts, kind="stable")[:count] if counts[k] >= 0.005 * a.shape[0]]
    return sorted(names[k] for k in order)


def main():
    ap = argparse.ArgumentParser(description="Render one scene of the shapes world and print its caption.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--output", default=None, help="PNG to write (default: only print the caption)")
    ap.add_argument("--size", type=int, default=IMAGE_SIZE, help=f"image side in pixels (default {IMAGE_SIZE})")
    ap.add_argument("--colour", choices=list(COLOURS), help="render the same scene in this colour")
    ap.add_argument("--shape", choices=list(SHAPES), help="render the same scene with this shape")
    ap.add_argument("--background", choices=list(BACKGROUNDS), help="render the same scene on this background")
    ap.add_argument("--index", type=int, default=0, help="the object --colour and --shape change (0 or 1)")
    ap.add_argument("--mask", default=None, help="also write the object's coverage as a grayscale PNG")
    args = ap.parse_args()

    image, caption, info = render(args.seed, args.size)
    if args.colour or args.shape or args.background:
        image, caption, info = render_variant(info, args.colour, args.shape, args.background, args.index)
    if args.output:
        image.save(args.output)
    if args.mask:
        Image.fromarray(np.rint(info["mask"] * 255).astype(np.uint8), "L").save(args.mask)
    print(caption)


if __name__ == "__main__":
    main()
