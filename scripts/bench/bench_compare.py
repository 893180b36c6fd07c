#!/usr/bin/env python3
"""Side-by-side benchmark: pivot and PyTorch (diffusers) on the same model folder, in one run.

For each network, runs `pivot bench --json` and `scripts/bench/bench_torch.py --json` one after the other
(alternating, `--rounds` times) in separate processes, so both see the same machine state, and prints
a table of medians, GFLOP/s, peak RSS and the speed ratio (PyTorch time / pivot time; > 1 means pivot
is faster).

    python3 -m scripts.bench.bench_compare --model /tmp/sd15-fp32 [--network unet vae-decode ...]
        [--size 512] [--runs 3] [--rounds 1] [--markdown]

Build pivot first (`swift build -c release`); the script uses .build/release/pivot.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
from scripts import REPO_ROOT  # noqa: E402

ROOT = REPO_ROOT


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    return [json.loads(l) for l in lines]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--network", nargs="+", default=["unet", "text-encoder", "vae-encode", "vae-decode"])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1, help="alternations of pivot and PyTorch per network")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = ap.parse_args()

    pivot = os.path.join(ROOT, ".build/release/pivot")
    if not os.access(pivot, os.X_OK):
        sys.exit("build pivot first: swift build -c release")
    rows = []
    for net in args.network:
        res = {"pivot": [], "pytorch": []}
        peak = {"pivot": 0, "pytorch": 0}
        for _ in range(args.rounds):
            p = run_json([pivot, "bench", "--model", args.model, "--network", net, "--size", str(args.size),
                          "--runs", str(args.runs), "--json"])[0]
            res["pivot"].append(p["median_s"]); peak["pivot"] = max(peak["pivot"], p.get("peak_rss_bytes", 0))
            gflop = p["gflop"]
            t = run_json([sys.executable, "-m", "scripts.bench.bench_torch", "--model", args.model, "--network", net,
                          "--size", str(args.size), "--runs", str(args.runs), "--json"])[0]
            res["pytorch"].append(t["median_s"])
            peak["pytorch"] = max(peak["pytorch"], int(t.get("peak_rss_bytes", t.get("peak_rss_mb", 0) * 2**20)))
        mp, mt = statistics.median(res["pivot"]), statistics.median(res["pytorch"])
        rows.append((net, mp, mt, gflop, peak["pivot"], peak["pytorch"]))
        print(json.dumps({"network": net, "pivot_s": mp, "pytorch_s": mt, "speedup": mt / mp, "gflop": gflop,
                          "pivot_peak_rss_bytes": peak["pivot"], "pytorch_peak_rss_bytes": peak["pytorch"]}),
              file=sys.stderr)
    if args.markdown:
        print("| network | pivot s | PyTorch s | PyTorch / pivot | GFLOP | pivot GFLOP/s | PyTorch GFLOP/s | pivot peak RSS | PyTorch peak RSS |")
        print("|---|---|---|---|---|---|---|---|---|")
        for net, mp, mt, g, rp, rt in rows:
            print(f"| {net} | {mp:.2f} | {mt:.2f} | {mt / mp:.2f}× | {g:.0f} | {g / mp:.0f} | {g / mt:.0f} | "
                  f"{rp / 1e9:.2f} GB | {rt / 1e9:.2f} GB |")
    else:
        for net, mp, mt, g, rp, rt in rows:
            print(f"{net:14s} pivot {mp:7.2f} s  pytorch {mt:7.2f} s  speedup {mt / mp:5.2f}x  ({g:.0f} GFLOP)")


if __name__ == "__main__":
    main()
