#!/usr/bin/env python3
"""Train the `shapes` demo model: Stable Diffusion 1.x's three networks, from scratch, on the shapes world.

No Stable Diffusion weights can ship with pivot, so this script makes a small model of the same
architecture that really edits with Prompt-to-Prompt: trained on `scripts/demo/shapes_world.py` scenes with
one or two objects ("a red circle and a blue square on a white background"), with a token loss that puts
each colour and shape word's cross-attention on its own object, so that `pivot edit ... --source "a red
circle and a blue square on a white background" --target "a green circle and a blue square on a white
background"` recolours the circle and keeps the square and the background.

Run from the package root (the full run; about 75 minutes on 2 idle CPU cores, see "Timing" below):

    python3 -m scripts.demo.train_shapes                      # writes samples/models/shapes
    python3 -m scripts.demo.train_shapes --resume             # continue a killed run from its checkpoint
    python3 -m scripts.demo.train_shapes --quick --out /tmp/shapes-quick    # ~1 minute smoke test
    python3 -m scripts.demo.train_shapes --device cuda --batch 64           # on a GPU

Architecture (the SD 1.x classes and block types that pivot loads; fixed, see `VAE_CONFIG`...):

* VAE `AutoencoderKL`: 4 levels `[32, 64, 64, 64]`, 1 layer per block, 16 groups (`--vae-groups`), 4 latent channels;
  128x128 images -> 4x16x16 latents (factor 8, as SD's).  ~1.25 M parameters.
* Text encoder `CLIPTextModel`: the real CLIP BPE tokenizer (vocabulary 49408, built from pivot's own copy
  of CLIP's merges, `Sources/PivotText/Resources/clip-merges.txt`, as `make_tokenizer_fixtures.py` does), hidden 64, 3 layers, 4 heads, MLP 256, 77 positions, quick_gelu.
  ~3.3 M parameters (3.2 M of them the token embedding).
* UNet `UNet2DConditionModel`: sample 16, `[64, 128]`, CrossAttnDownBlock2D x2 / CrossAttnUpBlock2D x2
  (cross-attention at 16x16 and 8x8, and in the mid block), 1 layer per block, 4 heads,
  cross-attention dim 64, 32 groups (`--unet-groups`).  ~4.2 M parameters.
* Scheduler: SD 1.5's `DDIMScheduler` config (scaled-linear betas 0.00085..0.012, 1000 steps).

Training (all seeds fixed by `--seed`; deterministic on the CPU, also across `--resume`):

1. VAE: L1 + L2 reconstruction + 1e-6 KL (posterior samples) on scenes rendered on the fly, batch 8,
   AdamW 1e-3 with warm-up and cosine decay; the first 40% of the steps on random 32x32 crops (~10x
   cheaper than whole scenes; the VAE is convolutional), the next 45% on 64x64 crops and the last 15% on
   whole scenes: the VAE's mid block is a self-attention over the whole latent, and trained on crops
   alone (the first model, 90% on 32x32) it plateaued at ~21.5 dB on whole scenes.  PSNR is measured on
   held-out whole scenes (every 1/8 of the steps on 16, at the end on `--heldout`).  Then
   each latent channel is normalised over the training set (`balance_channels`; folded into the
   exported VAE, whose ``scaling_factor`` is then 1).
2. UNet + text encoder, VAE frozen: `--scenes` scenes are encoded once (latent means, channels normalised), with
   their captions' token ids, the positions of their colour, shape and background words and the
   renderer's coverage of each object and of the background at 16x16; epsilon-prediction DDPM loss on
   SD's scaled-linear schedule with Min-SNR-5 weighting (diffusers' `--snr_gamma 5`; `--min-snr 0` for
   the plain MSE), AdamW 5e-4 (warm-up, cosine), batch 32, gradient clipping 1, 10% of the captions
   replaced by "" (for classifier-free guidance), EMA of the weights (decay 0.995 with warm-up; the EMA
   weights are exported).  Plus `--token-loss` (0.1) x the token loss of TokenCompose (Wang et al.,
   "TokenCompose: Text-to-Image Diffusion with Token-level Supervision", CVPR 2024; L_token only, no
   pixel term): in each cross-attention layer (`CrossAttentionRecorder` keeps the probabilities,
   averaged over heads), for each supervised word, (1 - the share of its attention mass inside its
   region)^2, averaged over words and layers.  Without it the words of a causal text encoder whose
   captions always come in one order attend to the background (the first model's failure); two-object
   scenes listed in either order make the binding of a word to its object necessary, and the token loss
   makes it visible to the cross-attention P2P edits.  Every 1/8 of the steps the held-out denoising
   loss and the share of attention inside the objects are printed, every 1/4 the colour accuracy of 8
   generated check captions.  The word losses of `shapes_losses.py` (`--function-loss`, `--foreign-loss`,
   `--own-loss`, `--leak-loss`, `--locality-loss`, `--self-locality-loss`) and the Prompt-to-Prompt pair
   loss of `shapes_pairs.py` (`--pair-loss`: the first `--pair-scenes` training scenes with one word swapped,
   the renderer's ground truth denoised under P2P's attention injection; `--pair-consistency`: that edit's
   guided prediction may not change outside the edited object; `--pair-invariance`: the captioned
   prediction of the ground truth, noised like the source, may not either) are off by default, as
   `finetune_shapes.py` uses them; given here, they join from the first step, or from UNet step
   `--losses-from` (with them from the first step the colours were not learnt in a 2-hour run).
   `--vae-from MODEL` takes a trained model's VAE instead of phase 1, to compare UNet recipes in less time.
   `--two-object-share P` draws the training batches so that a share P of their scenes have two objects
   (the world makes 0.6): a colour is bound to its shape only in those.

The pieces live beside this file: `shapes_model.py` (configs, tokenizer, scenes as tensors),
`shapes_training.py` (logging, schedule, EMA, checkpoints), `shapes_vae.py` (phase 1), `shapes_losses.py`
(the attention and text losses) and `shapes_export.py` (the folder and its self-check).

Scene seeds: the UNet set is [0, --scenes), the VAE stream [10^7, 10^7 + steps x batch), held-out
scenes from 9 x 10^8; seeds in [10^6, 10^7) are never trained on (`bench_quality_shapes.py` and
`bench_p2p_shapes.py` use them).

At the end the folder is written (fp16 safetensors, diffusers layout, `README.md`, `self-check.png`)
and a self-check generates 8 captions with diffusers' `StableDiffusionPipeline` (DDIM, 25 steps,
guidance 7.5) and reports whether the objects' colours match the caption.  A checkpoint goes
to `<out>.partial/` every `--checkpoint-minutes` (~120 MB; deleted when the folder is written);
`--resume` continues from it.

Timing, measured on the 2-core development machine (AMD EPYC Zen 4), `--threads 2`:

* VAE, batch 8: ~10 steps/s on 32x32 crops, ~4.6 steps/s on 64x64 crops, ~1.1 steps/s on whole scenes.
* Encoding: ~30 scenes/s (128x128).
* UNet + text encoder, batch 32 with the token loss: ~0.75 steps/s.

The defaults (VAE 6000 steps; 8000 scenes; UNet 2500 steps) therefore take about 15 + 5 (encoding) + 55
minutes = ~75 minutes.  With one thread the rates are ~0.65x.  When other processes keep the cores busy,
use `--threads 1`: torch's 2-thread pool was ~10x slower than one thread on a loaded 2-core machine.
"""

