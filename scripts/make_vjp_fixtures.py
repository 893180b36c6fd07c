#!/usr/bin/env python3
"""Generate torch.autograd fixtures for pivot's vector-Jacobian products (gradients w.r.t. inputs).

For each case folder made by ``scripts/make_fixtures.py`` (``Tests/PivotModelsTests/Fixtures/<case>/``),
loads the stored model in fp32 and writes:

* ``unet-vjp.in.safetensors``: ``sample``, ``timestep``, ``encoder_hidden_states`` (the UNet parity
  inputs) and ``grad_out`` (a fixed random cotangent of the output);
  ``unet-vjp.out.safetensors``: ``out``, ``grad_encoder_hidden_states``, ``grad_sample``
  (all weights frozen: ``requires_grad_(False)``).
* ``text-encoder-vjp.in.safetensors``: ``input_ids``, ``grad_out`` [B, 77, D];
  ``text-encoder-vjp.out.safetensors``: ``last_hidden_state``, ``grad_inputs_embeds`` (the gradient at the
  token embeddings, which is also the gradient at token + position embeddings).

Run from the package root after make_fixtures.py:  python3 scripts/make_vjp_fixtures.py
"""
import os
import sys
import warnings

import torch

torch.set_num_threads(2)
warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

from diffusers import UNet2DConditionModel  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import CLIPTextModel  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Tests/PivotModelsTests/Fixtures")
CASES = ["sd1-tiny", "sd2-tiny", "sd1-bf16"]


def save(path, tensors):
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, path)


def unet_case(folder, seed):
    unet = UNet2DConditionModel.from_pretrained(os.path.join(folder, "model/unet"), torch_dtype=torch.float32)
    unet.requires_grad_(False).eval()
    inp = load_file(os.path.join(folder, "unet.in.safetensors"))
    sample = inp["sample"].clone().requires_grad_(True)
    ctx = inp["encoder_hidden_states"].clone().requires_grad_(True)
    out = unet(sample, inp["timestep"], encoder_hidden_states=ctx).sample
    g = torch.Generator().manual_seed(seed)
    grad_out = torch.randn(out.shape, generator=g)
    out.backward(grad_out)
    save(os.path.join(folder, "unet-vjp.in.safetensors"),
         {"sample": inp["sample"], "timestep": inp["timestep"], "encoder_hidden_states": inp["encoder_hidden_states"],
          "grad_out": grad_out})
    save(os.path.join(folder, "unet-vjp.out.safetensors"),
         {"out": out, "grad_encoder_hidden_states": ctx.grad, "grad_sample": sample.grad})
    return out.abs().max().item(), ctx.grad.abs().max().item(), sample.grad.abs().max().item()


def text_case(folder, seed):
    te = CLIPTextModel.from_pretrained(os.path.join(folder, "model/text_encoder"), torch_dtype=torch.float32)
    te.requires_grad_(False).eval()
    inp = load_file(os.path.join(folder, "text-encoder.in.safetensors"))
    captured = {}

    def hook(_module, _args, output):
        output = output.detach().requires_grad_(True)
        output.retain_grad()
        captured["embeds"] = output
        return output

    handle = te.embeddings.token_embedding.register_forward_hook(hook)
    out = te(inp["input_ids"]).last_hidden_state
    handle.remove()
    g = torch.Generator().manual_seed(seed)
    grad_out = torch.randn(out.shape, generator=g)
    out.backward(grad_out)
    save(os.path.join(folder, "text-encoder-vjp.in.safetensors"), {"input_ids": inp["input_ids"], "grad_out": grad_out})
    save(os.path.join(folder, "text-encoder-vjp.out.safetensors"),
         {"last_hidden_state": out, "grad_inputs_embeds": captured["embeds"].grad})
    return out.abs().max().item(), captured["embeds"].grad.abs().max().item()


def main():
    for i, case in enumerate(CASES):
        folder = os.path.join(ROOT, case)
        if not os.path.isdir(folder):
            sys.exit(f"{folder}: run scripts/make_fixtures.py first")
        u = unet_case(folder, 100 + i)
        t = text_case(folder, 200 + i)
        print(f"{case}: unet max|out| {u[0]:.4g} max|grad ctx| {u[1]:.4g} max|grad sample| {u[2]:.4g}; "
              f"text max|out| {t[0]:.4g} max|grad embeds| {t[1]:.4g}")


if __name__ == "__main__":
    main()
