#!/usr/bin/env python3
"""Single-file (original Stable Diffusion layout) copies of the sd1-tiny and sd2-tiny fixture models.

Writes ``Tests/PivotModelsTests/Fixtures/single/``: ``sd1-tiny.safetensors`` (fp32, as the folder) and
``sd2-tiny.ckpt`` (fp16, as the folder; OpenCLIP names with the fused ``in_proj``, one extra resblock that SD 2
does not use, ``text_projection`` and ``logit_scale``). (Two files, to keep the fixtures small: safetensors and
torch zip, fp32 and fp16.) Every file
also carries what real checkpoints carry and pivot must ignore: an EMA copy of a UNet weight and the diffusion
schedule buffers. ``.ckpt`` files are ``torch.save({"state_dict": …, "global_step": …})``.

The original names are made here from the diffusers names; the files are then checked with diffusers' own
single-file converters (``diffusers.loaders.single_file_utils``): converting each file back must give the
folder's tensors exactly, so the files follow the original layout as diffusers understands it.

Run from the package root after make_fixtures.py:
    python3 scripts/make_single_file_fixtures.py

``--from DIR --out FILE.safetensors [--fp16]`` writes any SD 1.x diffusers folder as one original-layout file
instead (checked the same way), e.g. the SD 1.5-size random model for the full-size check in docs/PARITY.md.
"""
import argparse
import os
import re
import warnings

import torch

warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: E402
from diffusers.loaders import single_file_utils as sfu  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import CLIPTextModel  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "Tests/PivotModelsTests/Fixtures")
OUT = os.path.join(FIX, "single")

RESNET = [("norm1.", "in_layers.0."), ("conv1.", "in_layers.2."), ("time_emb_proj.", "emb_layers.1."),
          ("norm2.", "out_layers.0."), ("conv2.", "out_layers.3."), ("conv_shortcut.", "skip_connection.")]


