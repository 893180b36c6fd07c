#!/usr/bin/env python3
"""Time the PyTorch (diffusers/transformers) networks of an SD folder on CPU, fp32 or bf16 autocast.

The reference numbers that the Swift port is compared against.  For each
network: load it in fp32, run once untimed (the warm-up, which also counts the
FLOPs), then ``--runs`` timed runs; report the median seconds, GFLOP, GFLOP/s
and the process's peak RSS.  Forward passes run under ``torch.inference_mode()``
on ``--threads`` threads (default 2).

``--precision bf16`` runs each timed step (the forward, and for ``unet-vjp`` the
forward and backward) under ``torch.autocast("cpu", dtype=torch.bfloat16)``; the
weights stay fp32 and autocast casts them per op.  ``fp32`` (the default) runs
plain fp32.

Networks (``--network``):

* ``text-encoder``: CLIPTextModel on ``--batch`` x 77 random ids;
* ``unet``: UNet forward, latent ``--batch`` x 4 x (size/f) x (size/f), timestep 500,
  random context ``--batch`` x 77 x cross_attention_dim;
* ``unet-vjp``: the same forward with autograd on, then backward of a fixed random
  cotangent to the context only (all weights ``requires_grad_(False)``), the
  null-text optimisation's inner step; reports forward and backward medians too;
* ``vae-encode``: ``vae.encode(image).latent_dist.mean`` on ``--batch`` x 3 x size x size;
* ``vae-decode``: ``vae.decode(latent).sample`` on a ``--batch`` x 4 x (size/f)² latent;
* ``all``: each of the above in its own subprocess (so that peak RSS is per network).

FLOPs are counted on the warm-up with ``torch.utils.flop_counter.FlopCounterMode``
(2 FLOP per multiply-add in convolutions, matmuls and attention; CPU flash
attention added with torch's own SDPA formulas), so they are right for any
config; they are also reported by kind (conv / linear / attention).

    python3 -m scripts.bench.bench_torch --model /tmp/sd15-fp32 [--network unet|text-encoder|vae-encode|vae-decode|unet-vjp|all]
        [--size 512] [--batch 1] [--runs 3] [--threads 2] [--precision fp32|bf16] [--json]

``--json`` prints one JSON object per network per line with ``network``, ``impl``
("pytorch"), ``precision``, ``median_s``, ``times_s``, ``gflop``, ``gflops``, ``runs``,
``peak_rss_mb``, ``gflop_by_kind`` and the shapes; otherwise a readable line.
"""

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings
from scripts import REPO_ROOT  # noqa: E402

NETWORKS = ["text-encoder", "unet", "unet-vjp", "vae-encode", "vae-decode"]


