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
`--own-loss` lifts each pixel's attention to its own region's words above `--own-mass`, so that P2P's
reweighting (which scales that attention) has something to scale. `--reweight-loss` gives the weight a meaning:
with a colour word's attention scaled by 0.5 or 2 the model denoises towards the scene whose object is less or
more saturated (`shapes_losses.reweighted_scene`). `--locality-loss` asks the same of the noise prediction: a
word swapped in a caption may change the prediction on its own region only (the leak loss's embeddings are a
proxy for it). The losses are those of `shapes_losses.py`, which `train_shapes` can also use from the first
step. `--pair-loss` trains Prompt-to-Prompt's edit itself (`shapes_pairs.py`): the renderer's ground truth of a
word swap, denoised with the source's attention injected as pivot injects it; `--pair-consistency` asks that
edit's guided prediction (guidance 7.5, the unconditional branch under the empty prompt) not to change outside
the edited object.
"""
import argparse
import os
import shutil
import time

import numpy as np
import torch

from scripts.demo import shapes_losses as losses
from scripts.demo import shapes_model
from scripts.demo import shapes_pairs
from scripts.demo import train_shapes as ts
from scripts.demo.shapes_export import publish, save_networks, self_check
from scripts.demo.shapes_training import EMA, Progress, fmt_time, log, lr_at, param_groups, set_lr


# Scenes of the reweighting set: seeds from here up (beside the training set [0, scenes), never benchmarked).
REWEIGHT_SEED_BASE = 20_000_000


@torch.no_grad()
def encode_reweighted(vae, seeds, tokenizer, batch=64):
    """The reweighting set (`shapes_losses.reweighted_scene` of each seed): latent means [N, 4, 16, 16] of the
    variants, token ids [N, 77], equalizers [N, 77] (the weight at the colour word, 1 elsewhere)."""
    latents, ids, eq = [], [], []
    for i in range(0, len(seeds), batch):
        rows = [losses.reweighted_scene(s) for s in seeds[i:i + batch]]
        latents.append(vae.encode(shapes_model.images_to_tensor([r[1] for r in rows])).latent_dist.mean.float())
        ids.append(shapes_model.tokenize(tokenizer, [r[0] for r in rows]))
        e = torch.ones(len(rows), 77)
        for j, (_, _, pos, weight) in enumerate(rows):
            e[j, pos] = weight
        eq.append(e)
    return dict(latents=torch.cat(latents), ids=torch.cat(ids), equalizer=torch.cat(eq))


def reweight_loss(unet, text_encoder, recorder, rw, args, acp, gen):
    """The denoising loss of ``args.reweight_batch`` reweighting examples, their equalizer installed."""
    idx = torch.randint(rw["latents"].shape[0], (args.reweight_batch,), generator=gen)
    z0 = rw["latents"][idx]
    t = torch.randint(0, 1000, (len(idx),), generator=gen)
    noise = torch.randn(z0.shape, generator=gen)
    recorder.equalizer = rw["equalizer"][idx]
    try:
        loss, *_ = ts.diffusion_loss(unet, text_encoder, z0, rw["ids"][idx], t, noise, acp, args.min_snr, recorder)
    finally:
        recorder.equalizer = None
    return loss


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a model folder written by train_shapes")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--scenes", type=int, default=8000)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--token-loss", type=float, default=0.05)
    losses.add_arguments(ap, function_loss=0.1)
    ap.add_argument(
        "--effective-guidance", type=float, default=0.0,
        help="train the captioned prediction towards eps_u + (G / 7.5) (eps - eps_u), so that guidance 7.5 acts "
        "as guidance G would on the plain model (0: off)")
    ap.add_argument(
        "--reweight-loss", type=float, default=0.0,
        help="weight of the reweighting loss: with a colour word's attention scaled by 0.5 or 2 (P2P's "
        "equalizer), denoise towards the scene with that object's colour less or more saturated")
    ap.add_argument("--reweight-scenes", type=int, default=2000, help="scenes of the reweighting set")
    ap.add_argument("--reweight-batch", type=int, default=8, help="reweighting examples per step")
    shapes_pairs.add_arguments(ap)
    ap.add_argument("--caption-dropout", type=float, default=0.1)
    ap.add_argument("--min-snr", type=float, default=5.0)
    ap.add_argument("--ema", type=float, default=0.995)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--contextless-text", action="store_true", help=shapes_model.CONTEXTLESS_HELP)
    args = ap.parse_args()
    shapes_pairs.check_arguments(args, args.scenes)
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
        shapes_model.make_contextless(text_encoder)
    tokenizer = shapes_model.load_tokenizer()
    with torch.no_grad():
        train, _ = shapes_model.encode_scenes(vae, np.arange(args.scenes), args.device, tokenizer)
        rw = (encode_reweighted(vae, REWEIGHT_SEED_BASE + np.arange(args.reweight_scenes), tokenizer)
              if args.reweight_loss > 0 else None)
        pairs = (shapes_pairs.encode_pairs(vae, train, args.pair_scenes, tokenizer)
                 if shapes_pairs.active(args) else None)
    # the scale-1 VAE already encodes balanced latents; its sample mean is kept, not re-folded
    data = dict(train=train)
    unet.train()
    text_encoder.train()
    recorder = losses.CrossAttentionRecorder(self_attention=args.self_locality_loss > 0)
    recorder.install(unet)
    injector = shapes_pairs.AttentionInjector(recorder)
    if pairs is not None:
        injector.install(unet)
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(param_groups(unet, text_encoder), lr=args.lr)
    ema = EMA(params, args.ema)
    gen = torch.Generator().manual_seed(args.seed + 55)
    acp = shapes_model.alphas_cumprod()
    empty = shapes_model.tokenize(tokenizer, [""])[0]
    word_losses = losses.WordLosses(args, tokenizer)
    progress = Progress("finetune", args.steps)
    seen = []
    for step in range(args.steps):
        set_lr(opt, lr_at(step, args.steps, args.lr, warmup=50))
        z0, ids, t, noise, words = ts.sample_batch(data, empty, args, gen)
        recorder.maps.clear()
        target = None
        if args.effective_guidance > 0:
            target = losses.calibrated_target(unet, text_encoder, z0, t, noise, acp, empty, words[3].any(1),
                                              args.effective_guidance / losses.GUIDANCE)
        loss, token, _, denoised = ts.diffusion_loss(unet, text_encoder, z0, ids, t, noise, acp, args.min_snr,
                                                     recorder, words, target)
        extra, values = word_losses(recorder.last, text_encoder, ids, t, words, gen, unet, denoised,
                                    recorder.self_last)
        total = loss + args.token_loss * token + extra
        rwl = torch.zeros(())
        if rw is not None:
            rwl = reweight_loss(unet, text_encoder, recorder, rw, args, acp, gen)
            total = total + args.reweight_loss * rwl
        pv = {}
        if pairs is not None:
            pair_total, pv = shapes_pairs.terms(unet, text_encoder, injector, pairs, args, acp, gen, empty)
            total = total + pair_total
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema.update()
        seen.append((token.item(), values["function"], values["leak"], values["foreign"], values["own"], rwl.item(),
                     values["locality"], pv.get("pair", 0.0), pv.get("consistency", 0.0), values["function_leak"],
                     pv.get("invariance", 0.0)))
        tk, fn, lk, fg, ow, rl, lc, pr, cs, fl, iv = np.mean(seen[-50:], axis=0)
        progress.update(step, loss.item(), f" token {tk:.4f} function mass {fn:.3f} leak {lk:.4f} function leak "
                        f"{fl:.4f} foreign {fg:.4f} "
                        f"own {ow:.4f} reweight {rl:.5f} locality {lc:.5f} pair {pr:.5f} consistency {cs:.5f} "
                        f"invariance {iv:.5f}")
    ema.copy_to_params()
    recorder.last, recorder.maps = [], []
    from diffusers.models.attention_processor import AttnProcessor2_0
    unet.set_attn_processor(AttnProcessor2_0())
    unet.eval()
    text_encoder.eval()
    tmp = args.out.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(args.model, tmp)
    save_networks(tmp, dict(text_encoder=text_encoder, unet=unet))
    publish(tmp, args.out)
    hits, rows, grid = self_check(args.out, 8, args.seed + 44)
    grid.save(os.path.join(args.out, "self-check.png"))
    tk, fn, lk, fg, ow, rl, lc, pr, cs, _, iv = np.mean(seen[-100:], axis=0)
    with open(os.path.join(args.out, "README.md"), "a") as f:
        f.write(f"""
