#!/usr/bin/env python3
"""Time the networks of an SD folder with OpenVINO on CPU, fp32 or bf16: a peer for pivot's benchmarks.

OpenVINO is a benchmark-only peer, never a pivot dependency: run this script with a Python that has
``openvino`` (``scripts/bench/bench_peers.py`` makes such a virtual environment, with the system's torch and
diffusers visible in it).  Each network is loaded with diffusers/transformers in fp32, wrapped in a small
``torch.nn.Module`` with plain tensor inputs and outputs, converted with ``openvino.convert_model`` (with
example inputs, static shapes) and saved as OpenVINO IR (fp32 weights, no fp16 compression).  The
conversion runs in a child process and its IR is cached (``--ir-dir``, keyed by the model files, network,
shapes and OpenVINO version), so that neither the conversion time nor the torch copy of the weights is
counted: the timed process only reads the IR, compiles it for ``CPU`` and runs it.

Compilation uses ``INFERENCE_PRECISION_HINT`` ``f32`` (``--precision fp32``) or ``bf16``
(``--precision bf16``), ``INFERENCE_NUM_THREADS`` ``--threads`` (default 2), ``NUM_STREAMS`` 1 and
``PERFORMANCE_HINT`` ``LATENCY``.  Then one untimed warm-up inference and ``--runs`` timed ones; the
median is reported.  The precision the compiled model actually runs at is read back and reported as
``inference_precision`` (OpenVINO falls back to f32 where the CPU has no bf16).

Networks (``--network``), with the inputs of ``scripts/bench/bench_torch.py`` (same seeds):

* ``text-encoder``: CLIPTextModel ``last_hidden_state`` on ``--batch`` x 77 random ids;
* ``unet``: UNet forward ``.sample``, latent ``--batch`` x 4 x (size/f)², timestep 500 (int64 scalar),
  random context ``--batch`` x 77 x cross_attention_dim;
* ``vae-encode``: ``vae.encode(image).latent_dist.mean`` on ``--batch`` x 3 x size x size;
* ``vae-decode``: ``vae.decode(latent).sample`` on a ``--batch`` x 4 x (size/f)² latent;
* ``all``: each of the above in its own process.

    python3 -m scripts.bench.bench_openvino --model /tmp/sd15-fp32 [--network unet|text-encoder|vae-encode|vae-decode|all]
        [--size 512] [--batch 1] [--runs 3] [--threads 2] [--precision fp32|bf16] [--ir-dir DIR] [--json]

``--json`` prints one JSON object per network per line with ``network``, ``impl`` ("openvino"),
``precision``, ``inference_precision``, ``median_s``, ``times_s``, ``warmup_s``, ``runs``, ``batch``,
``peak_rss_mb`` (of the timed process), ``convert_s`` (null when the IR came from the cache),
``compile_s`` and the shapes, in the format of ``scripts/bench/bench_torch.py``; otherwise a readable line.
"""

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from scripts import REPO_ROOT  # noqa: E402

NETWORKS = ["text-encoder", "unet", "vae-encode", "vae-decode"]
SUBFOLDER = {"text-encoder": "text_encoder", "unet": "unet", "vae-encode": "vae", "vae-decode": "vae"}
OV_PRECISION = {"fp32": "f32", "bf16": "bf16"}
DEFAULT_IR_DIR = os.path.join(os.path.expanduser("~"), ".cache", "pivot", "openvino-ir")


def parse_args():
    from scripts.bench.bench_torch import network_parser  # the options bench_torch.py takes, passed on alike

    ap = network_parser(__doc__, NETWORKS, "INFERENCE_PRECISION_HINT: fp32 -> f32, bf16 -> bf16")
    ap.add_argument("--ir-dir", default=os.environ.get("PIVOT_OPENVINO_IR", DEFAULT_IR_DIR),
                    help="cache of converted models (default $PIVOT_OPENVINO_IR or %(default)s)")
    ap.add_argument("--convert-to", metavar="DIR", help=argparse.SUPPRESS)  # internal: the conversion child
    return ap.parse_args()