def network_parser(doc, networks, precision_help):
    """The options every peer benchmark takes (model, network, size, batch, runs, threads, precision, json);
    `run_each_network` passes them on to each network's process. Shared with bench_openvino.py."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--model", required=True, help="diffusers folder")
    ap.add_argument("--network", default="unet", choices=networks + ["all"])
    ap.add_argument("--size", type=int, default=512, help="image side in pixels (latent = size / VAE factor)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help=precision_help)
    ap.add_argument("--json", action="store_true")
    return ap


def parse_args():
    return network_parser(__doc__, NETWORKS, "fp32, or bf16 autocast around each timed step (weights stay fp32)").parse_args()


def run_all(args):
    """Each network in a fresh process: peak RSS per network, no cross-talk."""
    return run_each_network("scripts.bench.bench_torch", NETWORKS, args)


def run_each_network(module, networks, args, extra=()):
    """Runs ``python -m module --network NET`` (from the repository root) with ``args``' common options for
    each network, in its own process, passing its standard output through; 1 if any failed. Shared with
    bench_openvino.py."""
    rc = 0
    for net in networks:
        cmd = [sys.executable, "-m", module, "--model", args.model, "--network", net,
               "--size", str(args.size), "--batch", str(args.batch), "--runs", str(args.runs),
               "--threads", str(args.threads), "--precision", args.precision, *extra]
        if args.json:
            cmd.append("--json")
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT)
        sys.stdout.write(proc.stdout)
        sys.stdout.flush()
        if proc.returncode != 0:
            print(f"{net}: failed with exit status {proc.returncode}", file=sys.stderr)
            rc = 1
    return rc


def flop_counter():
    import torch
    from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

    def cpu_flash_fwd(query, key, value, *args, out_shape=None, **kwargs):
        return sdpa_flop_count(query, key, value)

    def cpu_flash_bwd(grad_out, query, key, value, *args, out_shape=None, **kwargs):
        return sdpa_backward_flop_count(grad_out, query, key, value)

    custom = {}
    aten = torch.ops.aten
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        custom[aten._scaled_dot_product_flash_attention_for_cpu] = cpu_flash_fwd
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu_backward"):
        custom[aten._scaled_dot_product_flash_attention_for_cpu_backward] = cpu_flash_bwd
    return FlopCounterMode(display=False, custom_mapping=custom)


def flops_by_kind(counter):
    kinds = {"conv": 0, "linear": 0, "attention": 0, "other": 0}
    for op, n in counter.get_flop_counts().get("Global", {}).items():
        name = str(op)
        if "conv" in name:
            kinds["conv"] += n
        elif "attention" in name or "bmm" in name:
            kinds["attention"] += n
        elif "mm" in name:
            kinds["linear"] += n
        else:
            kinds["other"] += n
    return kinds


def bench_one(args):
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import torch

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    import diffusers
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()

    def cfg(name):
        with open(os.path.join(args.model, name, "config.json")) as f:
            return json.load(f)

    vae_cfg, unet_cfg, te_cfg = cfg("vae"), cfg("unet"), cfg("text_encoder")
    factor = 2 ** (len(vae_cfg["block_out_channels"]) - 1)
    lat = args.size // factor
    b = args.batch
    g = torch.Generator().manual_seed(0)
    net = args.network
    shapes = {}
    backward = None

    if net == "text-encoder":
        model = CLIPTextModel.from_pretrained(os.path.join(args.model, "text_encoder"),
                                              torch_dtype=torch.float32).eval()
        ids = torch.randint(0, te_cfg["vocab_size"], (b, te_cfg["max_position_embeddings"]), generator=g)
        shapes["input_ids"] = list(ids.shape)

        def forward():
            return model(input_ids=ids).last_hidden_state
    elif net in ("unet", "unet-vjp"):
        model = UNet2DConditionModel.from_pretrained(os.path.join(args.model, "unet"),
                                                     torch_dtype=torch.float32).eval()
        model.requires_grad_(False)
        sample = torch.randn((b, unet_cfg["in_channels"], lat, lat), generator=g)
        context = torch.randn((b, te_cfg["max_position_embeddings"], unet_cfg["cross_attention_dim"]),
                              generator=g)
        timestep = torch.tensor(500, dtype=torch.int64)
        shapes.update(sample=list(sample.shape), encoder_hidden_states=list(context.shape))
        if net == "unet":
            def forward():
                return model(sample, timestep, encoder_hidden_states=context).sample
        else:
            cotangent = torch.randn(sample.shape[:1] + (unet_cfg["out_channels"],) + sample.shape[2:],
                                    generator=g)
            state = {}

            def forward():
                ctx = context.clone().requires_grad_(True)
                state["ctx"] = ctx
                state["out"] = model(sample, timestep, encoder_hidden_states=ctx).sample
                return state["out"]

            def backward():
                out = state["out"]
                out.backward(cotangent.to(out.dtype))
                grad = state["ctx"].grad
                state.clear()
                return grad
    elif net in ("vae-encode", "vae-decode"):
        model = AutoencoderKL.from_pretrained(os.path.join(args.model, "vae"), torch_dtype=torch.float32).eval()
        if net == "vae-encode":
            image = torch.rand((b, 3, args.size, args.size), generator=g) * 2 - 1
            shapes["image"] = list(image.shape)

            def forward():
                return model.encode(image).latent_dist.mean
        else:
            latent = torch.randn((b, vae_cfg["latent_channels"], lat, lat), generator=g)
            shapes["latent"] = list(latent.shape)

            def forward():
                return model.decode(latent).sample
    else:
        raise SystemExit(f"unknown network {net}")

    def autocast():
        if args.precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step():
        """One timed iteration: (total, forward, backward) seconds."""
        if backward is None:
            with torch.inference_mode(), autocast():
                t0 = time.perf_counter()
                forward()
                t1 = time.perf_counter()
            return t1 - t0, t1 - t0, 0.0
        with torch.enable_grad(), autocast():
            t0 = time.perf_counter()
            forward()
            t1 = time.perf_counter()
            backward()
            t2 = time.perf_counter()
        return t2 - t0, t1 - t0, t2 - t1

    # warm-up + FLOP count
    counter = flop_counter()
    with counter:
        warm = step()
    total_flops = counter.get_total_flops()
    kinds = flops_by_kind(counter)

    times, fwd, bwd = [], [], []
    for _ in range(args.runs):
        t, f, bk = step()
        times.append(t)
        fwd.append(f)
        bwd.append(bk)
    median = statistics.median(times)
    gflop = total_flops / 1e9
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB
    result = {
        "network": net,
        "impl": "pytorch",
        "precision": args.precision,
        "median_s": round(median, 4),
        "times_s": [round(t, 4) for t in times],
        "warmup_s": round(warm[0], 4),
        "gflop": round(gflop, 2),
        "gflops": round(gflop / median, 1) if median > 0 else None,
        "gflop_by_kind": {k: round(v / 1e9, 2) for k, v in kinds.items()},
        "runs": args.runs,
        "batch": b,
        "size": args.size,
        "latent": [lat, lat],
        "shapes": shapes,
        "dtype": "fp32",
        "threads": args.threads,
        "peak_rss_mb": round(rss_mb, 1),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # ATen's kernel level (ATEN_CPU_CAPABILITY caps it)
        "diffusers": diffusers.__version__,
        "model": os.path.abspath(args.model),
    }
    if backward is not None:
        result["forward_median_s"] = round(statistics.median(fwd), 4)
        result["backward_median_s"] = round(statistics.median(bwd), 4)
    if args.json:
        print(json.dumps(result), flush=True)
    else:
        extra = ""
        if backward is not None:
            extra = f" (fwd {result['forward_median_s']:.3f} + bwd {result['backward_median_s']:.3f})"
        k = result["gflop_by_kind"]
        print(f"{net:13s} {args.precision} median {median:8.3f} s{extra}  {gflop:9.1f} GFLOP "
              f"(conv {k['conv']:.1f}, linear {k['linear']:.1f}, attention {k['attention']:.1f})  "
              f"{result['gflops']:7.1f} GFLOP/s  peak RSS {rss_mb / 1024:.2f} GB  "
              f"runs {[round(t, 3) for t in times]}", flush=True)
    return 0


def main():
    args = parse_args()
    if args.network == "all":
        sys.exit(run_all(args))
    sys.exit(bench_one(args))


if __name__ == "__main__":
    main()