import argparse
import contextlib
import math
import os
import time

# quiet the libraries (set before they are imported)
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from scripts import REPO_ROOT  # noqa: E402
from scripts.demo import shapes_losses as losses  # noqa: E402
from scripts.demo import shapes_pairs  # noqa: E402
from scripts.demo import shapes_readme  # noqa: E402
from scripts.demo import shapes_world as world  # noqa: E402
from scripts.demo.shapes_export import export, score_colours, self_check  # noqa: E402
from scripts.demo.shapes_losses import CrossAttentionRecorder, WordLosses, noised, token_inside  # noqa: E402
from scripts.demo.shapes_model import (  # noqa: E402
    CHECK_CAPTIONS, CONTEXTLESS_HELP, HELDOUT_SEED_BASE, LATENT_SIDE, SCHEDULER_CONFIG, UNET_CONFIG, VAE_CONFIG,
    alphas_cumprod, build_models, load_tokenizer, make_contextless, tokenize)
from scripts.demo.shapes_training import (  # noqa: E402
    EMA, Checkpoint, Progress, fmt_time, folder_size, log, lr_at, param_count, param_groups, set_lr)
from scripts.demo.shapes_vae import (  # noqa: E402
    balance, balance_channels, prepare_latents, train_vae, unbalance, vae_psnr)

ROOT = REPO_ROOT

