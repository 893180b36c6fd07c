#!/usr/bin/env python3
"""Generate the small random-weight parity fixtures for the Swift model tests.

Writes ``Tests/PivotModelsTests/Fixtures/<case>/`` for three cases:

* ``sd1-tiny``  -- SD 1.x-like (quick_gelu CLIP, 1x1-conv projections), fp32 storage,
                  batch 1, latent 16x16, int64 scalar timestep 500.
* ``sd2-tiny``  -- SD 2.x-like (gelu CLIP, per-block head counts, linear projections,
                  upcast attention, 3 levels, 16 groups), fp16 storage, batch 2,
                  non-square latent 12x20, int32 timesteps [999, 37].
* ``sd1-bf16``  -- sd1-tiny with ``transformer_layers_per_block 2`` and
                  ``layers_per_block 1``, bf16 storage, batch 2, latent 8x16,
                  float32 timesteps [801.0, 1.0].

Each case folder holds

* ``model/``: a diffusers-style folder (``model_index.json``, ``text_encoder/``,
  ``unet/``, ``vae/``, ``scheduler/``) saved with ``save_pretrained`` in the
  storage dtype (no tokenizer: the tiny vocabulary has 1000 ids, the model
  index lists ``tokenizer`` as ``[null, null]``);
* parity pairs ``<component>.in.safetensors`` / ``<component>.out.safetensors``
  for ``text-encoder``, ``unet``, ``vae-encode``, ``vae-decode``.  All tensors
  are fp32 except ids and timesteps.  The reference outputs are computed in
  fp32 from the *stored* weights (fp16/bf16 weights are rounded through the
  storage dtype first, then computed in fp32).

``sd1-tiny`` additionally has ``model-prefixed/text_encoder/`` -- the same
text-encoder weights under hub-style ``text_model.*`` names plus an int64
``text_model.embeddings.position_ids`` buffer, to test the loader's prefix
handling.

Weights are random (``torch.manual_seed``), and after init every norm
weight/bias and every constant (e.g. zero-initialised) parameter gets
``+0.02*randn`` so that no weight is a no-op and every parameter matters.

Run from the package root (deterministic; takes a few seconds):

    python3 scripts/make_fixtures.py [--out Tests/PivotModelsTests/Fixtures]

This module's helpers are reused by make_sample_model.py and make_sd15_random.py.
"""

import argparse
import json
import os
import shutil
import sys
import warnings

import torch

torch.set_num_threads(2)
warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

hf_logging.set_verbosity_error()
try:
    hf_logging.disable_progress_bar()
except Exception:  # pragma: no cover
    pass

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SD15_REF = "/work/shared/reference/sd15"

# SD 1.5's DDIMScheduler config (copied verbatim into every model folder).
SD15_SCHEDULER = {
    "_class_name": "DDIMScheduler",
    "_diffusers_version": "0.42.1",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "clip_sample_range": 1.0,
    "dynamic_thresholding_ratio": 0.995,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "rescale_betas_zero_snr": False,
    "sample_max_value": 1.0,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "thresholding": False,
    "timestep_spacing": "leading",
    "trained_betas": None,
}

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


# --------------------------------------------------------------------------- helpers

def scheduler_config():
    """SD 1.5's scheduler config: the reference file when present, else the built-in copy."""
    path = os.path.join(SD15_REF, "scheduler", "scheduler_config.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return dict(SD15_SCHEDULER)


@torch.no_grad()
def perturb_(model, std=0.02):
    """Add std*randn to every norm weight/bias and every constant parameter (in place).

    Uses the global torch RNG, so call it right after construction under a fixed seed.
    """
    norm_types = (torch.nn.GroupNorm, torch.nn.LayerNorm, torch.nn.BatchNorm2d)
    done = set()
    for module in model.modules():
        if isinstance(module, norm_types):
            for p in module.parameters(recurse=False):
                p.add_(torch.randn(p.shape, dtype=torch.float32).to(p.dtype) * std)
                done.add(id(p))
    for _, p in model.named_parameters():
        if id(p) in done:
            continue
        if p.numel() == 1 or bool((p == p.flatten()[0]).all()):
            p.add_(torch.randn(p.shape, dtype=torch.float32).to(p.dtype) * std)
    return model


@torch.no_grad()
def round_through_(model, dtype):
    """Round the weights through the storage dtype, keep computing in fp32."""
    if dtype != torch.float32:
        model.to(dtype)
        model.to(torch.float32)
    return model


def build_text_encoder(cfg):
    cfg = dict(cfg)
    # token ids used only by the pooler; keep them inside the (tiny) vocabulary
    cfg.setdefault("bos_token_id", 0)
    cfg.setdefault("eos_token_id", 2)
    cfg.setdefault("pad_token_id", 1)
    model = CLIPTextModel(CLIPTextConfig(**cfg))
    return perturb_(model.eval())


def build_unet(cfg):
    return perturb_(UNet2DConditionModel(**cfg).eval())


def build_vae(cfg):
    return perturb_(AutoencoderKL(**cfg).eval())


def save_component(model, folder, dtype):
    """save_pretrained in the storage dtype, then back to fp32 (exact: weights are pre-rounded)."""
    os.makedirs(folder, exist_ok=True)
    model.to(dtype)
    model.save_pretrained(folder, safe_serialization=True)
    model.to(torch.float32)


def write_model_index(folder, with_tokenizer=False):
    index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": "0.42.1",
        "feature_extractor": [None, None],
        "image_encoder": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"] if with_tokenizer else [None, None],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "model_index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")


def write_scheduler(folder):
    d = os.path.join(folder, "scheduler")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "scheduler_config.json"), "w") as f:
        json.dump(scheduler_config(), f, indent=2)
        f.write("\n")


