#!/usr/bin/env python3
"""Side-by-side benchmark of pivot against its CPU peers, PyTorch and OpenVINO, fp32 and bf16.

For each case (network x batch) the engines run one after the other, each in its own process, and the
whole sequence repeats ``--rounds`` times, so that all of them see the same machine state:

* pivot: ``.build/release/pivot bench --json --precision P`` for each P in ``--pivot-precision``
  (default ``fp32 bf16``).  Where ``pivot bench --help`` shows no ``--precision``, pivot runs once
  without it, labelled fp32;
* PyTorch: ``scripts/bench/bench_torch.py --json`` in fp32 and under bf16 autocast;
* OpenVINO: ``scripts/bench/bench_openvino.py --json`` with ``INFERENCE_PRECISION_HINT`` f32 and bf16 (not for
  ``unet-vjp``: no backward there).

``--max-isa avx2`` runs pivot and PyTorch with their kernels capped at AVX2 + FMA (``ISA_CAPS``: pivot's
PIVOT_MAX_ISA; PyTorch's ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA and MKL_ENABLE_INSTRUCTIONS), for the code paths
of an AVX2-only processor where none is at hand; the header says so. OpenVINO is left out (no such cap).

OpenVINO is a benchmark-only peer, never a pivot dependency: it lives in a virtual environment of its
own, ``--venv`` (default ``$PIVOT_BENCH_VENV`` or ``~/.cache/pivot/bench-venv``), made on first use with
``python3 -m venv --system-site-packages`` (torch and diffusers come from the system) and
``pip install openvino==OPENVINO_VERSION``.  PyTorch runs with the interpreter that runs this script.

Cases by default: unet batch 1 and 2, unet-vjp batch 1, vae-decode, vae-encode and text-encoder batch 1.
``--network`` keeps only the named networks; ``--batch`` runs each kept network at each given batch.

    python3 -m scripts.bench.bench_peers --model /tmp/sd15-fp32 [--network unet vae-decode ...] [--batch 1 2]
        [--size 512] [--runs 3] [--rounds 1] [--threads 2] [--pivot-precision fp32 bf16]
        [--peer-precision fp32 bf16] [--engines pivot pytorch openvino] [--max-isa avx2] [--markdown] [--json-out FILE] [--setup-only]

Prints one line per process run on stderr, then a table (Markdown with ``--markdown``): a header naming
the CPU, its SIMD flags (avx2, avx512f, avx512_bf16, amx_bf16), the threads, the date and the versions;
one row per case with the median seconds (median over rounds of each run's median) and peak RSS of each
engine and precision, and the time ratios pivot-bf16/OpenVINO-bf16, pivot-fp32/OpenVINO-fp32,
pivot-bf16/PyTorch-bf16 and pivot-fp32/PyTorch-fp32 (< 1 means pivot is faster).  A peer that fails
shows ``error: <its last stderr line>`` in its cell and the run goes on.  ``--json-out`` writes every raw
result.  ``--setup-only`` makes (or checks) the OpenVINO environment, prints its version and exits.

Build pivot first (``swift build -c release``); the script uses .build/release/pivot.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from scripts import REPO_ROOT  # noqa: E402

ROOT = REPO_ROOT
PIVOT = os.path.join(ROOT, ".build", "release", "pivot")
OPENVINO_VERSION = "2026.4.1"
DEFAULT_VENV = os.path.join(os.path.expanduser("~"), ".cache", "pivot", "bench-venv")
NETWORKS = ["unet", "unet-vjp", "vae-decode", "vae-encode", "text-encoder"]
DEFAULT_CASES = [("unet", 1), ("unet", 2), ("unet-vjp", 1), ("vae-decode", 1), ("vae-encode", 1),
                 ("text-encoder", 1)]
PRECISIONS = ["fp32", "bf16"]
ENGINES = ["pivot", "pytorch", "openvino"]
LABEL = {"pivot": "pivot", "pytorch": "PyTorch", "openvino": "OpenVINO"}
RATIOS = [(("pivot", "bf16"), ("openvino", "bf16")), (("pivot", "fp32"), ("openvino", "fp32")),
          (("pivot", "bf16"), ("pytorch", "bf16")), (("pivot", "fp32"), ("pytorch", "fp32"))]
CPU_FLAGS = ["avx2", "avx512f", "avx512_bf16", "amx_bf16"]
# --max-isa: the environment that caps each engine's kernels at a level. pivot: its own dispatch, OpenBLAS's
# core type and oneDNN's JIT (PIVOT_MAX_ISA); PyTorch: ATen's dispatch, oneDNN (convolutions) and MKL (matrix
# products).
ISA_CAPS = {
    "avx2": {"pivot": {"PIVOT_MAX_ISA": "avx2"},
             "pytorch": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}},
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="diffusers folder (required unless --setup-only)")
    ap.add_argument("--network", nargs="+", choices=NETWORKS, help="keep only these networks")
    ap.add_argument("--batch", nargs="+", type=int, help="run each kept network at each of these batches")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--runs", type=int, default=3, help="timed runs per process (after one warm-up)")
    ap.add_argument("--rounds", type=int, default=1, help="alternations of all engines per case")
    ap.add_argument("--threads", type=int, default=2, help="threads of PyTorch and OpenVINO")
    ap.add_argument("--pivot-precision", nargs="+", choices=PRECISIONS, default=PRECISIONS)
    ap.add_argument("--peer-precision", nargs="+", choices=PRECISIONS, default=PRECISIONS,
                    help="the precisions PyTorch and OpenVINO run in (default both)")
    ap.add_argument("--engines", nargs="+", choices=ENGINES, default=ENGINES)
    ap.add_argument("--venv", default=os.environ.get("PIVOT_BENCH_VENV", DEFAULT_VENV),
                    help="virtual environment with OpenVINO (default $PIVOT_BENCH_VENV or %(default)s)")
    ap.add_argument("--openvino-version", default=OPENVINO_VERSION, help="pip pin (default %(default)s)")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per process")
    ap.add_argument("--max-isa", choices=list(ISA_CAPS),
                    help="run pivot and PyTorch with their kernels capped at this instruction-set level (an AVX2-only "
                    "processor's code paths on a larger one; OpenVINO, which has no such cap, is left out)")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    ap.add_argument("--json-out", metavar="FILE", help="write all raw results as JSON")
    ap.add_argument("--setup-only", action="store_true", help="make/check the OpenVINO venv and exit")
    args = ap.parse_args()
    if not args.setup_only and not args.model:
        ap.error("--model is required")
    return args


# ---------------------------------------------------------------- environment

def ensure_venv(venv, version):
    """The venv's python, with openvino==version installed: made with the system's site packages."""
    python = os.path.join(venv, "bin", "python")
    if not os.access(python, os.X_OK):
        log(f"making {venv} (--system-site-packages)")
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv], check=True)
    have = openvino_version(python)
    if have != version:
        log(f"installing openvino=={version} into {venv}" + (f" (has {have})" if have else ""))
        subprocess.run([python, "-m", "pip", "install", "--disable-pip-version-check", "-q",
                        f"openvino=={version}"], check=True, stdout=sys.stderr)
        have = openvino_version(python)
        if have != version:
            raise SystemExit(f"openvino {version} did not install in {venv} (import gives {have})")
    return python


def openvino_version(python):
    proc = subprocess.run([python, "-c", "import openvino; print(openvino.__version__)"],
                          capture_output=True, text=True)
    return proc.stdout.strip().split("-")[0] if proc.returncode == 0 else None


def module_version(python, module):
    proc = subprocess.run([python, "-c", f"import {module}; print({module}.__version__)"],
                          capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def cpu_info():
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name":
                    model = value.strip()
                elif key == "flags":
                    flags = set(value.split())
                if key == "flags" and model:
                    break
    except OSError:
        pass
    return model, {flag: flag in flags for flag in CPU_FLAGS}


def git_revision():
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=ROOT, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=ROOT).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def pivot_has_precision():
    """Whether `pivot bench` takes --precision (None when there is no pivot binary)."""
    if not os.access(PIVOT, os.X_OK):
        return None
    proc = subprocess.run([PIVOT, "bench", "--help"], capture_output=True, text=True)
    return "--precision" in proc.stdout + proc.stderr


# ---------------------------------------------------------------- running

def one_line(text, limit=200):
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    line = lines[-1] if lines else "no output"
    return line if len(line) <= limit else line[:limit - 1] + "…"


def run_json(cmd, timeout, env=None):
    """The first JSON line of the command's stdout (run with ``env`` added to the environment), or
    {"error": one line}."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                              env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    except OSError as e:
        return {"error": str(e)}
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": one_line(proc.stderr or proc.stdout) + f" (exit {proc.returncode})"}
    try:
        return json.loads(lines[0])
    except json.JSONDecodeError as e:
        return {"error": f"bad JSON: {e}"}