DEFAULTS = dict(vae_steps=6000, vae_batch=8, unet_steps=3500, batch=32, scenes=8000, heldout=64)
QUICK = dict(vae_steps=24, vae_batch=8, unet_steps=24, batch=8, scenes=128, heldout=8)


# --------------------------------------------------------------------------- phase 2: UNet + text encoder

def diffusion_loss(unet, text_encoder, z0, ids, t, noise, acp, snr_gamma=0.0, recorder=None, words=None,
                   target=None):
    """Epsilon-prediction MSE (with ``snr_gamma`` > 0 each sample weighted min(SNR, gamma) / SNR, Min-SNR),
    and with ``words`` = (pos, reg, masks, valid) the token loss: mean over the supervised words and the
    cross-attention layers of (1 - share of the word's attention inside its region)^2, as TokenCompose's
    L_token (Wang et al., CVPR 2024).  ``target`` replaces ``noise`` as what the prediction regresses to.
    Returns (diffusion loss, token loss or None, inside shares or None, the pass as a `shapes_losses.Denoised`)."""
    zt = noised(z0, t, noise, acp)
    context = text_encoder(ids)[0]
    if recorder is not None:
        recorder.maps.clear()
        recorder.self_maps.clear()
        recorder.recording = words is not None
    pred = unet(zt, t, context).sample
    per_sample = losses.min_snr_mse(pred, noise if target is None else target, t, acp, snr_gamma)
    token, inside = None, None
    if words is not None:
        pos, reg, masks, valid = words
        inside = token_inside(recorder.maps, pos, reg, masks.float())  # [layers, B, SLOTS]
        recorder.sides = [int(round(math.sqrt(m.shape[1]))) for m in recorder.maps]
        token = losses.token_loss(inside, valid)
        recorder.last = list(recorder.maps)  # for the word losses of the same pass
        recorder.self_last = list(recorder.self_maps)
        recorder.maps.clear()
        recorder.self_maps.clear()
        recorder.recording = False
    return per_sample.mean(), token, inside, losses.Denoised(zt, context, pred)


def scene_weights(train, two_share):
    """Drawing weights of the training scenes [N] such that scenes with two objects make up ``two_share`` of
    the draws and one-object scenes the rest, each scene of a kind alike; None (uniform draws, the world's own
    mix) when ``two_share`` is None."""
    if two_share is None:
        return None
    two = ((train["pos"] >= 0) & (train["reg"] == 1)).any(1)
    n2 = int(two.sum())
    n1 = two.numel() - n2
    if n1 == 0 or n2 == 0:
        raise SystemExit(f"--two-object-share needs scenes of both kinds: {n1} with one object, {n2} with two")
    return torch.where(two, two_share / n2, (1 - two_share) / n1).double()


def sample_batch(data, empty, args, gen, weights=None):
    """A training batch drawn with ``gen`` (CPU): latents, token ids, timesteps, noise and the words
    (positions, regions, masks, valid) of the token loss. ``weights`` (`scene_weights`) biases which scenes
    are drawn; None draws them uniformly."""
    train = data["train"]
    n, b = train["latents"].shape[0], args.batch
    if weights is None:
        idx = torch.randint(n, (b,), generator=gen)
    else:
        idx = torch.multinomial(weights, b, replacement=True, generator=gen)
    ids = train["ids"][idx].clone()
    dropped = torch.rand(b, generator=gen) < args.caption_dropout
    ids[dropped] = empty
    t = torch.randint(0, 1000, (b,), generator=gen)
    noise = torch.randn(train["latents"][idx].shape, generator=gen)
    pos = train["pos"][idx]
    valid = (pos >= 0) & ~dropped[:, None]
    dev = args.device
    words = (pos.to(dev), train["reg"][idx].to(dev), train["masks"][idx].to(dev), valid.to(dev))
    return train["latents"][idx].to(dev), ids.to(dev), t.to(dev), noise.to(dev), words


