"""The README written into a trained shapes model's folder (`train_shapes`): what the model is, the command that
rebuilds it, how each phase was trained and what it measured, and its self-check."""

import os

from scripts.demo import shapes_world as world
from scripts.demo.shapes_model import UNET_CONFIG, VAE_CONFIG


README = """# shapes

A small model of the **Stable Diffusion 1.x architecture trained from scratch** on the *shapes world*
(`scripts/demo/shapes_world.py`): 128x128 images of one or two circles, squares or triangles in {colours}
on a {backgrounds} background, captioned exactly `a {{colour}} {{shape}} on a {{background}} background` or
`a {{colour}} {{shape}} and a {{colour}} {{shape}} on a {{background}} background` (the objects in either order).
Its cross-attention was trained to land on the objects the words name (a token loss, below), which
Prompt-to-Prompt needs to edit one object and keep the rest (how far its edits do that is measured by
`python3 -m scripts.demo.bench_p2p_shapes`, not here). An edit:

```sh
pivot edit samples/shapes/red-circle-blue-square.png --model samples/models/shapes \\
    --source "a red circle and a blue square on a white background" \\
    --target "a green circle and a blue square on a white background" --side-by-side --attention-maps maps.png -o edited.png
```

It knows nothing else (other words reach the UNet through untrained token embeddings).
Made by `python3 -m scripts.demo.train_shapes{cmd}` (seed {seed}; {minutes:.1f} minutes on {device} with
{threads} thread(s)).  Rerun the same command from the package root to rebuild it (`--resume` continues
a killed run from `<out>.partial/`).

| component | class | shape | parameters |
|---|---|---|---|
| VAE | `AutoencoderKL` | `{vae_ch}`, 1 layer/block, 128x128 -> 4x16x16 (factor 8), `scaling_factor` 1 (channels normalised in the weights) | {vae_n:,} |
| text encoder | `CLIPTextModel` | hidden 64, 3 layers, 4 heads, MLP 256, quick_gelu, vocabulary 49408 (the real CLIP tokenizer){contextless} | {te_n:,} |
| UNet | `UNet2DConditionModel` | `{unet_ch}`, CrossAttnDownBlock2D x2 / CrossAttnUpBlock2D x2, 1 layer/block, 4 heads, cross-attention dim 64 (at 16x16 and 8x8) | {unet_n:,} |
| scheduler | `DDIMScheduler` | SD 1.5's config | |

Weights are fp16 safetensors; the folder loads with diffusers' `StableDiffusionPipeline.from_pretrained`.

## How it was trained

1. **VAE**: {vae_steps} steps at batch {vae_batch} (40% on random 32x32 crops, 45% on 64x64 crops, the last 15% on whole scenes),
   L1 + L2 reconstruction + 1e-6 KL, AdamW.  Final loss {vae_loss:.5f}; held-out reconstruction PSNR
   **{psnr_mean:.2f} dB** mean, {psnr_min:.2f} dB worst ({heldout} whole scenes).  The latent channels are
   {balancing} over the training set (their std under one global scale was {channel_std}: one
   channel 8x quieter than the rest drowns in the noise and its content, colour here, is hardly learnt), and that
   affine map is folded into the VAE's `quant_conv`/`post_quant_conv`, so `scaling_factor` is 1.  PSNR during training (16 held-out scenes): {psnr_history}.
2. **UNet + text encoder** (VAE frozen): {scenes} scenes (60% with two objects) encoded once, {unet_steps}
   steps at batch {batch}, epsilon-prediction DDPM loss on SD's scaled-linear schedule, AdamW, 10% empty
   captions (for classifier-free guidance), Min-SNR-{min_snr} weighting, EMA {ema}, plus {token_loss} x a
   **token loss** (TokenCompose's L_token, Wang et al., CVPR 2024): in every cross-attention layer, for each
   colour and shape word and the background's colour word, (1 - the share of the word's attention mass inside
   its region)^2, the regions being the renderer's object coverage and the background, block-averaged to the
   layer's 16x16 or 8x8 grid.{word_losses}  Final training loss {unet_loss:.5f} (weighted), token loss {token_final:.4f};
   held-out loss {heldout_loss:.5f} (unweighted, EMA weights, {heldout} scenes); **{inside:.1%}** of the
   object words' attention at the 16x16 layers lies inside their objects (held-out scenes, t on a grid).
   During training (training weights): held-out loss {heldout_history}; attention inside {inside_history}.
   Colour accuracy of 8 generated check captions (EMA weights): {colour_history}.

Speed: VAE {vae_sps:.2f} steps/s, encoding {enc_sps:.0f} scenes/s, UNet {unet_sps:.2f} steps/s.

## Self-check

diffusers `StableDiffusionPipeline`, DDIM 25 steps, guidance 7.5, 128x128: the objects' colours matched
the caption in **{acc_hits}/{acc_n}** images (`self-check.png`, left to right):

{check_lines}
"""


