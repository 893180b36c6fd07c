#!/usr/bin/env python3
"""Generates Tests/PivotFormatsTests/Fixtures/torch/: small files written by torch.save (zip and legacy
formats), hostile ones (globals that would run code), broken archives (a compressed entry, no data.pkl),
a ZIP64 rewrite of an archive, plain pickles of every protocol, and the values pivot must read from them:
expected.json (tensor names, dtypes, shapes, strides, offsets in file order) and expected.safetensors
(each tensor's values as fp32, keyed "<file>|<name>").

Usage: python3 scripts/make_torch_fixtures.py   (needs torch, numpy and safetensors)
"""
import collections
import io
import json
import os
import pickle
import struct
import sys
import types
import zipfile
import zlib

import numpy as np
import torch
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "PivotFormatsTests", "Fixtures", "torch")
MARKER = "/tmp/pivot-torch-pwned-marker"


def values(n, scale=0.25, start=-1.0):
    return torch.arange(n, dtype=torch.float32) * scale + start


# A stand-in for pytorch_lightning's ModelCheckpoint, pickled under the real module name.
module = types.ModuleType("pytorch_lightning.callbacks.model_checkpoint")


class ModelCheckpoint:
    pass


ModelCheckpoint.__module__ = module.__name__
module.ModelCheckpoint = ModelCheckpoint
for name in ("pytorch_lightning", "pytorch_lightning.callbacks"):
    sys.modules[name] = types.ModuleType(name)
sys.modules[module.__name__] = module


class RunsShell:
    """Unpickling this with pickle would run a shell command."""

    def __reduce__(self):
        return (os.system, ("echo pwned > " + MARKER,))


class Evaluates:
    """Unpickling this with pickle would evaluate Python source."""

    def __reduce__(self):
        return (eval, ("__import__('os').system('echo pwned > " + MARKER + "')",))


def embedding_bin():
    return {"<cat-toy>": values(64, 0.125).reshape(2, 32)}


def a1111_pt():
    return {
        "string_to_token": {"*": 265},
        "string_to_param": {"*": torch.nn.Parameter(values(96, 0.0625, -3.0).reshape(3, 32))},
        "name": "toy",
        "step": 500,
        "sd_checkpoint": None,
        "sd_checkpoint_name": None,
    }


def legacy_pt():
    return {"emb": (values(32, 0.5, -8.0)).to(torch.float16).reshape(4, 8), "step": 7}


def state_dict_pt():
    base = values(24, 1.0, 0.0).reshape(4, 6)
    flat = values(16, 0.5, 1.0)
    sd = collections.OrderedDict()
    sd["bf16"] = torch.tensor([1.0, -3.140625, 1e30, 0.0, 1e-30, -2.5], dtype=torch.bfloat16)
    sd["transposed"] = base.t()  # [6, 4], strides [1, 6]
    sd["head"] = flat[:4]  # shares the storage of "tail"
    sd["tail"] = flat[5:13].reshape(2, 4)  # storage offset 5
    sd["f64"] = torch.tensor([[0.5, -1.0 / 3.0]], dtype=torch.float64)
    sd._metadata = collections.OrderedDict({"": {"version": 1}})  # pickled with BUILD, as module state dicts are
    return sd


def checkpoint_ckpt():
    callback = ModelCheckpoint()
    callback.dirpath = "checkpoints"
    callback.save_top_k = 3
    with_state = torch.nn.Parameter(values(6, 0.5).reshape(2, 3))
    with_state.extra = "kept"
    return {
        "epoch": 3,
        "global_step": 123456789012,
        "pytorch-lightning_version": "1.4.2",
        "state_dict": {
            "model.diffusion_model.input_blocks.0.0.weight": values(2 * 3 * 3 * 3, 0.01).reshape(2, 3, 3, 3),
            "model.diffusion_model.input_blocks.0.0.bias": torch.tensor([0.5, -0.5]),
            "cond_stage_model.transformer.position_ids": torch.arange(4, dtype=torch.int64).reshape(1, 4),
            "first_stage_model.scale": torch.tensor(0.18215, dtype=torch.float16),
            "parameter_with_state": with_state,
        },
        "callbacks": {ModelCheckpoint: {"monitor": None, "best_model_score": torch.tensor(0.25),
                                        "best_k": np.float64(0.125), "count": np.int32(-7)}},
        "checkpoint_callback": callback,
        "shape": torch.Size([2, 3]),
        "dtype": torch.float16,
        "tags": {"a"},
        "blob": b"\x00\xffpivot",
        "ratio": -0.75,
        "negative": -70000,
    }


def key_name(key):
    if isinstance(key, type):
        return key.__module__ + "." + key.__qualname__
    return str(key)