@torch.no_grad()
def heldout_metrics(unet, text_encoder, data, acp, device, seed, recorder):
    """Held-out scenes with their captions, fixed noise, t on a fixed grid: the denoising loss (unweighted)
    and the mean share of each colour/shape word's attention inside its object at the 16x16 layers."""
    held = data["held"]
    z0 = held["latents"]
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(z0.shape, generator=gen)
    t = torch.linspace(0, 999, z0.shape[0]).round().long()
    unet.eval()
    text_encoder.eval()
    losses, shares = [], []
    for i in range(0, z0.shape[0], 32):
        sl = slice(i, i + 32)
        pos, reg = held["pos"][sl], held["reg"][sl]
        words = (pos.to(device), reg.to(device), held["masks"][sl].to(device), (pos >= 0).to(device))
        loss, _, inside, _ = diffusion_loss(unet, text_encoder, z0[sl].to(device), held["ids"][sl].to(device),
                                         t[sl].to(device), noise[sl].to(device), acp, 0.0, recorder, words)
        losses.append(loss.item() * z0[sl].shape[0])
        full = inside[[k for k, side in enumerate(recorder.sides) if side == LATENT_SIDE]].mean(0)  # [B, SLOTS]
        objects = (pos >= 0) & (reg < 2)
        shares += full[objects.to(full.device)].tolist()
    unet.train()
    text_encoder.train()
    return sum(losses) / z0.shape[0], float(np.mean(shares))


