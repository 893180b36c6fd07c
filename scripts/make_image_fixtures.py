#!/usr/bin/env python3
"""Makes the image fixtures for PivotImageTests (Tests/PivotImageTests/Fixtures); needs numpy and Pillow (made with
Pillow 13.0, numpy 2.4). Deterministic for a given Pillow/libjpeg/zlib build; images are tiny (5x3 for variants).

- PNG/JPEG/TIFF variants: some through Pillow, the rest (16-bit, sub-byte, Adam7, planar, tiled, big-endian,
  associated alpha, MinIsWhite, Orientation tag, over-limit sizes) through the small encoders below, so expected
  pixels come from the source arrays, not from a decoder.
- expected.json: per file, RGB values on the file's integer grid after alpha on white (round((c*a + M*(M-a)) / M),
  M = 255 or 65535) and orientation, with a tolerance in levels (0 when lossless; JPEGs: Pillow's own decode);
  expected error kinds; resize/preprocess cases (Pillow BICUBIC results as 8-bit PNGs); float-resize cases (Pillow
  mode "F" per channel); the text chunks of pillow_text.png.
- Checks with Pillow that pivot_text.png, written by pivot's PNG writer, carries pivot's text chunks. Regenerate it
  with PIVOT_IMAGE_FIXTURE_OUT=$PWD/Tests/PivotImageTests/Fixtures swift test --filter PivotImageTests.
"""
import json
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "PivotImageTests", "Fixtures")
RNG = np.random.default_rng(20240611)
EXPECTED = {"decode": {}, "errors": {}, "resize": [], "preprocess": [], "float_resize": [], "text": {}}
# The text pairs pivot's Swift test writes (see WriteTests.testPNGTextChunks).
PIVOT_TEXT = [["prompt", "a photo of a cat"], ["parameters", "steps=50, guidance=7.5"],
              ["caption", "ein Kätzchen — 猫"]]


def path(name):
    return os.path.join(OUT, name)


def composite(colour, alpha, maximum):
    """Integer alpha compositing on white, as PivotImage does."""
    c = colour.astype(np.int64)
    a = alpha.astype(np.int64)[..., None]
    num = c * a + maximum * (maximum - a)
    return (2 * num + maximum) // (2 * maximum)


def expect(name, rgb, depth, tolerance=0):
    rgb = np.asarray(rgb)
    h, w = rgb.shape[:2]
    EXPECTED["decode"][name] = {"width": int(w), "height": int(h), "depth": depth, "tolerance": tolerance,
                                "values": [int(v) for v in rgb.reshape(-1)]}


def rand(shape, maximum=255, dtype=np.uint8):
    return RNG.integers(0, maximum + 1, size=shape).astype(dtype)


# ---------------------------------------------------------------- raw PNG