def walk(value, prefix, out):
    def child(name):
        return name if not prefix else prefix + "." + name

    if isinstance(value, torch.Tensor):
        out.append((prefix, value))
    elif isinstance(value, dict):
        for k, v in value.items():
            walk(v, child(key_name(k)), out)
    elif isinstance(value, (list, tuple)) and not isinstance(value, torch.Size):
        for i, v in enumerate(value):
            walk(v, child(str(i)), out)
    elif isinstance(value, ModelCheckpoint):
        walk(value.__dict__, prefix, out)


def data_pickle_name(path):
    with zipfile.ZipFile(path) as z:
        return next(n for n in z.namelist() if n.endswith("/data.pkl"))


def rezip(source, target, compress):
    """Copies an archive, deflating the data entries when `compress`."""
    with zipfile.ZipFile(source) as z, zipfile.ZipFile(target, "w") as out:
        for info in z.infolist():
            method = zipfile.ZIP_DEFLATED if compress and "/data/" in info.filename else zipfile.ZIP_STORED
            out.writestr(info.filename, z.read(info.filename), compress_type=method)


def write_zip64(source, target):
    """Copies an archive as ZIP64 throughout: sizes and offsets in ZIP64 extra fields, EOCD64 and locator."""
    with zipfile.ZipFile(source) as z:
        entries = [(i.filename.encode(), z.read(i.filename)) for i in z.infolist()]
    out, central = bytearray(), bytearray()
    for name, data in entries:
        offset, crc = len(out), zlib.crc32(data)
        extra = struct.pack("<HHQQ", 1, 16, len(data), len(data))
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0x21, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                           len(name), len(extra)) + name + extra + data
        extra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), offset)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0x21, crc, 0xFFFFFFFF,
                               0xFFFFFFFF, len(name), len(extra), 0, 0, 0, 0, 0xFFFFFFFF) + name + extra
    directory = len(out)
    out += central
    end64 = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(entries), len(entries), len(central), directory)
    out += struct.pack("<IIQI", 0x07064B50, 0, end64, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    with open(target, "wb") as f:
        f.write(out)


def plain_object():
    return {"int": 5, "negative": -70000, "big": 2**40, "float": 0.1, "text": "h\u00e9llo \u20ac\n'\"\\",
            "bytes": b"\x00\xffab", "list": [1, [2, 3]], "tuple": (1, 2, 3), "none": None, "true": True,
            "false": False, "set": {7}, "nested": {"k": {"j": -1}}, 3: "int key"}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in os.listdir(OUT):
        os.remove(os.path.join(OUT, name))
    good = {
        "embedding.bin": (embedding_bin(), {}),
        "a1111.pt": (a1111_pt(), {}),
        "legacy.pt": (legacy_pt(), {"_use_new_zipfile_serialization": False}),
        "state_dict.pt": (state_dict_pt(), {}),
        "checkpoint.ckpt": (checkpoint_ckpt(), {}),
        "protocol4.pt": (state_dict_pt(), {"pickle_protocol": 4}),
    }
    expected, arrays = {}, {}
    for name, (obj, options) in good.items():
        torch.save(obj, os.path.join(OUT, name), **options)
    write_zip64(os.path.join(OUT, "checkpoint.ckpt"), os.path.join(OUT, "checkpoint_zip64.ckpt"))
    for name in list(good) + ["checkpoint_zip64.ckpt"]:
        loaded = torch.load(os.path.join(OUT, name), weights_only=False)
        found = []
        walk(loaded, "", found)
        expected[name] = [{"name": n, "dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape),
                           "strides": list(t.stride()), "offset": t.storage_offset()} for n, t in found]
        for n, t in found:
            if t.dtype.is_floating_point:
                arrays[name + "|" + n] = t.detach().to(torch.float32).contiguous().clone()
    assert expected["checkpoint_zip64.ckpt"] == expected["checkpoint.ckpt"]
    rezip(os.path.join(OUT, "state_dict.pt"), os.path.join(OUT, "compressed.pt"), compress=True)
    with zipfile.ZipFile(os.path.join(OUT, "not_torch.zip"), "w") as z:
        z.writestr("archive/readme.txt", "no data.pkl here")
    torch.save({"x": RunsShell()}, os.path.join(OUT, "malicious_os_system.pt"))
    torch.save({"x": Evaluates()}, os.path.join(OUT, "malicious_eval.pt"), pickle_protocol=4)
    torch.save({"x": RunsShell()}, os.path.join(OUT, "malicious_legacy.pt"), _use_new_zipfile_serialization=False)
    for protocol in range(6):
        with open(os.path.join(OUT, f"plain_protocol{protocol}.pkl"), "wb") as f:
            pickle.dump(plain_object(), f, protocol=protocol)
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    save_file(arrays, os.path.join(OUT, "expected.safetensors"))
    for name in sorted(os.listdir(OUT)):
        print(f"{os.path.getsize(os.path.join(OUT, name)):7d}  {name}")


if __name__ == "__main__":
    main()