@torch.no_grad()
def sample_in_memory(unet, text_encoder, vae, tokenizer, captions, data, seed, steps=25, guidance=7.5):
    """DDIM + classifier-free guidance with the models in memory (as the pipeline does); PIL images."""
    from diffusers import DDIMScheduler
    from PIL import Image

    device = next(unet.parameters()).device
    ids = tokenize(tokenizer, [""] * len(captions) + list(captions)).to(device)
    context = text_encoder(ids)[0]
    scheduler = DDIMScheduler.from_config(SCHEDULER_CONFIG)
    scheduler.set_timesteps(steps)
    gen = torch.Generator().manual_seed(seed)
    latents = torch.randn(len(captions), 4, LATENT_SIDE, LATENT_SIDE, generator=gen).to(device)
    for t in scheduler.timesteps:
        uncond, cond = unet(torch.cat([latents, latents]), t, context).sample.chunk(2)
        latents = scheduler.step(uncond + guidance * (cond - uncond), t, latents).prev_sample
    x = vae.decode(unbalance(latents, data)).sample
    x = ((x + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(a, "RGB") for a in x]


def colour_check(unet, text_encoder, vae, tokenizer, data, seed):
    """Colour accuracy of the 8 check captions (in-memory sampler); returns (hits, n)."""
    was_training = unet.training
    unet.eval()
    text_encoder.eval()
    images = sample_in_memory(unet, text_encoder, vae, tokenizer, CHECK_CAPTIONS, data, seed)
    hits, _ = score_colours(CHECK_CAPTIONS, images)
    unet.train(was_training)
    text_encoder.train(was_training)
    return hits, len(CHECK_CAPTIONS)


def losses_scale(step, start, ramp):
    """The weight of the word and pair losses at ``step``: 0 before ``start``, then rising linearly to 1 over
    ``ramp`` steps (at once when ``ramp`` is 0), so that the attention they reshape is not torn from what the
    denoising loss taught in one jump."""
    if step < start:
        return 0.0
    return 1.0 if ramp <= 0 else min(1.0, (step - start + 1) / ramp)


def pair_schedule(args):
    """(start, ramp) of the pair losses: their own when given, else the word losses'."""
    start = args.losses_from if args.pair_from is None else args.pair_from
    return start, args.losses_ramp if args.pair_ramp is None else args.pair_ramp


def snapshot(args, step, ema, vae, text_encoder, unet, data):
    """Export the weights at ``step`` (EMA weights when there are some) as the model folder
    `<out>-step<step>`, for benchmarks of a run's phases; training continues unchanged."""
    from diffusers.models.attention_processor import AttnProcessor
    folder = f"{args.out.rstrip('/')}-step{step}"
    processors = unet.attn_processors  # the recorder's hold this step's attention (no deep copy of those)
    unet.set_attn_processor(AttnProcessor())
    try:
        with ema.swapped_in() if ema else contextlib.nullcontext():
            export(folder, vae, text_encoder, unet, data)
    finally:
        unet.set_attn_processor(processors)
    log(f"[unet] step {step}: snapshot written to {folder}")


def train_unet(unet, text_encoder, data, tokenizer, args, ckpt, state, vae, keep, pairs=None):
    """Phase 2; returns metrics.  The EMA weights are copied into the models at the end.

    ``vae`` (frozen) decodes the colour checks; ``keep`` (its weights and metrics) goes into every
    checkpoint; ``pairs`` (`shapes_pairs.encode_pairs`) are the edit pairs of the pair loss.
    """
    device = args.device
    unet.to(device).train()
    text_encoder.to(device).train()
    recorder = CrossAttentionRecorder(self_attention=args.self_locality_loss > 0)
    recorder.install(unet)
    injector = shapes_pairs.AttentionInjector(recorder)
    if pairs is not None:
        injector.install(unet)
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(param_groups(unet, text_encoder), lr=args.unet_lr, betas=(0.9, 0.999))
    ema = EMA(params, args.ema) if args.ema > 0 else None
    gen = torch.Generator().manual_seed(args.seed + 22)
    acp = alphas_cumprod().to(device)
    empty = tokenize(tokenizer, [""])[0]
    start = 0
    if state and state["phase"] == "unet":
        unet.load_state_dict(state["unet"])
        text_encoder.load_state_dict(state["text_encoder"])
        opt.load_state_dict(state["unet_opt"])
        gen.set_state(state["unet_gen"])
        if ema and state.get("ema"):
            ema.load_state_dict(state["ema"])
        start = state["step"]
        log(f"[unet] resuming at step {start}")
    progress = Progress("unet", args.unet_steps, start)
    history = dict(heldout=[], colour=[], inside=[])  # (step, loss), (step, hits, n), (step, share)
    if start:
        progress.losses = list(state.get("losses", []))
        history = state.get("history", history)
    tokens_seen, word_seen, pairs_seen = [], [], []
    word_losses = WordLosses(args, tokenizer)
    record = args.token_loss > 0 or word_losses.active
    pair_start_ramp = pair_schedule(args)
    weights = scene_weights(data["train"], args.two_object_share)
    for step in range(start, args.unet_steps):
        set_lr(opt, lr_at(step, args.unet_steps, args.unet_lr, warmup=min(200, args.unet_steps // 10 + 1)))
        z0, ids, t, noise, words = sample_batch(data, empty, args, gen, weights)
        loss, token, _, denoised = diffusion_loss(unet, text_encoder, z0, ids, t, noise, acp, args.min_snr, recorder,
                                                  words if record else None)
        total = loss + args.token_loss * token if token is not None else loss
        ramp = losses_scale(step, args.losses_from, args.losses_ramp)
        if word_losses.active and ramp > 0:
            extra, values = word_losses(recorder.last, text_encoder, ids, t, words, gen, unet, denoised,
                                        recorder.self_last)
            total = total + ramp * extra
            word_seen.append(values)
        pair_ramp = losses_scale(step, *pair_start_ramp)
        if pairs is not None and pair_ramp > 0:
            extra, values = shapes_pairs.terms(unet, text_encoder, injector, pairs, args, acp, gen, empty)
            total = total + pair_ramp * extra
            pairs_seen.append(values)
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if ema:
            ema.update()
        tokens_seen.append(token.item() if token is not None else 0.0)
        shown = f" token {np.mean(tokens_seen[-50:]):.4f}"
        for seen in (word_seen, pairs_seen):
            if seen:
                shown += "".join(f" {k} {np.mean([v[k] for v in seen[-50:]]):.4f}" for k in seen[-1])
        progress.update(step, loss.item(), shown)
        if (step + 1) % max(1, args.unet_steps // 8) == 0 and step + 1 < args.unet_steps:
            held, inside = heldout_metrics(unet, text_encoder, data, acp, device, args.seed + 33, recorder)
            history["heldout"].append((step + 1, round(held, 5)))
            history["inside"].append((step + 1, round(inside, 3)))
            log(f"[unet] step {step + 1}: held-out loss {held:.5f} (training weights, unweighted); "
                f"attention inside the object {inside:.1%} (16x16 layers, t on a grid)")
        if (step + 1) % max(1, args.unet_steps // 4) == 0 and step + 1 < args.unet_steps and ema:
            with ema.swapped_in():
                hits, n = colour_check(unet, text_encoder, vae, tokenizer, data, args.seed + 44)
            history["colour"].append((step + 1, hits, n))
            log(f"[unet] step {step + 1}: colour accuracy {hits}/{n} (EMA weights, DDIM 25, guidance 7.5)")
        if step + 1 in args.snapshots and step + 1 < args.unet_steps:
            snapshot(args, step + 1, ema, vae, text_encoder, unet, data)
        if ckpt.due() and step + 1 < args.unet_steps:
            ckpt.save(dict(phase="unet", step=step + 1, args=vars(args), **keep,
                           unet=unet.state_dict(), text_encoder=text_encoder.state_dict(),
                           unet_opt=opt.state_dict(), unet_gen=gen.get_state(),
                           ema=ema.state_dict() if ema else None, losses=progress.losses[-100:],
                           history=history))
            log(f"[unet] checkpoint at step {step + 1}")
    rate = progress.rate(args.unet_steps)
    if ema:
        ema.copy_to_params()
    held, inside = heldout_metrics(unet, text_encoder, data, acp, device, args.seed + 33, recorder)
    final = float(np.mean(progress.losses[-100:]))
    log(f"[unet] done: training loss (last 100 steps) {final:.5f}; held-out loss {held:.5f}; attention inside "
        f"the object {inside:.1%}{' (EMA weights)' if ema else ''}; {rate:.2f} steps/s")
    from diffusers.models.attention_processor import AttnProcessor
    unet.set_attn_processor(AttnProcessor())
    return dict(unet_loss=final, heldout_loss=held, heldout_inside=inside, unet_steps_per_s=rate,
                heldout_history=history["heldout"], inside_history=history["inside"],
                colour_history=history["colour"], token_loss=float(np.mean(tokens_seen[-100:])))


# --------------------------------------------------------------------------- export and self-check

def rebuild_command(args):
    """The options of `python3 -m scripts.demo.train_shapes` that rebuild this run: those that differ from
    their defaults."""
    cmd = "" if args.out == default_out() else f" --out {args.out}"
    for flag, key in (("--vae-steps", "vae_steps"), ("--vae-batch", "vae_batch"), ("--unet-steps", "unet_steps"),
                      ("--batch", "batch"), ("--scenes", "scenes")):
        if getattr(args, key) != DEFAULTS[key] and not args.quick:
            cmd += f" {flag} {getattr(args, key)}"
    for key in TRAINING_OPTIONS:  # the training options that differ from their defaults
        value = getattr(args, key)
        if value != PARSER_DEFAULTS.get(key, value):
            cmd += f" --{key.replace('_', '-')}" + ("" if isinstance(value, bool) else f" {value:g}")
    if args.whiten:
        cmd += " --whiten"
    if args.vae_from:
        cmd += f" --vae-from {args.vae_from}"
    if args.quick:
        cmd += " --quick"
    if args.seed != 0:
        cmd += f" --seed {args.seed}"
    return cmd


def write_readme(out, args, metrics, sizes):
    """The model folder's README (`shapes_readme`), with the command that rebuilds it."""
    pair = pair_schedule(args) if (args.pair_from, args.pair_ramp) != (None, None) else None
    shapes_readme.write(out, args, metrics, sizes, rebuild_command(args), pair)


# --------------------------------------------------------------------------- main

def default_out():
    return os.path.join(ROOT, "samples", "models", "shapes")


def parse_args(argv=None):
    ap = parser()
    args = ap.parse_args(argv)
    PARSER_DEFAULTS.update({key: ap.get_default(key) for key in TRAINING_OPTIONS})
    return finish_args(args)


# The training options a rebuild command must repeat when they differ from their defaults, and those defaults
# as the parser has them (filled by parse_args).
TRAINING_OPTIONS = (("vae_lr", "unet_lr", "kl_weight", "caption_dropout", "min_snr", "ema", "token_loss") + losses.OPTIONS
                    + shapes_pairs.OPTIONS + ("losses_from", "losses_ramp", "pair_from", "pair_ramp", "two_object_share",
                                              "contextless_text", "vae_groups", "unet_groups"))
PARSER_DEFAULTS = {}


def parser():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=default_out(), help="model folder to write (default samples/models/shapes)")
    ap.add_argument("--vae-steps", type=int, help=f"VAE steps (default {DEFAULTS['vae_steps']})")
    ap.add_argument("--unet-steps", type=int, help=f"UNet steps (default {DEFAULTS['unet_steps']})")
    ap.add_argument("--batch", type=int, help=f"UNet batch size (default {DEFAULTS['batch']})")
    ap.add_argument("--vae-batch", type=int, help=f"VAE batch size (default {DEFAULTS['vae_batch']})")
    ap.add_argument("--scenes", type=int, help=f"UNet training scenes (default {DEFAULTS['scenes']})")
    ap.add_argument("--heldout", type=int, help=f"held-out scenes (default {DEFAULTS['heldout']})")
    ap.add_argument("--vae-lr", type=float, default=1e-3)
    ap.add_argument("--unet-lr", type=float, default=5e-4)
    ap.add_argument("--kl-weight", type=float, default=1e-6)
    ap.add_argument("--caption-dropout", type=float, default=0.1)
    ap.add_argument("--min-snr", type=float, default=5.0,
                    help="Min-SNR-gamma loss weighting as diffusers' --snr_gamma; 0 = plain MSE")
    ap.add_argument("--ema", type=float, default=0.995, help="EMA max decay; 0 turns EMA off")
    ap.add_argument("--token-loss", type=float, default=0.1,
                    help="weight of the token loss that keeps each word's cross-attention on its object; 0 = off")
    losses.add_arguments(ap)
    shapes_pairs.add_arguments(ap)
    ap.add_argument("--two-object-share", type=float, metavar="P",
                    help="draw training scenes so that a share P of them have two objects (default: as the "
                    f"world makes them, {world.TWO_OBJECTS:g})")
    ap.add_argument("--whiten", action="store_true",
                    help="whiten the latents (full covariance, folded into the VAE) instead of normalising each "
                    "channel: no direction of the latent space is quieter than the noise treats it")
    ap.add_argument("--contextless-text", action="store_true", help=CONTEXTLESS_HELP + " (from the first step)")
    ap.add_argument("--vae-groups", type=int, default=VAE_CONFIG["norm_num_groups"], metavar="G",
                    help="the VAE's GroupNorm groups (default %(default)s; each level's channel count must be a "
                    "multiple; SD 1.5's VAE has 4-16 channels per group, this one 2-4 by default)")
    ap.add_argument("--unet-groups", type=int, default=UNET_CONFIG["norm_num_groups"], metavar="G",
                    help="the UNet's GroupNorm groups (default %(default)s; each level's channel count must be a "
                    "multiple; SD 1.5's UNet has 10-40 channels per group, this one 2-4 by default)")
    ap.add_argument("--losses-from", type=int, default=0,
                    help="UNet step from which the word losses and the pair losses apply (the denoising and token "
                    "losses apply from the first): the colours are learnt first")
    ap.add_argument("--losses-ramp", type=int, default=0,
                    help="steps over which the word and pair losses' weights rise linearly from 0 to their value, "
                    "from --losses-from on; 0 = at once")
    ap.add_argument("--pair-from", type=int,
                    help="UNet step from which the pair losses apply (default: --losses-from); they halve the "
                    "steps per second, so a run can add them for its last steps only")
    ap.add_argument("--pair-ramp", type=int, help="the pair losses' ramp (default: --losses-ramp)")
    ap.add_argument("--snapshots", type=int, nargs="*", default=[], metavar="STEP",
                    help="UNet steps at which to also write the model (EMA weights) to <out>-step<STEP>")
    ap.add_argument("--vae-from", help="take the VAE of this trained model folder instead of training one (for "
                    "experiments on the UNet phase; the run's time then leaves the VAE phase out)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (use 1 on a busy machine)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--quick", action="store_true", help="a ~1 minute smoke test (tiny step counts)")
    ap.add_argument("--resume", action="store_true", help="continue from <out>.partial/ if it exists")
    ap.add_argument("--checkpoint-minutes", type=float, default=5.0)
    ap.add_argument("--check-n", type=int, default=8, help="captions generated by the self-check")
    return ap


def finish_args(args):
    """Fills the step counts and sizes the command line left out (the quick or full defaults)."""
    base = QUICK if args.quick else DEFAULTS
    for key, value in base.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.two_object_share is not None and not 0 < args.two_object_share < 1:
        raise SystemExit(f"--two-object-share must lie between 0 and 1, not {args.two_object_share:g}")
    for flag, groups, config in (("--vae-groups", args.vae_groups, VAE_CONFIG),
                                 ("--unet-groups", args.unet_groups, UNET_CONFIG)):
        if groups < 1 or any(c % groups for c in config["block_out_channels"]):
            raise SystemExit(f"{flag} must divide each of {config['block_out_channels']}, not {groups}")
    shapes_pairs.check_arguments(args, args.scenes)
    args.out = os.path.abspath(args.out)
    return args


def load_resume_state(args, ckpt):
    """The checkpoint dict when resuming (its run settings win), else None (and a fresh `.partial`)."""
    if not args.resume or not ckpt.exists():
        if args.resume:
            log(f"no checkpoint in {ckpt.dir}; starting from scratch")
        else:
            ckpt.clear()
        return None
    state = ckpt.load()
    for key in ("vae_steps", "vae_batch", "unet_steps", "batch", "scenes", "heldout", "seed", "whiten",
                "vae_from") + TRAINING_OPTIONS:
        saved = state["args"].get(key, getattr(args, key))  # options newer than the checkpoint keep theirs
        if saved != getattr(args, key):
            log(f"resume: using the checkpoint's {key} = {saved} (not {getattr(args, key)})")
            setattr(args, key, saved)
    return state


def reuse_vae(vae, args):
    """Loads the VAE of the model folder ``args.vae_from`` (written by this script, so its latents are already
    balanced and the balancing below is close to the identity) and measures it as `train_vae` would."""
    from diffusers import AutoencoderKL
    source = AutoencoderKL.from_pretrained(args.vae_from, subfolder="vae")
    if source.config.norm_num_groups != args.vae_groups:  # the weights' shapes do not depend on it
        raise SystemExit(f"{args.vae_from}: its VAE has {source.config.norm_num_groups} GroupNorm groups, "
                         f"not {args.vae_groups} (--vae-groups)")
    vae.load_state_dict(source.state_dict())
    vae.to(args.device).eval().requires_grad_(False)
    psnr_mean, psnr_min = vae_psnr(vae, HELDOUT_SEED_BASE + np.arange(args.heldout), args.device)
    log(f"[vae] taken from {args.vae_from}: held-out PSNR mean {psnr_mean:.2f} dB, min {psnr_min:.2f} dB "
        f"({args.heldout} scenes)")
    return dict(vae_loss=float("nan"), psnr_mean=psnr_mean, psnr_min=psnr_min, psnr_history=[],
                vae_steps_per_s=0.0)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    ckpt = Checkpoint(args.out, args.checkpoint_minutes)
    state = load_resume_state(args, ckpt)
    vae, text_encoder, unet = build_models(args.seed, args.vae_groups, args.unet_groups)
    if args.contextless_text:
        make_contextless(text_encoder)
    sizes = dict(vae=param_count(vae), text_encoder=param_count(text_encoder), unet=param_count(unet))
    log(f"parameters: VAE {sizes['vae']:,}, text encoder {sizes['text_encoder']:,}, UNet {sizes['unet']:,}")
    log(f"run: VAE {args.vae_steps} steps at batch {args.vae_batch}, {args.scenes} scenes, "
        f"UNet {args.unet_steps} steps at batch {args.batch}, {args.threads} thread(s) on {args.device}")

    if state and state["phase"] == "unet":
        vae.load_state_dict(state["vae"])
        vae.to(args.device).eval().requires_grad_(False)
        metrics = state["vae_metrics"]
    else:
        metrics = reuse_vae(vae, args) if args.vae_from else train_vae(vae, args, ckpt, state)
        ckpt.save(dict(phase="unet", step=0, args=vars(args), vae=vae.state_dict(), vae_metrics=metrics))
    tokenizer = load_tokenizer()
    data = balance_channels(prepare_latents(vae, args, ckpt, tokenizer), args.whiten)
    if state and state["phase"] == "unet" and "unet" not in state:
        state = None  # phase boundary checkpoint: the UNet phase starts fresh
    keep = dict(vae=vae.state_dict(), vae_metrics=dict(metrics))
    pairs = None
    if shapes_pairs.active(args):
        pairs = shapes_pairs.encode_pairs(vae, data["train"], args.pair_scenes, tokenizer,
                                          normalise=lambda z: balance(z, data))
        log(f"[pairs] {args.pair_scenes} edit pairs encoded")
    metrics.update(train_unet(unet, text_encoder, data, tokenizer, args, ckpt, state, vae, keep, pairs))

    metrics.update(encode_scenes_per_s=data["encode_scenes_per_s"],
                   channel_std=[round(v, 4) for v in data["global_std"].tolist()])
    export(args.out, vae, text_encoder, unet, data)
    hits, rows, grid = self_check(args.out, args.check_n, args.seed + 44)
    grid.save(os.path.join(args.out, "self-check.png"))
    metrics.update(check_hits=hits, check_n=args.check_n, check_rows=rows, minutes=(time.time() - t0) / 60)
    write_readme(args.out, args, metrics, sizes)
    ckpt.clear()
    log(f"wrote {args.out} ({folder_size(args.out) / 1e6:.2f} MB) in {fmt_time(time.time() - t0)}")
    log("self-check (DDIM 25 steps, guidance 7.5):\n" + "\n".join(rows))
    log(f"self-check colour accuracy: {hits}/{args.check_n} = {hits / args.check_n:.0%}")


if __name__ == "__main__":
    main()