def peak_bytes(result):
    if "peak_rss_bytes" in result:
        return int(result["peak_rss_bytes"])
    if "peak_rss_mb" in result:
        return int(result["peak_rss_mb"] * 2**20)
    return None


def engine_runs(args, net, batch, openvino, pivot_flag):
    """(engine, precision, command or error string) for one case, in the order they alternate.

    ``openvino`` is the venv's python, or {"error": why} when the venv could not be made."""
    common = ["--model", args.model, "--network", net, "--size", str(args.size), "--batch", str(batch),
              "--runs", str(args.runs)]
    runs = []
    if "pivot" in args.engines:
        for p in args.pivot_precision:
            if pivot_flag is None:
                runs.append(("pivot", p, "pivot not built (swift build -c release)"))
            elif pivot_flag:
                runs.append(("pivot", p, [PIVOT, "bench", *common, "--json", "--precision", p]))
            elif p == "fp32":
                runs.append(("pivot", p, [PIVOT, "bench", *common, "--json"]))
            else:
                runs.append(("pivot", p, "pivot bench has no --precision"))
    peer_args = [*common, "--threads", str(args.threads), "--json"]
    if "pytorch" in args.engines:
        for p in args.peer_precision:
            runs.append(("pytorch", p, [sys.executable, "-m", "scripts.bench.bench_torch",
                                        *peer_args, "--precision", p]))
    if "openvino" in args.engines and net != "unet-vjp" and not args.max_isa:
        for p in args.peer_precision:
            if isinstance(openvino, dict):
                runs.append(("openvino", p, openvino["error"]))
            else:
                runs.append(("openvino", p, [openvino, "-m", "scripts.bench.bench_openvino",
                                             *peer_args, "--precision", p]))
    return runs


