"""Phase 1 of the shapes demo model: the VAE, trained from scratch on rendered scenes, then the UNet's
training set encoded once and its latent channels normalised (the normalisation is folded into the exported
VAE, whose ``scaling_factor`` is then 1)."""
import os

import numpy as np
import torch

from scripts.demo.shapes_model import HELDOUT_SEED_BASE, VAE_SEED_BASE, encode_scenes, render_batch
from scripts.demo.shapes_training import Progress, log, lr_at, param_groups, set_lr

# (fraction of the VAE steps, crop side; None = whole 128x128 scenes), in order
VAE_CROP_SCHEDULE = ((0.40, 32), (0.85, 64), (1.0, None))


@torch.no_grad()
def vae_psnr(vae, seeds, device):
    """Mean and minimum PSNR (dB, 8-bit images) of mode reconstructions of the scenes ``seeds``."""
    vae.eval()
    psnrs = []
    for i in range(0, len(seeds), 32):
        x = render_batch(seeds[i:i + 32]).to(device)
        rec = vae.decode(vae.encode(x).latent_dist.mode()).sample
        a = torch.round((x + 1) * 127.5) / 255
        b = torch.round(((rec + 1) * 127.5).clamp(0, 255)) / 255
        mse = ((a - b) ** 2).flatten(1).mean(1).clamp_min(1e-10)
        psnrs += (10 * torch.log10(1 / mse)).tolist()
    vae.train()
    return float(np.mean(psnrs)), float(np.min(psnrs))


def vae_loss(vae, x, generator, kl_weight):
    posterior = vae.encode(x).latent_dist
    z = posterior.sample(generator=generator)
    rec = vae.decode(z).sample
    return (rec - x).abs().mean() + ((rec - x) ** 2).mean() + kl_weight * posterior.kl().mean()


def vae_crop_at(step, total):
    """The crop side of VAE step ``step`` of ``total`` (None: whole scenes), from `VAE_CROP_SCHEDULE`."""
    for fraction, crop in VAE_CROP_SCHEDULE:
        if step < int(total * fraction):
            return crop
    return VAE_CROP_SCHEDULE[-1][1]