## Fine-tuned so that function words carry nothing

`python3 -m scripts.demo.finetune_shapes --model <the model above> --out <this folder> --steps {args.steps}
--lr {args.lr} --token-loss {args.token_loss} --function-loss {args.function_loss} --leak-loss {args.leak_loss}
--foreign-loss {args.foreign_loss} --own-loss {args.own_loss} --own-mass {args.own_mass} --own-max-t {args.own_max_t}
--effective-guidance {args.effective_guidance} --reweight-loss {args.reweight_loss}
--locality-loss {args.locality_loss} --locality-rows {args.locality_rows}
--self-locality-loss {args.self_locality_loss} --pair-loss {args.pair_loss}
--pair-consistency {args.pair_consistency} --pair-invariance {args.pair_invariance} --pair-scenes {args.pair_scenes} --pair-batch {args.pair_batch}
--function-leak-loss {args.function_leak_loss}{" --pair-source" if args.pair_source else ""}`
{"--contextless-text " if args.contextless_text else ""}({(time.time() - t0) / 60:.1f}
minutes on cpu with {args.threads} thread(s)): {args.steps} more steps of the UNet and the text encoder at batch
{args.batch} from the weights above, the VAE kept, adding {args.function_loss} x the cross-attention mass on tokens
other than `<|startoftext|>` and the colour, shape and background words, and {args.leak_loss} x the relative
change of the embeddings outside a swapped word's phrase, and {args.foreign_loss} x the attention pixels give to
another region's words, and {args.own_loss} x the shortfall of a pixel's attention to its own words below
{args.own_mass}, and {args.locality_loss} x the change of the noise prediction outside a swapped word's region
({args.locality_rows} rows a step), and {args.pair_loss} x the Prompt-to-Prompt pair loss ({args.pair_batch} of
{args.pair_scenes} edit pairs a step), and {args.pair_consistency} x the pair consistency loss (the guided
prediction's change outside the edited object), and {args.pair_invariance} x the pair invariance loss (the
captioned prediction's change outside the edited object for a perfect edit). Last 100 steps: token loss {tk:.4f}, function-word mass {fn:.3f},
leakage {lk:.4f}, foreign mass {fg:.4f}, own-word shortfall {ow:.4f}, locality {lc:.5f}, pair {pr:.5f},
consistency {cs:.5f}, invariance {iv:.5f}, reweighting loss {rl:.5f}
(x {args.reweight_loss}). Self-check colour accuracy {hits}/8.
""")
    log(f"wrote {args.out} in {fmt_time(time.time() - t0)}; self-check {hits}/8")
    log("\n".join(rows))


if __name__ == "__main__":
    main()
