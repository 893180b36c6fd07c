#!/usr/bin/env python3
"""bf16 against fp32 at full size: each network's output error relative to PyTorch's fp32 reference.

Runs ``pivot component NET --precision P`` for P in fp32 and bf16 on the inputs that
``scripts/reference/parity_sd15.py`` wrote, and prints, per network and precision, max|got - ref| / max|ref| and
mean|got - ref| / max|ref| (the figures docs/BENCHMARKS.md quotes), as a Markdown table.

    python3 -m scripts.reference.parity_sd15 --model /tmp/sd15-fp32 --out /tmp/sd15-parity
    python3 -m scripts.bench.bench_precision_errors --model /tmp/sd15-fp32 --parity /tmp/sd15-parity

Build pivot first (``swift build -c release``).
"""
import argparse
import os
import subprocess
import tempfile

from safetensors.torch import load_file
from scripts import REPO_ROOT  # noqa: E402

ROOT = REPO_ROOT
PIVOT = os.path.join(ROOT, ".build", "release", "pivot")
OUTPUTS = {"text-encoder": "last_hidden_state", "unet": "out", "vae-encode": "mean", "vae-decode": "image"}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--parity", required=True, help="folder written by scripts/reference/parity_sd15.py")
    ap.add_argument("--network", nargs="+", default=list(OUTPUTS))
    args = ap.parse_args()
    print("| network | precision | max error ÷ max abs ref | mean error ÷ max abs ref |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for net in args.network:
            ref = load_file(os.path.join(args.parity, f"{net}.out.safetensors"))[OUTPUTS[net]].double()
            scale = ref.abs().max().item()
            for p in ["fp32", "bf16"]:
                out = os.path.join(tmp, f"{net}-{p}.safetensors")
                subprocess.run([PIVOT, "component", net, "--model", args.model, "--precision", p,
                                "--in", os.path.join(args.parity, f"{net}.in.safetensors"), "--out", out],
                               check=True, capture_output=True)
                got = load_file(out)[OUTPUTS[net]].double()
                d = (got - ref).abs()
                print(f"| {net} | {p} | {d.max().item() / scale:.2e} | {d.mean().item() / scale:.2e} |", flush=True)


if __name__ == "__main__":
    main()