def save_tensors(path, tensors):
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, path)


def maxabs(t):
    return float(t.detach().abs().max())


def folder_size(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            total += os.path.getsize(os.path.join(dirpath, name))
    return total


# --------------------------------------------------------------------------- cases

CLIP_SD1 = dict(hidden_size=32, num_attention_heads=4, num_hidden_layers=3, intermediate_size=37,
                hidden_act="quick_gelu", vocab_size=1000, max_position_embeddings=77,
                layer_norm_eps=1e-5, projection_dim=32)
CLIP_SD2 = dict(hidden_size=32, num_attention_heads=4, num_hidden_layers=2, intermediate_size=64,
                hidden_act="gelu", vocab_size=1000, max_position_embeddings=77,
                layer_norm_eps=1e-5, projection_dim=32)

UNET_SD1 = dict(sample_size=16, in_channels=4, out_channels=4, block_out_channels=[32, 64],
                down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
                up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"],
                layers_per_block=2, cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32)
UNET_SD2 = dict(sample_size=16, in_channels=4, out_channels=4, block_out_channels=[32, 64, 64],
                down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
                up_block_types=["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
                attention_head_dim=[2, 4, 8], use_linear_projection=True, upcast_attention=True,
                layers_per_block=1, norm_num_groups=16, cross_attention_dim=32)
UNET_SD1_BF16 = dict(UNET_SD1, layers_per_block=1, transformer_layers_per_block=2)

VAE_SD1 = dict(in_channels=3, out_channels=3, block_out_channels=[32, 64],
               down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
               layers_per_block=1, latent_channels=4, norm_num_groups=32, sample_size=32)
VAE_SD2 = dict(in_channels=3, out_channels=3, block_out_channels=[32, 64, 64],
               down_block_types=["DownEncoderBlock2D"] * 3, up_block_types=["UpDecoderBlock2D"] * 3,
               layers_per_block=1, latent_channels=4, norm_num_groups=16, sample_size=64)

CASES = {
    "sd1-tiny": dict(seed=1, dtype="fp32", clip=CLIP_SD1, unet=UNET_SD1, vae=VAE_SD1,
                     batch=1, latent_hw=(16, 16), image_hw=(32, 32),
                     timestep=lambda: torch.tensor(500, dtype=torch.int64), ids_dtype=torch.int64,
                     prefixed=True),
    "sd2-tiny": dict(seed=2, dtype="fp16", clip=CLIP_SD2, unet=UNET_SD2, vae=VAE_SD2,
                     batch=2, latent_hw=(12, 20), image_hw=(48, 80),
                     timestep=lambda: torch.tensor([999, 37], dtype=torch.int32), ids_dtype=torch.int32,
                     prefixed=False),
    "sd1-bf16": dict(seed=3, dtype="bf16", clip=CLIP_SD1, unet=UNET_SD1_BF16, vae=VAE_SD1,
                     batch=2, latent_hw=(8, 16), image_hw=(16, 32),
                     timestep=lambda: torch.tensor([801.0, 1.0], dtype=torch.float32),
                     ids_dtype=torch.int64, prefixed=False),
}


def write_prefixed_text_encoder(te_folder, out_folder):
    """Hub-style copy of a saved text encoder: `text_model.` prefix + int64 position_ids."""
    from safetensors.torch import load_file

    os.makedirs(out_folder, exist_ok=True)
    state = load_file(os.path.join(te_folder, "model.safetensors"))
    with open(os.path.join(te_folder, "config.json")) as f:
        cfg = json.load(f)
    prefixed = {"text_model." + k: v for k, v in state.items()}
    n = cfg["max_position_embeddings"]
    prefixed["text_model.embeddings.position_ids"] = torch.arange(n, dtype=torch.int64)[None]
    save_file(prefixed, os.path.join(out_folder, "model.safetensors"), metadata={"format": "pt"})
    shutil.copy(os.path.join(te_folder, "config.json"), os.path.join(out_folder, "config.json"))


@torch.no_grad()
def make_case(name, spec, out_root):
    case_dir = os.path.join(out_root, name)
    if os.path.exists(case_dir):
        shutil.rmtree(case_dir)
    model_dir = os.path.join(case_dir, "model")
    dtype = DTYPES[spec["dtype"]]
    seed = spec["seed"]

    torch.manual_seed(seed)
    te = round_through_(build_text_encoder(spec["clip"]), dtype)
    torch.manual_seed(seed * 1000 + 1)
    unet = round_through_(build_unet(spec["unet"]), dtype)
    torch.manual_seed(seed * 1000 + 2)
    vae = round_through_(build_vae(spec["vae"]), dtype)

    write_model_index(model_dir)
    write_scheduler(model_dir)
    save_component(te, os.path.join(model_dir, "text_encoder"), dtype)
    save_component(unet, os.path.join(model_dir, "unet"), dtype)
    save_component(vae, os.path.join(model_dir, "vae"), dtype)
    if spec["prefixed"]:
        write_prefixed_text_encoder(os.path.join(model_dir, "text_encoder"),
                                    os.path.join(case_dir, "model-prefixed", "text_encoder"))

    # inputs (own generator, independent of the weights)
    g = torch.Generator().manual_seed(seed * 1000 + 7)
    b = spec["batch"]
    lh, lw = spec["latent_hw"]
    ih, iw = spec["image_hw"]
    ids = torch.randint(0, spec["clip"]["vocab_size"], (b, 77), generator=g, dtype=torch.int64)
    ids = ids.to(spec["ids_dtype"])
    sample = torch.randn((b, 4, lh, lw), generator=g)
    image = torch.rand((b, 3, ih, iw), generator=g) * 2 - 1
    latent = torch.randn((b, 4, lh, lw), generator=g)
    timestep = spec["timestep"]()

    context = te(input_ids=ids).last_hidden_state.float()
    eps = unet(sample, timestep, encoder_hidden_states=context).sample.float()
    mean = vae.encode(image).latent_dist.mean.float()
    decoded = vae.decode(latent).sample.float()
    assert mean.shape[-2:] == (lh, lw), mean.shape
    assert decoded.shape[-2:] == (ih, iw), decoded.shape

    save_tensors(os.path.join(case_dir, "text-encoder.in.safetensors"), {"input_ids": ids})
    save_tensors(os.path.join(case_dir, "text-encoder.out.safetensors"), {"last_hidden_state": context})
    save_tensors(os.path.join(case_dir, "unet.in.safetensors"),
                 {"sample": sample, "timestep": timestep, "encoder_hidden_states": context})
    save_tensors(os.path.join(case_dir, "unet.out.safetensors"), {"out": eps})
    save_tensors(os.path.join(case_dir, "vae-encode.in.safetensors"), {"image": image})
    save_tensors(os.path.join(case_dir, "vae-encode.out.safetensors"), {"mean": mean})
    save_tensors(os.path.join(case_dir, "vae-decode.in.safetensors"), {"latent": latent})
    save_tensors(os.path.join(case_dir, "vae-decode.out.safetensors"), {"image": decoded})

    print(f"{name}: storage {spec['dtype']}, {folder_size(case_dir) / 1e6:.2f} MB")
    print(f"  text-encoder last_hidden_state {tuple(context.shape)} max|ref| = {maxabs(context):.6g}")
    print(f"  unet out                       {tuple(eps.shape)} max|ref| = {maxabs(eps):.6g}")
    print(f"  vae-encode mean                {tuple(mean.shape)} max|ref| = {maxabs(mean):.6g}")
    print(f"  vae-decode image               {tuple(decoded.shape)} max|ref| = {maxabs(decoded):.6g}")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "Tests", "PivotModelsTests", "Fixtures"))
    ap.add_argument("--case", action="append", choices=sorted(CASES), help="only these cases")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name in args.case or list(CASES):
        make_case(name, CASES[name], args.out)
    print(f"total {folder_size(args.out) / 1e6:.2f} MB in {args.out}")


if __name__ == "__main__":
    main()