def quiet():
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def configs(model):
    def cfg(name):
        with open(os.path.join(model, name, "config.json")) as f:
            return json.load(f)

    return cfg("vae"), cfg("unet"), cfg("text_encoder")


def make_inputs(args):
    """The network's inputs as torch tensors, generated as in bench_torch.py: (names, tensors, latent side)."""
    import torch

    vae_cfg, unet_cfg, te_cfg = configs(args.model)
    factor = 2 ** (len(vae_cfg["block_out_channels"]) - 1)
    lat = args.size // factor
    b = args.batch
    g = torch.Generator().manual_seed(0)
    net = args.network
    if net == "text-encoder":
        ids = torch.randint(0, te_cfg["vocab_size"], (b, te_cfg["max_position_embeddings"]), generator=g)
        return ["input_ids"], [ids], lat
    if net == "unet":
        sample = torch.randn((b, unet_cfg["in_channels"], lat, lat), generator=g)
        context = torch.randn((b, te_cfg["max_position_embeddings"], unet_cfg["cross_attention_dim"]),
                              generator=g)
        timestep = torch.tensor(500, dtype=torch.int64)
        return ["sample", "timestep", "encoder_hidden_states"], [sample, timestep, context], lat
    if net == "vae-encode":
        image = torch.rand((b, 3, args.size, args.size), generator=g) * 2 - 1
        return ["image"], [image], lat
    if net == "vae-decode":
        latent = torch.randn((b, vae_cfg["latent_channels"], lat, lat), generator=g)
        return ["latent"], [latent], lat
    raise SystemExit(f"unknown network {net}")


def ir_path(args, ov_version):
    """Cache path of the IR for this model, network and shapes: changes when the model's files do."""
    folder = os.path.join(os.path.abspath(args.model), SUBFOLDER[args.network])
    key = [os.path.abspath(args.model), args.network, args.size, args.batch, ov_version]
    for name in sorted(os.listdir(folder)):
        st = os.stat(os.path.join(folder, name))
        key.append((name, st.st_size, st.st_mtime_ns))
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]
    return os.path.join(args.ir_dir, f"{args.network}-b{args.batch}-s{args.size}-{digest}", "model.xml")


def convert(args):
    """Child process: torch module -> OpenVINO IR in args.convert_to (no fp16 weight compression)."""
    quiet()
    import torch

    torch.set_num_threads(args.threads)
    import openvino as ov
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    net = args.network
    folder = os.path.join(args.model, SUBFOLDER[net])

    class TextEncoder(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids):
            return self.m(input_ids=input_ids).last_hidden_state

    class UNet(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, sample, timestep, encoder_hidden_states):
            return self.m(sample, timestep, encoder_hidden_states=encoder_hidden_states).sample

    class VAEEncode(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, image):
            return self.m.encode(image).latent_dist.mean

    class VAEDecode(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, latent):
            return self.m.decode(latent).sample

    if net == "text-encoder":
        module = TextEncoder(CLIPTextModel.from_pretrained(folder, torch_dtype=torch.float32))
    elif net == "unet":
        module = UNet(UNet2DConditionModel.from_pretrained(folder, torch_dtype=torch.float32))
    else:
        vae = AutoencoderKL.from_pretrained(folder, torch_dtype=torch.float32)
        module = VAEEncode(vae) if net == "vae-encode" else VAEDecode(vae)
    module = module.eval().requires_grad_(False)
    names, tensors, _ = make_inputs(args)
    t0 = time.perf_counter()
    with torch.no_grad():
        model = ov.convert_model(module, example_input=tuple(tensors))
    for port, name in zip(model.inputs, names):
        port.get_tensor().set_names({name})
    os.makedirs(args.convert_to, exist_ok=True)
    ov.save_model(model, os.path.join(args.convert_to, "model.xml"), compress_to_fp16=False)
    seconds = time.perf_counter() - t0
    with open(os.path.join(args.convert_to, "convert.json"), "w") as f:
        json.dump({"convert_s": round(seconds, 2)}, f)
    return 0