def run_case(args, net, batch, openvino, pivot_flag):
    results = {}  # (engine, precision) -> list of raw results, one per round
    for r in range(args.rounds):
        for engine, precision, cmd in engine_runs(args, net, batch, openvino, pivot_flag):
            env = ISA_CAPS[args.max_isa].get(engine) if args.max_isa else None
            res = {"error": cmd} if isinstance(cmd, str) else run_json(cmd, args.timeout, env)
            results.setdefault((engine, precision), []).append(res)
            head = f"[{net} b{batch} round {r + 1}/{args.rounds}] {LABEL[engine]} {precision}:"
            if "error" in res:
                log(f"{head} error: {res['error']}")
            else:
                extra = ""
                if res.get("precision") and res["precision"] != precision:
                    extra += f" ran {res['precision']}"
                if res.get("inference_precision"):
                    extra += f" (inference precision {res['inference_precision']})"
                if res.get("blas_core"):
                    extra += f" (OpenBLAS {res['blas_core']})"
                if res.get("cpu_capability"):
                    extra += f" (ATen {res['cpu_capability']})"
                if res.get("precision_reason"):
                    extra += f" ({res['precision_reason']})"
                peak = peak_bytes(res)
                log(f"{head} median {res['median_s']:.3f} s" + (f", peak RSS {peak / 1e9:.2f} GB" if peak else "")
                    + extra)
    return results


def summarise(raw):
    """One cell per engine+precision: median over rounds, max peak RSS, or the error."""
    ok = [r for r in raw if "error" not in r]
    if not ok:
        return {"error": raw[0]["error"] if raw else "not run"}
    peaks = [p for p in (peak_bytes(r) for r in ok) if p is not None]
    cell = {"median_s": statistics.median(r["median_s"] for r in ok), "rounds": len(ok),
            "peak_rss_bytes": max(peaks) if peaks else None}
    for key in ("precision", "precision_reason", "inference_precision", "gflop"):
        if key in ok[0]:
            cell[key] = ok[0][key]
    return cell


# ---------------------------------------------------------------- output

def columns(args):
    cols = []
    if "pivot" in args.engines:
        cols += [("pivot", p) for p in PRECISIONS if p in args.pivot_precision]
    cols += [(e, p) for e in ("pytorch", "openvino") if e in args.engines for p in args.peer_precision]
    return cols


def ran_precision(cell):
    """The precision the engine reports it ran at (pivot's ``precision``, OpenVINO's compiled one)."""
    actual = cell.get("inference_precision") or cell.get("precision")
    return {"f32": "fp32", "bf16": "bf16"}.get(actual, actual)


def cell_text(cell, precision):
    if cell is None:
        return "—"
    if "error" in cell:
        return "error: " + cell["error"]
    text = f"{cell['median_s']:.3f} s"
    if cell.get("peak_rss_bytes"):
        text += f", {cell['peak_rss_bytes'] / 1e9:.2f} GB"
    actual = ran_precision(cell)
    if actual and actual != precision:
        text += f" (ran {actual})"
    return text


def ratio_text(a, b):
    if not a or not b or "error" in a or "error" in b:
        return "—"
    return f"{a['median_s'] / b['median_s']:.2f}"