def unet_prefixes(config):
    """(diffusers prefix, original prefix, is resnet) for every block of the UNet."""
    out = [("time_embedding.linear_1.", "time_embed.0.", False), ("time_embedding.linear_2.", "time_embed.2.", False),
           ("conv_in.", "input_blocks.0.0.", False), ("conv_norm_out.", "out.0.", False), ("conv_out.", "out.2.", False),
           ("mid_block.resnets.0.", "middle_block.0.", True), ("mid_block.attentions.0.", "middle_block.1.", False),
           ("mid_block.resnets.1.", "middle_block.2.", True)]
    levels = len(config["block_out_channels"])
    lpb = config["layers_per_block"]
    lpb = lpb if isinstance(lpb, list) else [lpb] * levels
    k = 1
    for i, kind in enumerate(config["down_block_types"]):
        for j in range(lpb[i]):
            out.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{k}.0.", True))
            if kind.startswith("CrossAttn"):
                out.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{k}.1.", False))
            k += 1
        if i < levels - 1:
            out.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{k}.0.op.", False))
            k += 1
    k = 0
    for i, kind in enumerate(config["up_block_types"]):
        attn = kind.startswith("CrossAttn")
        n = list(reversed(lpb))[i] + 1
        for j in range(n):
            out.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{k}.0.", True))
            if attn:
                out.append((f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{k}.1.", False))
            if j == n - 1 and i < levels - 1:
                out.append((f"up_blocks.{i}.upsamplers.0.conv.", f"output_blocks.{k}.{2 if attn else 1}.conv.", False))
            k += 1
    return out


def unet_original(unet):
    prefixes = sorted(unet_prefixes(unet.config), key=lambda p: -len(p[0]))
    out = {}
    for name, t in unet.state_dict().items():
        d, o, resnet = next(p for p in prefixes if name.startswith(p[0]))
        rest = name[len(d):]
        if resnet:
            for a, b in RESNET:
                if rest.startswith(a):
                    rest = b + rest[len(a):]
                    break
        out["model.diffusion_model." + o + rest] = t
    return out


def vae_original(vae):
    levels = len(vae.config.block_out_channels)
    out = {}
    for name, t in vae.state_dict().items():
        n = name
        n = re.sub(r"^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.", r"encoder.down.\1.block.\2.", n)
        n = re.sub(r"^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", r"encoder.down.\1.downsample.", n)
        n = re.sub(r"^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.",
                   lambda m: f"decoder.up.{levels - 1 - int(m.group(1))}.block.{m.group(2)}.", n)
        n = re.sub(r"^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.",
                   lambda m: f"decoder.up.{levels - 1 - int(m.group(1))}.upsample.", n)
        n = re.sub(r"\.mid_block\.resnets\.0\.", ".mid.block_1.", n)
        n = re.sub(r"\.mid_block\.resnets\.1\.", ".mid.block_2.", n)
        attn = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
        for a, b in attn.items():
            if f".mid_block.attentions.0.{a}." in n:
                n = n.replace(f".mid_block.attentions.0.{a}.", f".mid.attn_1.{b}.")
                if b != "norm" and n.endswith(".weight"):
                    t = t[:, :, None, None]
        n = n.replace(".conv_shortcut.", ".nin_shortcut.").replace(".conv_norm_out.", ".norm_out.")
        out["first_stage_model." + n] = t
    return out


def clip_original(te):
    return {"cond_stage_model.transformer." + (k if k.startswith("text_model.") else "text_model." + k): v
            for k, v in te.state_dict().items()}


def open_clip_original(te, dtype):
    sd = {k.removeprefix("text_model."): v for k, v in te.state_dict().items()}
    p = "cond_stage_model.model."
    out = {p + "token_embedding.weight": sd["embeddings.token_embedding.weight"],
           p + "positional_embedding": sd["embeddings.position_embedding.weight"],
           p + "ln_final.weight": sd["final_layer_norm.weight"], p + "ln_final.bias": sd["final_layer_norm.bias"]}
    layers = te.config.num_hidden_layers
    d = te.config.hidden_size
    for i in range(layers + 1):  # one more resblock than the diffusers model: SD 2 stops at the penultimate
        b, r = f"encoder.layers.{i}.", f"{p}transformer.resblocks.{i}."
        if i == layers:
            g = torch.Generator().manual_seed(3)
            src = {f"encoder.layers.{i - 1}.{k[len(f'encoder.layers.{i - 1}.'):]}": (torch.randn(v.shape, generator=g) * 0.02).to(dtype)
                   for k, v in sd.items() if k.startswith(f"encoder.layers.{i - 1}.")}
            b = f"encoder.layers.{i - 1}."
        else:
            src = sd
        out[r + "attn.in_proj_weight"] = torch.cat([src[b + f"self_attn.{x}_proj.weight"] for x in "qkv"])
        out[r + "attn.in_proj_bias"] = torch.cat([src[b + f"self_attn.{x}_proj.bias"] for x in "qkv"])
        for a, o in [("layer_norm1.", "ln_1."), ("layer_norm2.", "ln_2."), ("self_attn.out_proj.", "attn.out_proj."),
                     ("mlp.fc1.", "mlp.c_fc."), ("mlp.fc2.", "mlp.c_proj.")]:
            for kind in ["weight", "bias"]:
                out[r + o + kind] = src[b + a + kind]
    out[p + "text_projection"] = torch.zeros(d, d, dtype=dtype)
    out[p + "logit_scale"] = torch.tensor(4.6, dtype=dtype)
    return out


def check(sd, unet, vae, te, open_clip):
    """diffusers' converters must turn the single-file state dict back into the folder's tensors."""
    ref_u = unet.state_dict()
    got_u = sfu.convert_ldm_unet_checkpoint(dict(sd), dict(unet.config))
    assert set(got_u) == set(ref_u), set(got_u) ^ set(ref_u)
    assert all(torch.equal(got_u[k], ref_u[k]) for k in ref_u), "unet"
    ref_v = vae.state_dict()
    got_v = sfu.convert_ldm_vae_checkpoint(dict(sd), dict(vae.config))
    assert set(got_v) == set(ref_v), set(got_v) ^ set(ref_v)
    assert all(torch.equal(got_v[k].reshape(ref_v[k].shape), ref_v[k]) for k in ref_v), "vae"
    ref_t = {k.removeprefix("text_model."): v for k, v in te.state_dict().items()}
    if open_clip:
        got_t = sfu.convert_open_clip_checkpoint(te, dict(sd))
    else:
        got_t = sfu.convert_ldm_clip_checkpoint(dict(sd))
    got_t = {k.removeprefix("text_model."): v for k, v in got_t.items() if "position_ids" not in k}
    # diffusers converts every resblock; the deeper ones SD 2 does not use are dropped when loading.
    got_t = {k: v for k, v in got_t.items() if not k.startswith(f"encoder.layers.{te.config.num_hidden_layers}.")}
    assert set(got_t) == set(ref_t), set(got_t) ^ set(ref_t)
    assert all(torch.equal(got_t[k], ref_t[k]) for k in ref_t), "text encoder"


def convert_folder(folder, out, dtype):
    unet = UNet2DConditionModel.from_pretrained(os.path.join(folder, "unet"), torch_dtype=dtype)
    vae = AutoencoderKL.from_pretrained(os.path.join(folder, "vae"), torch_dtype=dtype)
    te = CLIPTextModel.from_pretrained(os.path.join(folder, "text_encoder"), torch_dtype=dtype)
    sd = {**unet_original(unet), **vae_original(vae), **clip_original(te)}
    check(sd, unet, vae, te, False)
    save_file({k: v.contiguous() for k, v in sd.items()}, out)
    print(out, len(sd), "tensors; diffusers' converters give back the folder exactly")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--from", dest="source")
    ap.add_argument("--out")
    ap.add_argument("--fp16", action="store_true")
    args = ap.parse_args()
    if args.source:
        return convert_folder(args.source, args.out, torch.float16 if args.fp16 else torch.float32)
    os.makedirs(OUT, exist_ok=True)
    for name, dtype, open_clip in [("sd1-tiny", torch.float32, False), ("sd2-tiny", torch.float16, True)]:
        folder = os.path.join(FIX, name, "model")
        unet = UNet2DConditionModel.from_pretrained(os.path.join(folder, "unet"), torch_dtype=dtype)
        vae = AutoencoderKL.from_pretrained(os.path.join(folder, "vae"), torch_dtype=dtype)
        te = CLIPTextModel.from_pretrained(os.path.join(folder, "text_encoder"), torch_dtype=dtype)
        sd = {}
        sd.update(unet_original(unet))
        sd.update(vae_original(vae))
        sd.update(open_clip_original(te, dtype) if open_clip else clip_original(te))
        check(sd, unet, vae, te, open_clip)
        # What real checkpoints carry besides the networks.
        sd["model_ema.diffusion_modelinput_blocks00weight"] = sd["model.diffusion_model.input_blocks.0.0.weight"].clone()
        sd["model_ema.num_updates"] = torch.tensor(10, dtype=torch.int32)
        sd["betas"] = torch.linspace(1e-4, 2e-2, 1000, dtype=dtype)
        sd["alphas_cumprod"] = torch.cumprod(1 - sd["betas"].float(), 0).to(dtype)
        if not open_clip:
            sd["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(77)[None]
        sd = {k: v.contiguous() for k, v in sd.items()}
        if open_clip:
            torch.save({"state_dict": sd, "global_step": 1234, "epoch": 3}, os.path.join(OUT, name + ".ckpt"))
        else:
            save_file(sd, os.path.join(OUT, name + ".safetensors"))
        print(name, len(sd), "tensors; diffusers' converters give back the folder exactly")


if __name__ == "__main__":
    main()
