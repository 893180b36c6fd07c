#!/usr/bin/env python3
"""Write an SD 1.5-architecture diffusers folder with random weights.

For the full-size parity checks (scripts/reference/parity_sd15.py) and the benchmarks
(scripts/bench/bench_torch.py); not committed (about 4.3 GB in fp32, 2.1 GB in fp16).

The configs come from docs/reference/sd15 (unet/vae/text_encoder
config.json and scheduler/scheduler_config.json; ``--configs`` overrides).
Weights: ``torch.manual_seed(0)`` before each network (UNet, VAE, text
encoder), default diffusers/transformers initialisation, then every norm
weight/bias and every constant parameter gets ``+0.02*randn`` (same rule as
the test fixtures, see make_fixtures.py).  One network is built, saved and
freed at a time (peak RSS ~3.8 GB in fp32).
No tokenizer/ is written by default (the real CLIP vocabulary is not available here; model_index.json lists
``tokenizer`` as ``[null, null]``); ``write_tokenizer`` writes CLIP's vocabulary rebuilt from the merges pivot
ships (what ``pivot learn`` and ``pivot bench --network learn-step`` need).

    python3 -m scripts.bench.make_sd15_random --out /tmp/sd15-fp32 [--dtype fp32|fp16|bf16] [--seed 0]

Takes about a minute on 2 cores.
"""

import argparse
import gc
import json
import os
import time


import torch  # noqa: E402

from scripts.fixtures import make_fixtures as fx  # noqa: E402  (sets torch threads to 2, quiets the libraries)

torch.set_num_threads(2)


def load_config(configs, name):
    with open(os.path.join(configs, name, "config.json")) as f:
        cfg = json.load(f)
    return cfg


def clip_config(cfg):
    drop = {"transformers_version", "model_type", "architectures", "_name_or_path", "torch_dtype", "dtype"}
    return {k: v for k, v in cfg.items() if k not in drop}


def write_tokenizer(folder):
    """Writes ``folder/tokenizer``: CLIP's vocabulary rebuilt as OpenAI's SimpleTokenizer builds it (the 256 byte
    symbols, the same with ``</w>``, one entry per merge, the two specials) from Sources/PivotText/Resources."""
    from scripts import REPO_ROOT
    with open(os.path.join(REPO_ROOT, "Sources/PivotText/Resources/clip-merges.txt"), encoding="utf-8") as f:
        merges = [tuple(line.split()) for line in f.read().splitlines() if line.strip()]
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]  # GPT-2's byte-to-symbol table: the rest from U+0100 on
    table = dict(zip(printable + others, printable + [256 + i for i in range(len(others))]))
    symbols = [chr(table[b]) for b in printable + others]  # in the table's order, as CLIP lists them
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    out = os.path.join(folder, "tokenizer")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(out, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
               "pad_token": "<|endoftext|>"}
    with open(os.path.join(out, "special_tokens_map.json"), "w") as f:
        json.dump(special, f)
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(dict(special, model_max_length=77, do_lower_case=True, tokenizer_class="CLIPTokenizer"), f)


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", default="fp32", choices=sorted(fx.DTYPES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--configs", default=fx.SD15_REF)
    args = ap.parse_args()

    from diffusers import AutoencoderKL, UNet2DConditionModel

    dtype = fx.DTYPES[args.dtype]
    os.makedirs(args.out, exist_ok=True)
    fx.write_model_index(args.out)
    fx.write_scheduler(args.out)

    steps = [
        ("unet", lambda: fx.perturb_(UNet2DConditionModel.from_config(load_config(args.configs, "unet")).eval())),
        ("vae", lambda: fx.perturb_(AutoencoderKL.from_config(load_config(args.configs, "vae")).eval())),
        ("text_encoder", lambda: fx.build_text_encoder(clip_config(load_config(args.configs, "text_encoder")))),
    ]
    for name, build in steps:
        t0 = time.time()
        torch.manual_seed(args.seed)
        model = build()
        n = sum(p.numel() for p in model.parameters())
        model.to(dtype)  # save_component round-trips to fp32 afterwards; free first instead
        folder = os.path.join(args.out, name)
        os.makedirs(folder, exist_ok=True)
        model.save_pretrained(folder, safe_serialization=True)
        del model
        gc.collect()
        print(f"{name}: {n / 1e6:.1f} M parameters, {fx.folder_size(folder) / 1e9:.2f} GB, "
              f"{time.time() - t0:.1f} s", flush=True)
    print(f"wrote {args.out} ({args.dtype}): {fx.folder_size(args.out) / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