def png_chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def pack_row(row, depth):
    """One row of samples (1-D, already interleaved) as bytes at the given bit depth."""
    if depth == 16:
        return row.astype(">u2").tobytes()
    if depth == 8:
        return row.astype(np.uint8).tobytes()
    per_byte = 8 // depth
    padded = np.concatenate([row, np.zeros((-len(row)) % per_byte, dtype=row.dtype)]).astype(np.uint16)
    out = bytearray()
    for i in range(0, len(padded), per_byte):
        b = 0
        for s in padded[i:i + per_byte]:
            b = (b << depth) | int(s)
        out.append(b)
    return bytes(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def write_png(name, samples, depth, colour_type, palette=None, trns=None, interlace=False, size=None):
    """samples: H x W x C array (C per colour type; palette indices for type 3)."""
    h, w = samples.shape[:2]
    if size:
        w, h = size
    raw = bytearray()
    if size is None:
        passes = ADAM7 if interlace else [(0, 0, 1, 1)]
        for x0, y0, dx, dy in passes:
            sub = samples[y0::dy, x0::dx]
            if sub.size == 0:
                continue
            for row in sub:
                raw += b"\x00" + pack_row(row.reshape(-1), depth)
    else:
        raw += b"\x00" * 64  # far too little data for the claimed size
    data = b"\x89PNG\r\n\x1a\n"
    data += png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour_type, 0, 0, 1 if interlace else 0))
    if palette is not None:
        data += png_chunk(b"PLTE", bytes(np.asarray(palette, dtype=np.uint8).reshape(-1)))
    if trns is not None:
        data += png_chunk(b"tRNS", trns)
    data += png_chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + png_chunk(b"IEND", b"")
    with open(path(name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- raw TIFF

def write_tiff(name, samples, photometric, extra=None, planar=1, orientation=1, tiled=False, endian="<",
               size=None):
    """Uncompressed TIFF from an H x W x C uint8/uint16 array."""
    h, w, c = samples.shape
    bits = samples.dtype.itemsize * 8
    dt = np.dtype(samples.dtype).newbyteorder(endian)
    blocks = []
    if tiled:
        tile = np.zeros((16, 16, c), dtype=samples.dtype)
        tile[:h, :w] = samples
        blocks.append(tile.astype(dt).tobytes())
    elif planar == 2:
        blocks = [np.ascontiguousarray(samples[:, :, i]).astype(dt).tobytes() for i in range(c)]
    else:
        blocks.append(samples.astype(dt).tobytes())
    if size:
        w, h = size
    offsets, pos, body = [], 8, b""
    for b in blocks:
        offsets.append(pos)
        body += b
        pos += len(b)
    entries = [(256, 4, [w]), (257, 4, [h]), (258, 3, [bits] * c), (259, 3, [1]), (262, 3, [photometric]),
               (274, 3, [orientation]), (277, 3, [c]), (284, 3, [planar])]
    if tiled:
        entries += [(322, 3, [16]), (323, 3, [16]), (324, 4, offsets), (325, 4, [len(b) for b in blocks])]
    else:
        entries += [(273, 4, offsets), (278, 4, [h]), (279, 4, [len(b) for b in blocks])]
    if extra is not None:
        entries.append((338, 3, [extra]))
    entries.sort()
    e = endian
    ifd_pos = pos
    extra_pos = ifd_pos + 2 + 12 * len(entries) + 4
    ifd, tail = struct.pack(e + "H", len(entries)), b""
    for tag, typ, values in entries:
        fmt = "H" if typ == 3 else "I"
        packed = struct.pack(e + fmt * len(values), *values)
        if len(packed) <= 4:
            field = packed.ljust(4, b"\x00")
        else:
            field = struct.pack(e + "I", extra_pos + len(tail))
            tail += packed
        ifd += struct.pack(e + "HHI", tag, typ, len(values)) + field
    ifd += struct.pack(e + "I", 0)
    header = (b"II*\x00" if e == "<" else b"MM\x00*") + struct.pack(e + "I", ifd_pos)
    with open(path(name), "wb") as f:
        f.write(header + body + ifd + tail)


# ---------------------------------------------------------------- fixtures

def make_png():
    rgb = rand((3, 5, 3))
    Image.fromarray(rgb, "RGB").save(path("png_rgb8.png"))
    expect("png_rgb8.png", rgb, 8)
    rgba = rand((3, 5, 4))
    rgba[0, 0, 3], rgba[0, 1, 3], rgba[0, 2, 3] = 0, 255, 128
    Image.fromarray(rgba, "RGBA").save(path("png_rgba8.png"))
    expect("png_rgba8.png", composite(rgba[..., :3], rgba[..., 3], 255), 8)
    grey = rand((3, 5))
    Image.fromarray(grey, "L").save(path("png_grey8.png"))
    expect("png_grey8.png", np.repeat(grey[..., None], 3, axis=2), 8)
    la = rand((3, 5, 2))
    Image.fromarray(la, "LA").save(path("png_greya8.png"))
    expect("png_greya8.png", composite(np.repeat(la[..., :1], 3, axis=2), la[..., 1], 255), 8)
    palette = rand((6, 3))
    indices = rand((3, 5), maximum=5)
    image = Image.fromarray(indices, "P")
    image.putpalette(palette.reshape(-1).tolist())
    image.save(path("png_palette.png"))
    expect("png_palette.png", palette[indices], 8)
    alphas = np.array([255, 0, 128, 64, 200, 255], dtype=np.uint8)
    image.save(path("png_palette_trns.png"), transparency=bytes(alphas))
    expect("png_palette_trns.png", composite(palette[indices], alphas[indices], 255), 8)
    key = rgb[1, 2].copy()
    Image.fromarray(rgb, "RGB").save(path("png_rgb_trns.png"), transparency=tuple(int(v) for v in key))
    keyed = np.all(rgb == key, axis=2)
    expect("png_rgb_trns.png", np.where(keyed[..., None], 255, rgb), 8)
    for name, samples, ct in [("png_rgb16.png", rand((3, 5, 3), 65535, np.uint16), 2),
                              ("png_rgba16.png", rand((3, 5, 4), 65535, np.uint16), 6),
                              ("png_grey16.png", rand((3, 5, 1), 65535, np.uint16), 0),
                              ("png_greya16.png", rand((3, 5, 2), 65535, np.uint16), 4)]:
        write_png(name, samples, 16, ct)
        colour = samples[..., :3] if ct in (2, 6) else np.repeat(samples[..., :1], 3, axis=2)
        alpha = samples[..., -1] if ct in (4, 6) else np.full(samples.shape[:2], 65535)
        expect(name, composite(colour, alpha, 65535), 16)
    for depth in (1, 2, 4):
        g = rand((3, 5, 1), (1 << depth) - 1)
        write_png(f"png_grey{depth}.png", g, depth, 0)
        expect(f"png_grey{depth}.png", np.repeat(g * (255 // ((1 << depth) - 1)), 3, axis=2), 8)
    big = rand((19, 13, 3))
    write_png("png_interlaced.png", big, 8, 2, interlace=True)
    expect("png_interlaced.png", big, 8)
    assert np.array_equal(np.array(Image.open(path("png_interlaced.png"))), big)
    write_png("png_toolarge_side.png", rgb, 8, 2, size=(20000, 10))
    write_png("png_toolarge_pixels.png", rgb, 8, 2, size=(12000, 12000))
    EXPECTED["errors"]["png_toolarge_side.png"] = "tooLarge"
    EXPECTED["errors"]["png_toolarge_pixels.png"] = "tooLarge"
    # Text chunks as Pillow writes them: tEXt, zTXt and iTXt.
    info = PngImagePlugin.PngInfo()
    info.add_text("Title", "pivot fixture")
    info.add_text("Comment", "compressed " * 20, zip=True)
    info.add_itxt("Description", "Grüße — 写真", lang="de", tkey="Beschreibung")
    Image.fromarray(rgb, "RGB").save(path("pillow_text.png"), pnginfo=info)
    EXPECTED["text"]["pillow_text.png"] = [["Title", "pivot fixture"], ["Comment", "compressed " * 20],
                                           ["Description", "Grüße — 写真"]]
    # Every Pillow-written variant decodes in Pillow to the expected values.
    for name in ["png_rgb8.png", "png_rgba8.png", "png_palette_trns.png", "png_rgb_trns.png", "png_greya8.png"]:
        got = Image.open(path(name)).convert("RGBA")
        arr = np.array(got)
        want = composite(arr[..., :3], arr[..., 3], 255)
        assert want.reshape(-1).tolist() == EXPECTED["decode"][name]["values"], name


def make_jpeg():
    # 24x16 display image of solid 8x8 blocks, so that JPEG reproduces it closely.
    colours = np.array([[230, 30, 30], [30, 200, 40], [40, 60, 220], [240, 220, 40], [20, 20, 20], [250, 250, 250]],
                       dtype=np.uint8)
    display = np.zeros((16, 24, 3), dtype=np.uint8)
    for i in range(6):
        by, bx = divmod(i, 3)
        display[by * 8:(by + 1) * 8, bx * 8:(bx + 1) * 8] = colours[i]
    base = Image.fromarray(display, "RGB")
    inverse = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
               4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90,
               7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}
    for k in range(1, 9):
        stored = base if inverse[k] is None else base.transpose(inverse[k])
        exif = Image.Exif()
        exif[0x0112] = k
        name = f"jpeg_orientation{k}.jpg"
        stored.save(path(name), quality=95, subsampling=0, exif=exif.tobytes())
        shown = ImageOps.exif_transpose(Image.open(path(name)))
        assert shown.size == (24, 16), (k, shown.size)
        expect(name, np.array(shown.convert("RGB")), 8, tolerance=2)
    EXPECTED["jpeg_display"] = [int(v) for v in display.reshape(-1)]
    photo = rand((3, 5, 3))
    for name, kwargs in [("jpeg_rgb.jpg", {"quality": 90}), ("jpeg_progressive.jpg", {"quality": 90, "progressive": True})]:
        Image.fromarray(photo, "RGB").save(path(name), **kwargs)
        expect(name, np.array(Image.open(path(name)).convert("RGB")), 8, tolerance=2)
    Image.fromarray(rand((3, 5)), "L").save(path("jpeg_grey.jpg"), quality=90)
    expect("jpeg_grey.jpg", np.array(Image.open(path("jpeg_grey.jpg")).convert("RGB")), 8, tolerance=2)
    Image.fromarray(rand((3, 5, 4)), "CMYK").save(path("jpeg_cmyk.jpg"), quality=90)
    expect("jpeg_cmyk.jpg", np.array(Image.open(path("jpeg_cmyk.jpg")).convert("RGB")), 8, tolerance=2)
    data = bytearray(open(path("jpeg_rgb.jpg"), "rb").read())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", 60000, 60000)
    open(path("jpeg_toolarge.jpg"), "wb").write(bytes(data))
    EXPECTED["errors"]["jpeg_toolarge.jpg"] = "tooLarge"


def make_tiff():
    rgb = rand((3, 5, 3))
    for name, compression in [("tiff_rgb8.tif", None), ("tiff_rgb8_lzw.tif", "tiff_lzw"),
                              ("tiff_rgb8_deflate.tif", "tiff_adobe_deflate"), ("tiff_rgb8_packbits.tif", "packbits")]:
        Image.fromarray(rgb, "RGB").save(path(name), compression=compression)
        expect(name, rgb, 8)
    Image.fromarray(rgb, "RGB").save(path("tiff_rgb8_jpeg.tif"), compression="jpeg", quality=90)
    expect("tiff_rgb8_jpeg.tif", np.array(Image.open(path("tiff_rgb8_jpeg.tif")).convert("RGB")), 8, tolerance=3)
    rgba = rand((3, 5, 4))
    rgba[0, 0, 3] = 0
    Image.fromarray(rgba, "RGBA").save(path("tiff_rgba8.tif"))
    expect("tiff_rgba8.tif", composite(rgba[..., :3], rgba[..., 3], 255), 8)
    grey = rand((3, 5))
    Image.fromarray(grey, "L").save(path("tiff_grey8.tif"))
    expect("tiff_grey8.tif", np.repeat(grey[..., None], 3, axis=2), 8)
    grey16 = rand((3, 5), 65535, np.uint16)
    Image.fromarray(grey16).save(path("tiff_grey16.tif"))
    assert np.array_equal(np.array(Image.open(path("tiff_grey16.tif"))), grey16)
    expect("tiff_grey16.tif", np.repeat(grey16[..., None], 3, axis=2), 16)
    indices = rand((3, 5), maximum=3)
    palette = rand((4, 3))
    image = Image.fromarray(indices, "P")
    image.putpalette(palette.reshape(-1).tolist())
    image.save(path("tiff_palette.tif"))
    expect("tiff_palette.tif", palette[indices], 8)
    rgb16 = rand((3, 5, 3), 65535, np.uint16)
    write_tiff("tiff_rgb16.tif", rgb16, 2)
    expect("tiff_rgb16.tif", rgb16, 16)
    write_tiff("tiff_rgb16_bigendian.tif", rgb16, 2, endian=">")
    expect("tiff_rgb16_bigendian.tif", rgb16, 16)
    rgba16 = rand((3, 5, 4), 65535, np.uint16)
    write_tiff("tiff_rgba16.tif", rgba16, 2, extra=2)
    expect("tiff_rgba16.tif", composite(rgba16[..., :3], rgba16[..., 3], 65535), 16)
    write_tiff("tiff_rgb8_planar.tif", rgb, 2, planar=2)
    expect("tiff_rgb8_planar.tif", rgb, 8)
    write_tiff("tiff_rgb8_tiled.tif", rgb, 2, tiled=True)
    expect("tiff_rgb8_tiled.tif", rgb, 8)
    write_tiff("tiff_miniswhite.tif", grey[..., None], 0)
    expect("tiff_miniswhite.tif", np.repeat(255 - grey[..., None], 3, axis=2), 8)
    # Associated alpha: colours stored premultiplied; on white that is c + (M - a).
    alpha = rand((3, 5))
    premultiplied = (rgb.astype(np.int64) * alpha[..., None] // 255).astype(np.uint8)
    write_tiff("tiff_rgba8_associated.tif", np.concatenate([premultiplied, alpha[..., None]], axis=2), 2, extra=1)
    expect("tiff_rgba8_associated.tif", np.minimum(premultiplied.astype(np.int64) + (255 - alpha[..., None]), 255), 8)
    # Orientation 6 (rotate 90 degrees clockwise to display): stored 5x3 shows as 3x5.
    write_tiff("tiff_orientation6.tif", rgb, 2, orientation=6)
    shown = np.array(ImageOps.exif_transpose(Image.open(path("tiff_orientation6.tif"))).convert("RGB"))
    assert shown.shape == (5, 3, 3) and np.array_equal(shown, np.rot90(rgb, k=-1)), shown.shape
    expect("tiff_orientation6.tif", shown, 8)
    Image.fromarray(RNG.random((3, 5), dtype=np.float32)).save(path("tiff_float.tif"))
    EXPECTED["errors"]["tiff_float.tif"] = "unsupported"
    write_tiff("tiff_toolarge.tif", rgb, 2, size=(20000, 20000))
    EXPECTED["errors"]["tiff_toolarge.tif"] = "tooLarge"
    for name in ["tiff_rgb8_planar.tif", "tiff_rgb8_tiled.tif", "tiff_rgb16.tif"]:
        Image.open(path(name)).load()  # Pillow accepts the hand-made files


def make_resize():
    src = rand((23, 37, 3))
    Image.fromarray(src, "RGB").save(path("resize_source.png"))
    gx, gy = np.meshgrid(np.linspace(0, 255, 41), np.linspace(30, 220, 29))
    smooth = np.stack([gx, gy, np.full((29, 41), 128.0)], axis=2) + RNG.normal(0, 6, (29, 41, 3))
    smooth = np.clip(smooth, 0, 255).astype(np.uint8)
    Image.fromarray(smooth, "RGB").save(path("resize_smooth.png"))
    for source, array in [("resize_source.png", src), ("resize_smooth.png", smooth)]:
        # (37, 11), (100, 3), (33, 14): the height shrinks by more than twice the width's shrink, so Pillow 13
        # runs the vertical pass first; (32, 13) is the tie, horizontal first.
        for w, h in [(16, 16), (7, 5), (64, 48), (37, 11), (20, 23), (41, 29), (100, 3), (33, 14), (32, 13)]:
            out = Image.fromarray(array, "RGB").resize((w, h), Image.Resampling.BICUBIC)
            if (w, h) == (16, 16):
                assert np.array_equal(np.array(out), np.array(Image.fromarray(array).resize((w, h))))  # the default
            name = f"{source[:-4]}_{w}x{h}.png"
            out.save(path(name))
            EXPECTED["resize"].append({"source": source, "width": w, "height": h, "expected": name})
    # The reference's load_512 with a crop box (margins converted to a box) and a smaller side.
    for i, (box, side) in enumerate([(None, 16), ((3, 2, 30, 20), 12), ((0, 0, 10, 23), 9), ((5, 1, 37, 22), 32)]):
        image = src
        if box is not None:
            left, top, right, bottom = box
            image = image[top:bottom, left:right]
        h, w = image.shape[:2]
        if h < w:
            offset = (w - h) // 2
            image = image[:, offset:offset + h]
        elif w < h:
            offset = (h - w) // 2
            image = image[offset:offset + w]
        out = np.array(Image.fromarray(image).resize((side, side)))
        name = f"preprocess_{i}.png"
        Image.fromarray(out, "RGB").save(path(name))
        EXPECTED["preprocess"].append({"source": "resize_source.png", "crop": list(box) if box else None,
                                       "side": side, "expected": name})
    values = (0.25 + 0.5 * RNG.random((11, 13, 3))).astype(np.float32)
    for w, h in [(5, 4), (20, 17), (13, 6), (12, 4)]:
        channels = [np.array(Image.fromarray(np.ascontiguousarray(values[..., c])).resize((w, h), Image.Resampling.BICUBIC))
                    for c in range(3)]
        EXPECTED["float_resize"].append({"width": w, "height": h,
                                         "values": [float(v) for v in np.stack(channels, axis=2).reshape(-1)]})
    EXPECTED["float_source"] = {"width": 13, "height": 11, "values": [float(v) for v in values.reshape(-1)]}


def check_pivot_text():
    target = path("pivot_text.png")
    if not os.path.exists(target):
        print("note: pivot_text.png not found; run the Swift tests with PIVOT_IMAGE_FIXTURE_OUT to make it")
        return
    text = Image.open(target).text
    for key, value in PIVOT_TEXT:
        assert text.get(key) == value, (key, text.get(key))
    print("pivot_text.png: Pillow reads pivot's text chunks:", dict(text))


def main():
    os.makedirs(OUT, exist_ok=True)
    make_png()
    make_jpeg()
    make_tiff()
    make_resize()
    EXPECTED["pivot_text"] = PIVOT_TEXT
    with open(path("expected.json"), "w") as f:
        json.dump(EXPECTED, f, separators=(",", ":"), ensure_ascii=False)
    check_pivot_text()
    total = sum(os.path.getsize(path(n)) for n in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total} bytes, to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    sys.exit(main())