def train_vae(vae, args, ckpt, state):
    """Phase 1; `state` is the checkpoint dict (resumes when it is a VAE-phase checkpoint)."""
    device = args.device
    vae.to(device).train()
    opt = torch.optim.AdamW(param_groups(vae), lr=args.vae_lr, betas=(0.9, 0.99))
    gen = torch.Generator(device=device).manual_seed(args.seed + 11)
    start = 0
    if state and state["phase"] == "vae":
        vae.load_state_dict(state["vae"])
        opt.load_state_dict(state["vae_opt"])
        gen.set_state(state["vae_gen"])
        start = state["step"]
        log(f"[vae] resuming at step {start}")
    progress = Progress("vae", args.vae_steps, start)
    history = []  # (step, held-out PSNR on 16 scenes)
    if start:
        progress.losses = list(state.get("losses", []))
        history = list(state.get("history", []))
    for step in range(start, args.vae_steps):
        set_lr(opt, lr_at(step, args.vae_steps, args.vae_lr, warmup=min(100, args.vae_steps // 10 + 1)))
        seeds = VAE_SEED_BASE + step * args.vae_batch + np.arange(args.vae_batch)
        crop = vae_crop_at(step, args.vae_steps)
        x = render_batch(seeds, crop, np.random.default_rng([args.seed, step])).to(device)
        loss = vae_loss(vae, x, gen, args.kl_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        progress.update(step, loss.item(), f" ({crop}x{crop} crops)" if crop else " (whole scenes)")
        if (step + 1) % max(1, args.vae_steps // 8) == 0 and step + 1 < args.vae_steps:
            psnr, _ = vae_psnr(vae, HELDOUT_SEED_BASE + np.arange(16), device)
            history.append((step + 1, round(psnr, 2)))
            log(f"[vae] step {step + 1}: held-out PSNR {psnr:.2f} dB (16 scenes)")
        if ckpt.due() and step + 1 < args.vae_steps:
            ckpt.save(dict(phase="vae", step=step + 1, args=vars(args), vae=vae.state_dict(),
                           vae_opt=opt.state_dict(), vae_gen=gen.get_state(), losses=progress.losses[-100:],
                           history=history))
            log(f"[vae] checkpoint at step {step + 1}")
    rate = progress.rate(args.vae_steps)
    heldout = HELDOUT_SEED_BASE + np.arange(args.heldout)
    psnr_mean, psnr_min = vae_psnr(vae, heldout, device)
    log(f"[vae] done: final loss {np.mean(progress.losses[-50:]):.5f}; held-out PSNR mean {psnr_mean:.2f} dB, "
        f"min {psnr_min:.2f} dB ({args.heldout} scenes); {rate:.2f} steps/s")
    vae.eval().requires_grad_(False)
    return dict(vae_loss=float(np.mean(progress.losses[-50:])), psnr_mean=psnr_mean, psnr_min=psnr_min,
                psnr_history=history, vae_steps_per_s=rate)


# `latents.pt` layout: 2 = the VAE's raw latent means (1 held them times a global scaling factor).
LATENTS_FORMAT = 2


def prepare_latents(vae, args, ckpt, tokenizer):
    """Encode (or reload) the UNet training set and the held-out set (the VAE's own latent means)."""
    if os.path.exists(ckpt.path("latents.pt")):
        data = ckpt.load("latents.pt")
        if (data.get("format") == LATENTS_FORMAT and data["scenes"] == args.scenes
                and data["heldout"] == args.heldout):
            log(f"[encode] reusing {ckpt.path('latents.pt')}")
            return data
    train, rate = encode_scenes(vae, np.arange(args.scenes), args.device, tokenizer)
    held, _ = encode_scenes(vae, HELDOUT_SEED_BASE + np.arange(args.heldout), args.device, tokenizer)
    data = dict(format=LATENTS_FORMAT, scenes=args.scenes, heldout=args.heldout, train=train, held=held,
                encode_scenes_per_s=rate)
    ckpt.save(data, "latents.pt")
    return data


def balance_channels(data, whiten=False):
    """Per-channel normalisation of the latents the UNet learns: z' = (z - mean_c) / std_c per latent channel,
    or with ``whiten`` the whitening z' = A (z - mean), A = E diag(lambda)^-1/2 E^T of the latent covariance
    over every training pixel (ZCA: every direction at unit variance, as close to the channels as whitening
    goes).

    One global ``scaling_factor`` (SD's convention) leaves this VAE's channels far apart (std 0.15 to 1.24
    after scaling), and a channel 8x smaller than the others drowns in the noise at every timestep, so the
    diffusion model hardly learns what it carries (a first run without this generated 0/8 right colours).
    Per-channel scaling leaves correlated channels: one VAE's balanced latents had covariance eigenvalues
    0.006, 0.085, 0.87 and 2.99, two directions ~3-13x quieter than a channel, and the colours partly in them.
    The affine map is folded into the exported VAE's quant convolutions (`fold_channels`), so the folder
    keeps SD's layout with ``scaling_factor`` 1 and every SD 1.x pipeline sees the balanced latents.
    Applied after every load (deterministic from the encoded set), so checkpoints and ``--resume`` keep the
    raw encodings.  Adds ``channel_mean``, ``channel_std``, ``transform`` (A [C, C]; diagonal without
    ``whiten``), ``inverse`` (A^-1) and ``global_std`` (each channel's std under SD's one global scale, for
    the model's README).
    """
    raw = data["train"]["latents"]
    mean, std = raw.mean(dim=(0, 2, 3)), raw.std(dim=(0, 2, 3))
    if whiten:
        flat = (raw - mean.view(1, -1, 1, 1)).permute(1, 0, 2, 3).reshape(raw.shape[1], -1).double()
        values, vectors = torch.linalg.eigh(flat @ flat.T / (flat.shape[1] - 1))
        values = values.clamp_min(1e-4 * values.max())
        transform = (vectors @ torch.diag(values.rsqrt()) @ vectors.T).float()
        inverse = (vectors @ torch.diag(values.sqrt()) @ vectors.T).float()
        log("[encode] latent covariance eigenvalues " + ", ".join(f"{v:.4f}" for v in values.tolist()))
    else:
        transform, inverse = torch.diag(1 / std), torch.diag(std)
    stats = dict(channel_mean=mean, channel_std=std, transform=transform, inverse=inverse)
    balanced = {part: dict(data[part], latents=balance(data[part]["latents"], stats)) for part in ("train", "held")}
    global_std = std / raw.std()
    log("[encode] per-channel latent mean " + ", ".join(f"{v:.3f}" for v in mean.tolist())
        + "; std " + ", ".join(f"{v:.3f}" for v in std.tolist())
        + (" -> whitened" if whiten else " -> normalised") + ", scaling_factor 1")
    return dict(data, **balanced, **stats, global_std=global_std)


def balance(latents, data):
    """The balanced latents of the VAE's own (what the UNet learns; the inverse of `unbalance`)."""
    centred = latents - data["channel_mean"].view(1, -1, 1, 1).to(latents)
    return torch.einsum("ij,bjhw->bihw", data["transform"].to(latents), centred)


def unbalance(latents, data):
    """The VAE's own latents of balanced ones (what the unfolded VAE decodes)."""
    return (torch.einsum("ij,bjhw->bihw", data["inverse"].to(latents), latents)
            + data["channel_mean"].view(1, -1, 1, 1).to(latents))


@torch.no_grad()
def fold_channels(vae, mean, transform, inverse):
    """Make ``vae`` encode to A (z - mean) and decode those (A = ``transform`` [C, C], ``inverse`` its
    inverse): the mean rows of `quant_conv` become A times them, the input columns of `post_quant_conv` take
    A^-1, and the log-variance rows are mixed as log(sum_j A_ij^2 var_j) is approximated by its weighted
    geometric mean (exact for a diagonal A: a shift by 2 log A_ii)."""
    c = mean.numel()
    q, p = vae.quant_conv, vae.post_quant_conv
    w = q.weight[:, :, 0, 0]  # [2C, C_in]: mean rows, then log-variance rows
    scale = (transform ** 2).sum(1)  # [C]
    mix = transform ** 2 / scale[:, None]  # [C, C], rows sum to 1
    q.weight[:c, :, 0, 0] = transform @ w[:c]
    q.weight[c:, :, 0, 0] = mix @ w[c:]
    q.bias[c:] = mix @ q.bias[c:] + torch.log(scale)
    q.bias[:c] = transform @ (q.bias[:c] - mean)
    p.bias += p.weight[:, :, 0, 0] @ mean
    p.weight[:, :, 0, 0] = p.weight[:, :, 0, 0] @ inverse