def write(out, args, metrics, sizes, cmd, pair=None):
    """Writes `<out>/README.md` for a run with options ``args``, the measurements ``metrics``, the parameter
    counts ``sizes``, the rebuild options ``cmd`` and, when the pair losses have their own schedule, ``pair``
    = (their first step, their ramp)."""
    terms = [f"{getattr(args, key):g} x the {name}" for key, name in (
        ("function_loss", "attention mass on tokens other than `<|startoftext|>` and the supervised words"),
        ("foreign_loss", "attention each pixel gives to another region's words"),
        ("own_loss", f"shortfall of a pixel's attention to its own region's words below {args.own_mass:g} "
         f"(t < {args.own_max_t})"),
        ("leak_loss", "relative change of the other supervised words' embeddings when a word is swapped"),
        ("function_leak_loss", "relative change of the other tokens after a swapped word's phrase (function "
         "words, end, padding)"),
        ("locality_loss", f"change of the noise prediction outside a swapped word's region ({args.locality_rows} "
         "rows a step)"),
        ("self_locality_loss", "self-attention mass a region's pixels give to pixels outside it"),
        ("pair_loss", f"Prompt-to-Prompt pair loss (`shapes_pairs.py`; {args.pair_batch} of {args.pair_scenes} "
         "edit pairs a step" + (", denoised from the source's latent" if args.pair_source else "") + ")"),
        ("pair_consistency", "pair consistency loss (`shapes_pairs.pair_loss`: the guided prediction's change "
         "outside the edited object)"),
        ("pair_invariance", "pair invariance loss (`shapes_pairs.invariance_loss`: the captioned prediction's "
         "change outside the edited object for a perfect edit noised like its source)")) if getattr(args, key) > 0]
    since = f"from UNet step {args.losses_from}" if args.losses_from > 0 else "from the first step"
    if args.losses_ramp > 0:
        since += f", their weights rising linearly to the values below over {args.losses_ramp} steps"
    if pair is not None:
        start, ramp = pair
        since += f" (the pair losses from step {start}" + (f", ramped over {ramp} steps)" if ramp > 0 else ")")
    word_losses = (f"  With the word losses of `shapes_losses.py` {since}: " + "; ".join(terms) + "."
                   if terms else "")
    balancing = ("whitened (ZCA: every direction of the latent covariance at unit variance)" if args.whiten
                 else "normalised one by one")
    contextless = ("; attention output projections zero and frozen (contextless: each token's embedding depends "
                   "on that token and its position only)" if args.contextless_text else "")
    text = README.format(word_losses=word_losses, balancing=balancing, contextless=contextless,
        colours=", ".join(world.COLOURS), backgrounds=", ".join(world.BACKGROUNDS), cmd=cmd, seed=args.seed,
        minutes=metrics["minutes"], device=args.device, threads=args.threads,
        vae_ch=VAE_CONFIG["block_out_channels"], unet_ch=UNET_CONFIG["block_out_channels"],
        vae_n=sizes["vae"], te_n=sizes["text_encoder"], unet_n=sizes["unet"],
        vae_steps=args.vae_steps, vae_batch=args.vae_batch, min_snr=args.min_snr, unet_steps=args.unet_steps,
        batch=args.batch, scenes=args.scenes,
        heldout=args.heldout, ema=args.ema if args.ema > 0 else "off", vae_sps=metrics["vae_steps_per_s"],
        enc_sps=metrics["encode_scenes_per_s"], unet_sps=metrics["unet_steps_per_s"],
        psnr_history=", ".join(f"{p} dB at {k}" for k, p in metrics["psnr_history"]) or "-",
        heldout_history=", ".join(f"{v} at {k}" for k, v in metrics["heldout_history"]) or "-",
        colour_history=", ".join(f"{h}/{n} at {k}" for k, h, n in metrics["colour_history"]) or "-",
        inside_history=", ".join(f"{v:.1%} at {k}" for k, v in metrics["inside_history"]) or "-",
        channel_std=metrics["channel_std"], inside=metrics["heldout_inside"], token_final=metrics["token_loss"], token_loss=args.token_loss,
        acc_hits=metrics["check_hits"], acc_n=metrics["check_n"], check_lines="\n".join(metrics["check_rows"]),
        **{k: metrics[k] for k in ("vae_loss", "psnr_mean", "psnr_min", "unet_loss", "heldout_loss")})
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write(text)
