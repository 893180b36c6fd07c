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

A contextless encoder cannot bind a colour to its shape (its reconstructions swap the two objects' colours), so
`--leak-loss` keeps the causal encoder and asks for locality instead: a colour, shape or background word swapped
in a caption may change its own embedding and the next word's (the word it describes), no other token's (the
relative squared change elsewhere is the loss). `--foreign-loss` bounds the attention each pixel gives to the
words of another region, so what a swapped word carries reaches no pixel of the other object.
`--effective-guidance G` trains the captioned prediction towards eps_u + (G / 7.5) (eps - eps_u), so that guidance
7.5 acts as guidance G does on the plain model (null-text's unconditional branch then needs to move less).
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


def foreign_mass(maps, pos, reg, masks, valid):
    """Mean over layers and pixels of the attention each pixel gives to supervised words of *other* regions
    (another object's colour or shape word, or the background's, from inside an object): [B]. The token loss
    bounds where a word's mass goes; this bounds what a pixel reads, so a word swapped in one object's phrase
    reaches no pixel of the other object."""
    total = 0
    for a, own in ts.word_attention(maps, pos, reg, masks):  # [B, N, SLOTS] each
        total = total + (a * (1 - own) * valid[:, None, :].float()).sum(-1).mean(-1)
    return total / len(maps)


def captioned_mean(per_row, captioned):
    """The mean of ``per_row`` [B] over the rows that kept their caption (0 when none did)."""
    c = captioned.float()
    return (per_row * c).sum() / c.sum().clamp_min(1)


def word_kinds(tokenizer):
    """Token ids of the world's colour, shape and background words: {kind: [N] int64}."""
    def ids(words):
        return torch.tensor([tokenizer(w).input_ids[1] for w in words])
    return dict(colour=ids(ts.world.COLOURS), shape=ids(ts.world.SHAPES), background=ids(ts.world.BACKGROUNDS))


def swapped_words(ids, pos, valid, kinds, gen):
    """Each captioned row of ``ids`` [B, 77] with one supervised word (a random valid slot of ``pos``)
    swapped for another word of its kind, and [B, 77] the positions whose embedding must not change: all but
    the swapped word and, after a colour word, the word it describes (its shape, or `background`)."""
    out = ids.clone()
    keep = torch.ones(ids.shape, dtype=torch.bool)
    rows = valid.any(1).nonzero().flatten().tolist()
    for b in rows:
        slots = valid[b].nonzero().flatten()
        p = int(pos[b, slots[torch.randint(len(slots), (1,), generator=gen)]])
        token = ids[b, p]
        kind = next(k for k, v in kinds.items() if bool((v == token).any()))
        others = kinds[kind][kinds[kind] != token]
        out[b, p] = others[torch.randint(len(others), (1,), generator=gen)]
        keep[b, p] = False
        if kind != "shape":
            keep[b, p + 1] = False
    return out, keep


def leakage(text_encoder, ids, swapped, keep, rows):
    """Mean over ``rows`` of the relative squared change of the embeddings at the ``keep`` positions when
    ``ids`` become ``swapped``: 0 when a swapped word reaches no token but its own phrase."""
    e, e2 = text_encoder(ids)[0], text_encoder(swapped)[0]  # [B, 77, D]
    k = keep.float()
    rel = (((e - e2) ** 2).sum(-1) * k).sum(1) / (((e ** 2).sum(-1) * k).sum(1)).clamp_min(1e-12)
    return rel[rows].mean() if rows.any() else rel.sum() * 0


GUIDANCE = 7.5  # pivot's default guidance scale


@torch.no_grad()
def calibrated_target(unet, text_encoder, z0, t, noise, acp, empty, captioned, scale):
    """What a captioned row's prediction regresses to so that guidance w acts as w * ``scale`` does on a plain
    model: eps_u + scale (eps - eps_u), with eps_u the model's own (detached) prediction under the empty prompt;
    rows without a caption keep ``noise``. Its minimiser is (1 - scale) eps_u + scale E[eps | x_t, c]."""
    zt = ts.noised(z0, t, noise, acp)
    context = text_encoder(empty[None].expand(z0.shape[0], -1).to(z0.device))[0]
    eps_u = unet(zt, t, context).sample.float()
    target = eps_u + scale * (noise - eps_u)
    return torch.where(captioned.view(-1, 1, 1, 1), target, noise)


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
    ap.add_argument(
        "--foreign-loss", type=float, default=0.0,
        help="weight of the attention mass each pixel gives to another region's colour, shape or background word")
    ap.add_argument(
        "--leak-loss", type=float, default=0.0,
        help="weight of the phrase-locality loss: swapping a colour, shape or background word may change that "
        "word's embedding and the next word's (the word it describes), no other token's")
    ap.add_argument(
        "--effective-guidance", type=float, default=0.0,
        help="train the captioned prediction towards eps_u + (G / 7.5) (eps - eps_u), so that guidance 7.5 acts "
        "as guidance G would on the plain model (0: off)")
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
    kinds = word_kinds(tokenizer)
    progress = ts.Progress("finetune", args.steps)
    seen = []
    for step in range(args.steps):
        ts.set_lr(opt, ts.lr_at(step, args.steps, args.lr, warmup=50))
        z0, ids, t, noise, words = ts.sample_batch(data, empty, args, gen)
        pos, reg, masks, valid = words
        recorder.maps.clear()
        target = None
        if args.effective_guidance > 0:
            target = calibrated_target(unet, text_encoder, z0, t, noise, acp, empty, valid.any(1),
                                       args.effective_guidance / GUIDANCE)
        loss, token, _ = ts.diffusion_loss(unet, text_encoder, z0, ids, t, noise, acp, args.min_snr, recorder, words,
                                           target)
        maps = recorder.last  # this pass's cross-attention maps, kept by diffusion_loss
        captioned = valid.any(1)
        func = captioned_mean(function_mass(maps, ids, pos), captioned)
        total = loss + args.token_loss * token + args.function_loss * func
        foreign, leak = torch.zeros(()), torch.zeros(())
        if args.foreign_loss > 0:
            foreign = captioned_mean(foreign_mass(maps, pos, reg, masks.float(), valid), captioned)
            total = total + args.foreign_loss * foreign
        if args.leak_loss > 0:
            swapped, keep = swapped_words(ids.cpu(), pos.cpu(), valid.cpu(), kinds, gen)
            leak = leakage(text_encoder, ids, swapped.to(ids.device), keep.to(ids.device), captioned)
            total = total + args.leak_loss * leak
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema.update()
        seen.append((token.item(), func.item(), leak.item(), foreign.item()))
        tk, fn, lk, fg = np.mean(seen[-50:], axis=0)
        progress.update(step, loss.item(), f" token {tk:.4f} function mass {fn:.3f} leak {lk:.4f} foreign {fg:.4f}")
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
    tk, fn, lk, fg = np.mean(seen[-100:], axis=0)
    with open(os.path.join(args.out, "README.md"), "a") as f:
        f.write(f"""
## Fine-tuned so that function words carry nothing

`python3 -m scripts.demo.finetune_shapes --model <the model above> --out <this folder> --steps {args.steps}
--lr {args.lr} --token-loss {args.token_loss} --function-loss {args.function_loss} --leak-loss {args.leak_loss}
--foreign-loss {args.foreign_loss} --effective-guidance {args.effective_guidance}`
{"--contextless-text " if args.contextless_text else ""}({(time.time() - t0) / 60:.1f}
minutes on cpu with {args.threads} thread(s)): {args.steps} more steps of the UNet and the text encoder at batch
{args.batch} from the weights above, the VAE kept, adding {args.function_loss} x the cross-attention mass on tokens
other than `<|startoftext|>` and the colour, shape and background words, and {args.leak_loss} x the relative
change of the embeddings outside a swapped word's phrase, and {args.foreign_loss} x the attention pixels give to
another region's words. Last 100 steps: token loss {tk:.4f}, function-word mass {fn:.3f}, leakage {lk:.4f},
foreign mass {fg:.4f}. Self-check colour accuracy {hits}/8.
""")
    ts.log(f"wrote {args.out} in {ts.fmt_time(time.time() - t0)}; self-check {hits}/8")
    ts.log("\n".join(rows))


if __name__ == "__main__":
    main()
