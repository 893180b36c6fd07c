#!/usr/bin/env python3
"""Compare a port's output safetensors file with a reference one.

For every tensor in REF: max|got - ref|, max|ref|, the bound
1e-4 * max(1, max|ref|) and PASS/FAIL.  A tensor missing from GOT, or with a
different shape, or with a non-finite value, fails.  Extra tensors in GOT are
listed and ignored.  Comparisons are done in float64 (either file may hold
fp32/fp16/bf16/integer tensors).  Exit status 0 when all pass, 1 otherwise.

    python3 -m scripts.reference.compare REF.safetensors GOT.safetensors [--rtol 1e-4]

Example: python3 -m scripts.reference.compare /tmp/sd15-parity/unet.out.safetensors /tmp/pivot-unet.out.safetensors
"""

import argparse
import sys

import torch
from safetensors.torch import load_file

torch.set_num_threads(2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("ref")
    ap.add_argument("got")
    ap.add_argument("--rtol", type=float, default=1e-4, help="bound = rtol * max(1, max|ref|)")
    args = ap.parse_args()

    try:
        ref = load_file(args.ref)
        got = load_file(args.got)
    except Exception as e:  # missing or unreadable file
        print(f"FAIL: cannot read safetensors: {e}")
        sys.exit(1)
    ok = True
    print(f"{'tensor':32s} {'shape':20s} {'max|Δ|':>12s} {'max|ref|':>12s} {'bound':>12s}  result")
    for name in sorted(ref):
        r = ref[name].to(torch.float64)
        mref = float(r.abs().max()) if r.numel() else 0.0
        bound = args.rtol * max(1.0, mref)
        shape = str(tuple(r.shape))
        if name not in got:
            print(f"{name:32s} {shape:20s} {'-':>12s} {mref:12.6g} {bound:12.6g}  FAIL (missing)")
            ok = False
            continue
        g = got[name].to(torch.float64)
        if tuple(g.shape) != tuple(r.shape):
            print(f"{name:32s} {shape:20s} {'-':>12s} {mref:12.6g} {bound:12.6g}  "
                  f"FAIL (shape {tuple(g.shape)})")
            ok = False
            continue
        if not bool(torch.isfinite(g).all()):
            print(f"{name:32s} {shape:20s} {'nan/inf':>12s} {mref:12.6g} {bound:12.6g}  FAIL (non-finite)")
            ok = False
            continue
        delta = float((g - r).abs().max()) if r.numel() else 0.0
        passed = delta <= bound
        ok &= passed
        print(f"{name:32s} {shape:20s} {delta:12.6g} {mref:12.6g} {bound:12.6g}  {'PASS' if passed else 'FAIL'}")
    extra = sorted(set(got) - set(ref))
    if extra:
        print(f"(ignored, not in reference: {', '.join(extra)})")
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
