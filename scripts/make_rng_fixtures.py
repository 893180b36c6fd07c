#!/usr/bin/env python3
"""Golden fixtures for pivot's `TorchGenerator` (Sources/PivotTensor/TorchGenerator.swift).

Writes Tests/PivotDiffusionTests/Fixtures/rng.json: for each case, a fresh
`torch.Generator().manual_seed(seed)` makes one or more successive draws (`torch.randn` / `torch.rand`, fp32,
CPU); each draw stores its shape, a hash of every element's bit pattern (FNV-1a, 64-bit, over the 32-bit
words), the exact float64 sum and sum of squares (math.fsum), and the bit patterns of a few hundred elements
(all of them for small draws; else the head, the middle and the tail, which covers torch's recomputed last 16).

Two kernels are recorded: "avx2" (what PyTorch 2.13 runs on any x86-64 CPU with AVX2 and FMA, AVX-512 ones
included) and "scalar" (`ATEN_CPU_CAPABILITY=default`; made in a child process, since torch reads the variable
when it loads). The "scalar" kernel and draws of fewer than 16 elements call the C library's log/sin/cos, so
regenerate on the machine (glibc) the tests run on if those cases ever disagree.

Needs torch==2.13.0+cpu (the wheel pinned in README.md) on an x86-64 CPU with AVX2:
    python3 scripts/make_rng_fixtures.py [--out Tests/PivotDiffusionTests/Fixtures/rng.json]
"""
import argparse
import json
import math
import os
import subprocess
import sys

SEEDS = [0, 1, 42, 2**32 + 5, 2**63 - 1]
SHAPES = [[1], [7], [15], [16], [17], [33], [1, 4, 64, 64], [2, 4, 12, 20], [1, 4, 96, 64]]
# Successive draws from one generator: the small-draw cache and the engine state must carry over.
SEQUENCES = [
    (0, [("randn", [7]), ("randn", [33]), ("randn", [3]), ("randn", [1, 4, 8, 8])]),
    (1, [("randn", [1]), ("randn", [1]), ("randn", [1])]),
    (42, [("rand", [20]), ("randn", [17]), ("rand", [5]), ("randn", [1])]),
    (2**32 + 5, [("randn", [1, 4, 64, 64]), ("randn", [2, 4, 12, 20])]),
    (2**63 - 1, [("randn", [5]), ("randn", [1, 4, 96, 64]), ("randn", [15])]),
]
SCALAR_SEEDS = [0, 42]
SCALAR_SHAPES = [[16], [17], [33], [1, 4, 64, 64]]


def fnv1a64(words):
    h = 0xCBF29CE484222325
    for w in words:
        h ^= int(w)
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def sample_indices(n):
    if n <= 64:
        return list(range(n))
    mid = n // 2 - 16
    return sorted(set(range(96)) | set(range(mid, mid + 32)) | set(range(n - 48, n)))


def record(torch, np, op, shape, g):
    t = (torch.randn if op == "randn" else torch.rand)(shape, generator=g, dtype=torch.float32)
    values = t.reshape(-1).numpy()
    bits = values.view(np.uint32)
    idx = sample_indices(values.size)
    as_float = [float(v) for v in values]
    return {
        "op": op, "shape": shape, "fnv1a64": fnv1a64(bits.tolist()),
        "sum": math.fsum(as_float), "sumsq": math.fsum(v * v for v in as_float),
        "index": idx, "bits": [int(bits[i]) for i in idx],
    }


def make_cases(kernel):
    import numpy as np
    import torch
    if not torch.__version__.startswith("2.13.0"):
        sys.exit(f"make_rng_fixtures: needs torch 2.13.0 (found {torch.__version__}); see README.md")
    cap = torch.backends.cpu.get_cpu_capability()
    if kernel == "avx2" and cap not in ("AVX2", "AVX512"):
        sys.exit(f"make_rng_fixtures: the avx2 cases need a CPU with AVX2 (torch reports {cap})")
    if kernel == "scalar" and cap != "DEFAULT":
        sys.exit(f"make_rng_fixtures: the scalar cases need ATEN_CPU_CAPABILITY=default (torch reports {cap})")
    cases = []
    if kernel == "avx2":
        for seed in SEEDS:
            for shape in SHAPES:
                g = torch.Generator().manual_seed(seed)
                cases.append({"name": f"randn{shape} seed {seed}", "seed": str(seed), "kernel": kernel,
                              "draws": [record(torch, np, "randn", shape, g)]})
        for seed, draws in SEQUENCES:
            g = torch.Generator().manual_seed(seed)
            name = "sequence " + ", ".join(f"{op}{shape}" for op, shape in draws) + f" seed {seed}"
            cases.append({"name": name, "seed": str(seed), "kernel": kernel,
                          "draws": [record(torch, np, op, shape, g) for op, shape in draws]})
    else:
        for seed in SCALAR_SEEDS:
            for shape in SCALAR_SHAPES:
                g = torch.Generator().manual_seed(seed)
                cases.append({"name": f"scalar randn{shape} seed {seed}", "seed": str(seed), "kernel": kernel,
                              "draws": [record(torch, np, "randn", shape, g)]})
        seed, draws = SEQUENCES[0]
        g = torch.Generator().manual_seed(seed)
        cases.append({"name": f"scalar sequence seed {seed}", "seed": str(seed), "kernel": kernel,
                      "draws": [record(torch, np, op, shape, g) for op, shape in draws]})
    return cases, torch.__version__


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..",
                                                   "Tests/PivotDiffusionTests/Fixtures/rng.json"))
    ap.add_argument("--child-scalar", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_scalar:
        json.dump(make_cases("scalar")[0], sys.stdout)
        return
    env = dict(os.environ, ATEN_CPU_CAPABILITY="default")
    child = subprocess.run([sys.executable, __file__, "--child-scalar"], env=env, capture_output=True, text=True)
    if child.returncode != 0:
        sys.exit(child.stderr.strip() or "make_rng_fixtures: the scalar child failed")
    cases, version = make_cases("avx2")
    cases += json.loads(child.stdout)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"torch": version, "cases": cases}, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {len(cases)} cases to {os.path.normpath(args.out)} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