def ensure_ir(args, ov_version):
    """The IR's path and the conversion seconds (None when it was cached)."""
    xml = ir_path(args, ov_version)
    if os.path.exists(xml):
        return xml, None
    final = os.path.dirname(xml)
    os.makedirs(args.ir_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".convert-", dir=args.ir_dir)
    try:
        cmd = [sys.executable, "-m", "scripts.bench.bench_openvino", "--model", args.model, "--network", args.network,
               "--size", str(args.size), "--batch", str(args.batch), "--threads", str(args.threads),
               "--convert-to", tmp]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT)
        if proc.returncode != 0:
            lines = [l for l in proc.stderr.splitlines() if l.strip()]
            raise SystemExit(f"{args.network}: conversion failed: {lines[-1] if lines else proc.returncode}")
        with open(os.path.join(tmp, "convert.json")) as f:
            seconds = json.load(f)["convert_s"]
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return xml, seconds


def bench_one(args):
    quiet()
    import openvino as ov
    import openvino.properties as props
    import openvino.properties.hint as hints

    xml, convert_s = ensure_ir(args, ov.__version__)
    names, tensors, lat = make_inputs(args)
    inputs = {n: t.numpy() for n, t in zip(names, tensors)}
    del tensors

    core = ov.Core()
    config = {
        hints.inference_precision: ov.Type.f32 if args.precision == "fp32" else ov.Type.bf16,
        props.inference_num_threads: args.threads,
        props.num_streams: 1,
        hints.performance_mode: hints.PerformanceMode.LATENCY,
    }
    t0 = time.perf_counter()
    compiled = core.compile_model(xml, "CPU", config)
    compile_s = time.perf_counter() - t0
    actual = compiled.get_property(hints.inference_precision)
    request = compiled.create_infer_request()

    def step():
        t0 = time.perf_counter()
        request.infer(inputs, share_inputs=True)
        return time.perf_counter() - t0

    warm = step()
    times = [step() for _ in range(args.runs)]
    median = statistics.median(times)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB
    result = {
        "network": args.network,
        "impl": "openvino",
        "precision": args.precision,
        "inference_precision": actual.get_type_name() if hasattr(actual, "get_type_name") else str(actual),
        "median_s": round(median, 4),
        "times_s": [round(t, 4) for t in times],
        "warmup_s": round(warm, 4),
        "runs": args.runs,
        "batch": args.batch,
        "size": args.size,
        "latent": [lat, lat],
        "shapes": {n: list(a.shape) for n, a in inputs.items()},
        "threads": args.threads,
        "peak_rss_mb": round(rss_mb, 1),
        "convert_s": convert_s,
        "compile_s": round(compile_s, 2),
        "openvino": ov.__version__.split("-")[0],
        "openvino_build": ov.__version__,
        "cpu": core.get_property("CPU", props.device.full_name),
        "model": os.path.abspath(args.model),
    }
    if args.json:
        print(json.dumps(result), flush=True)
    else:
        conv = "cached IR" if convert_s is None else f"converted in {convert_s:.1f} s"
        print(f"{args.network:13s} {args.precision} (runs {result['inference_precision']}) median {median:8.3f} s  "
              f"peak RSS {rss_mb / 1024:.2f} GB  compile {compile_s:.1f} s, {conv}  "
              f"runs {[round(t, 3) for t in times]}", flush=True)
    return 0


def run_all(args):
    """Each network in a fresh process: peak RSS per network, no cross-talk."""
    from scripts.bench.bench_torch import run_each_network  # the same loop as bench_torch.py's
    return run_each_network("scripts.bench.bench_openvino", NETWORKS, args, extra=["--ir-dir", args.ir_dir])


def main():
    args = parse_args()
    if args.convert_to:
        sys.exit(convert(args))
    if args.network == "all":
        sys.exit(run_all(args))
    sys.exit(bench_one(args))


if __name__ == "__main__":
    main()