def render(rows, header, markdown):
    if markdown:
        esc = [[c.replace("|", "\\|") for c in row] for row in rows]
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(row) + " |" for row in esc]
        return "\n".join(out)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:{w}s}}" for w in widths)
    return "\n".join([fmt.format(*header)] + [fmt.format(*row) for row in rows])


def main():
    args = parse_args()
    openvino, ov_version = None, None
    if "openvino" in args.engines or args.setup_only:
        try:
            openvino = ensure_venv(args.venv, args.openvino_version)
            ov_version = openvino_version(openvino)
            log(f"OpenVINO {ov_version} in {args.venv}")
        except (subprocess.CalledProcessError, SystemExit, OSError) as e:
            if args.setup_only:
                raise
            openvino = {"error": f"OpenVINO setup failed: {one_line(str(e))}"}
            log(openvino["error"])
    if args.setup_only:
        print(ov_version)
        return

    cpu, flags = cpu_info()
    pivot_flag = pivot_has_precision() if "pivot" in args.engines else None
    if pivot_flag is False:
        log("pivot bench has no --precision: pivot runs once without it, labelled fp32")
    meta = {
        "cpu": cpu, "cpu_flags": flags, "threads": args.threads, "cores": os.cpu_count(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "torch": module_version(sys.executable, "torch"),
        "diffusers": module_version(sys.executable, "diffusers"),
        "transformers": module_version(sys.executable, "transformers"),
        "openvino": ov_version, "pivot_revision": git_revision(), "pivot_precision_flag": pivot_flag,
        "model": os.path.abspath(args.model), "size": args.size, "runs": args.runs, "rounds": args.rounds,
        "max_isa": args.max_isa,
    }

    if args.batch:
        nets = args.network or list(dict.fromkeys(n for n, _ in DEFAULT_CASES))
        cases = [(n, b) for n in nets for b in args.batch]
    else:
        cases = [(n, b) for n, b in DEFAULT_CASES if not args.network or n in args.network]

    cols = columns(args)
    table, records, notes = [], [], []
    for net, batch in cases:
        raw = run_case(args, net, batch, openvino, pivot_flag)
        cells = {key: summarise(v) for key, v in raw.items()}
        row = [net, str(batch)] + [cell_text(cells.get(c), c[1]) for c in cols]
        row += [ratio_text(cells.get(a), cells.get(b)) for a, b in RATIOS]
        table.append(row)
        for (engine, precision), cell in cells.items():
            if cell.get("precision_reason"):
                notes.append(f"{net} batch {batch}, {LABEL[engine]} {precision}: ran {ran_precision(cell)}, "
                             f"{cell['precision_reason']}")
        records.append({"network": net, "batch": batch,
                        "summary": {f"{e}-{p}": c for (e, p), c in cells.items()},
                        "raw": {f"{e}-{p}": v for (e, p), v in raw.items()}})

    flag_text = ", ".join(f"{f} {'yes' if v else 'no'}" for f, v in flags.items())
    versions = ", ".join(f"{k} {meta[k]}" for k in ("torch", "diffusers", "openvino") if meta[k])
    pivot_threads = f"pivot its default ({os.cpu_count()} cores)"
    lines = [f"CPU: {cpu} ({flag_text}); threads: {args.threads} for PyTorch and OpenVINO, {pivot_threads}",
             f"{meta['date']}; {versions}; pivot {meta['pivot_revision'] or '?'}; "
             f"size {args.size}, {args.runs} runs x {args.rounds} rounds, model {meta['model']}"]
    if pivot_flag is False:
        lines.append("pivot bench has no --precision: its fp32 column is its default precision")
    if args.max_isa:
        caps = "; ".join(f"{LABEL[e]} " + " ".join(f"{k}={v}" for k, v in env.items())
                         for e, env in ISA_CAPS[args.max_isa].items())
        lines.append(f"kernels capped at {args.max_isa} ({caps}): this processor running an {args.max_isa}-only "
                     "processor's code paths, not such a processor")
    header = ["network", "batch"] + [f"{LABEL[e]} {p}" for e, p in cols]
    header += [f"{LABEL[a[0]]}-{a[1]} / {LABEL[b[0]]}-{b[1]}" for a, b in RATIOS]
    if args.markdown:
        print("\n".join(f"{l}  " for l in lines) + "\n")
        print("Cells: median seconds, peak RSS. Ratios are times: < 1 means pivot is faster.\n")
    else:
        print("\n".join(lines))
    print(render(table, header, args.markdown))
    if notes:
        print("\n" + "\n".join(("* " if args.markdown else "") + n for n in notes))

    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"meta": meta, "cases": records}, f, indent=1)
        log(f"wrote {args.json_out}")


if __name__ == "__main__":
    main()
