#!/usr/bin/env python3
"""Fine-tune a trained shapes model so that the words a prompt does not change carry nothing of the words it does.

Why. Prompt-to-Prompt swaps one word and keeps the cross-attention maps; every later token's *value* still
changes, because CLIP's text encoder is causal. In a model trained by `train_shapes` the function words
(`a`, `and`, `on`, `</s>` and the padding) draw much of the attention, on the objects, and carry the
description of the object before them (their embeddings move by ~100% when that object's colour word
changes), so recolouring one object repaints the other. In Stable Diffusion most of that attention goes to
`<|startoftext|>`, which no prompt changes. This fine-tune adds that property as a loss: the cross-attention
mass on tokens other than `<|startoftext|>` and the colour, shape and background words (mean over pixels
and layers) is pushed to zero, beside the denoising loss and the token loss of `train_shapes`.

The VAE is kept (its latents are already balanced: `scaling_factor` 1); the UNet and the text encoder train
from the model's weights, with EMA; the result is written like `train_shapes` writes a model (fp16
safetensors), with the README of the source model and a section on this fine-tune.

    python3 -m scripts.demo.finetune_shapes --model samples/models/shapes2 --out /tmp/shapes3 --steps 1500

`--contextless-text` goes further: it zeroes and freezes the text encoder's attention output projections, so
every token's embedding depends on that token and its position only and swapping a word changes that one
embedding; the UNet then binds a colour to its shape through positions (and the token loss). Use
`--function-loss 0` with it (no function word carries anything then):

    python3 -m scripts.demo.finetune_shapes --model samples/models/shapes2 --out /tmp/shapes4 --steps 1500 \
        --function-loss 0 --contextless-text
"""
import argparse
import os
import shutil
import time

import numpy as np
import torch

from scripts.demo import train_shapes as ts


def function_mass(maps, ids, content_pos):
    """Mean over layers, pixels and captions of the attention mass on tokens that are neither
    `<|startoftext|>` nor a supervised word: [B] per caption, averaged over layers."""
    bsz = ids.shape[0]
    keep = torch.zeros(bsz, ids.shape[1], dtype=torch.bool, device=ids.device)
    keep[:, 0] = True
    rows = torch.arange(bsz, device=ids.device)[:, None].expand_as(content_pos)
    ok = content_pos >= 0
    keep[rows[ok], content_pos[ok]] = True
    total = 0
    for m in maps:  # [B, N, 77]
        total = total + (m * (~keep)[:, None, :].float()).sum(-1).mean(-1)
    return total / len(maps)


def make_contextless(text_encoder):
    """Zeroes and freezes every self-attention output projection of a CLIP text encoder: the residual
    stream then carries each token's own embedding and position through the MLPs only, so a token's output
    depends on nothing else in the prompt (the architecture, and pivot's loader, are unchanged)."""
    model = getattr(text_encoder, "text_model", text_encoder)  # transformers 4 nests it, 5 does not
    for layer in model.encoder.layers:
        proj = layer.self_attn.out_proj
        with torch.no_grad():
            proj.weight.zero_()
            proj.bias.zero_()
        proj.requires_grad_(False)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a model folder written by train_shapes")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--scenes", type=int, default=8000)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--token-loss", type=float, default=0.05)
    ap.add_argument("--function-loss", type=float, default=0.1)
    ap.add_argument("--caption-dropout", type=float, default=0.1)
    ap.add_argument("--min-snr", type=float, default=5.0)
    ap.add_argument("--ema", type=float, default=0.995)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--contextless-text", action="store_true",
        help="zero and freeze the text encoder's attention output projections, so each token's embedding "
        "depends on that token and its position only: swapping one word then changes one embedding")
    args = ap.parse_args()
    args.device = "cpu"
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    t0 = time.time()
    vae = AutoencoderKL.from_pretrained(args.model, subfolder="vae", torch_dtype=torch.float32).eval().requires_grad_(False)
    text_encoder = CLIPTextModel.from_pretrained(args.model, subfolder="text_encoder", torch_dtype=torch.float32)
    unet = UNet2DConditionModel.from_pretrained(args.model, subfolder="unet", torch_dtype=torch.float32)
    if args.contextless_text:
        make_contextless(text_encoder)
    tokenizer = ts.load_tokenizer()
    with torch.no_grad():
        train, _ = ts.encode_scenes(vae, np.arange(args.scenes), args.device, tokenizer)
    # the scale-1 VAE already encodes balanced latents; its sample mean is kept, not re-folded
    data = dict(train=train)
    unet.train()
    text_encoder.train()
    recorder = ts.CrossAttentionRecorder()
    recorder.install(unet)
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(ts.param_groups(unet, text_encoder), lr=args.lr)
    ema = ts.EMA(params, args.ema)
    gen = torch.Generator().manual_seed(args.seed + 55)
    acp = ts.alphas_cumprod()
    empty = ts.tokenize(tokenizer, [""])[0]
    progress = ts.Progress("finetune", args.steps)
    seen = []
    for step in range(args.steps):
        ts.set_lr(opt, ts.lr_at(step, args.steps, args.lr, warmup=50))
        z0, ids, t, noise, words = ts.sample_batch(data, empty, args, gen)
        pos, reg, masks, valid = words
        recorder.maps.clear()
        loss, token, _ = ts.diffusion_loss(unet, text_encoder, z0, ids, t, noise, acp, args.min_snr, recorder, words)
        maps = recorder.last  # this pass's cross-attention maps, kept by diffusion_loss
        captioned = valid.any(1)
        fm = function_mass(maps, ids, pos)
        func = (fm * captioned.float()).sum() / captioned.float().sum().clamp_min(1)
        total = loss + args.token_loss * token + args.function_loss * func
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema.update()
        seen.append((token.item(), func.item()))
        tk, fn = np.mean(seen[-50:], axis=0)
        progress.update(step, loss.item(), f" token {tk:.4f} function mass {fn:.3f}")
    ema.copy_to_params()
    recorder.last, recorder.maps = [], []
    from diffusers.models.attention_processor import AttnProcessor2_0
    unet.set_attn_processor(AttnProcessor2_0())
    unet.eval()
    text_encoder.eval()
    tmp = args.out.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(args.model, tmp)
    ts.save_networks(tmp, dict(text_encoder=text_encoder, unet=unet))
    ts.publish(tmp, args.out)
    hits, rows, grid = ts.self_check(args.out, 8, args.seed + 44)
    grid.save(os.path.join(args.out, "self-check.png"))
    tk, fn = np.mean(seen[-100:], axis=0)
    with open(os.path.join(args.out, "README.md"), "a") as f:
        f.write(f"""
## Fine-tuned so that function words carry nothing

`python3 -m scripts.demo.finetune_shapes --model <the model above> --out <this folder> --steps {args.steps}
--lr {args.lr} --token-loss {args.token_loss} --function-loss {args.function_loss}` ({(time.time() - t0) / 60:.1f}
minutes on cpu with {args.threads} thread(s)): {args.steps} more steps of the UNet and the text encoder at batch
{args.batch} from the weights above, the VAE kept, adding {args.function_loss} x the cross-attention mass on tokens
other than `<|startoftext|>` and the colour, shape and background words. Last 100 steps: token loss {tk:.4f},
function-word mass {fn:.3f}. Self-check colour accuracy {hits}/8.
""")
    ts.log(f"wrote {args.out} in {ts.fmt_time(time.time() - t0)}; self-check {hits}/8")
    ts.log("\n".join(rows))


if __name__ == "__main__":
    main()
