#!/usr/bin/env python3
"""Fine-tune a shapes model's VAE *decoder* so that a latent edited in one object's region decodes to the edit
there and to the photo everywhere else.

Why. A perfect Prompt-to-Prompt edit changes the latent on the edited object only. The VAE decoder of the
shapes models is not local (GroupNorm statistics over the whole image, a self-attention over the whole latent
in its mid block): on the 20 held-out two-object scenes of `bench_p2p_shapes`, the *ground truth's* latent put
on the edited object (the source's latent everywhere else) decodes the other object at 29.5 dB mean, 10 of 20
below 28 dB, and with that change doubled (guidance overshoots) at 24.0 dB. So the decoder alone repaints the
other object, whatever the UNet does.

What. The encoder (and `quant_conv`) stay frozen, so the latents, and with them the UNet and text encoder
trained on them, are unchanged; the decoder (with `post_quant_conv`) trains on two kinds of examples, half a
batch each, scenes of the UNet's training set (seeds from 0; `shapes_pairs.edited_scene` draws the edits):

* plain reconstruction: decode(enc(x)) -> x;
* composites: a scene and its edit (one object's colour or shape swapped by the renderer), the latent of one
  on the edited object's coverage (grown by one latent pixel) and the other's elsewhere, decoding to the image
  whose latent lies on the object: source outside + edit inside -> the edit, and the reverse -> the source.

Loss L1 + L2 per pixel, AdamW, cosine decay. The result is the model folder with the VAE replaced (fp16).

    python3 -m scripts.demo.finetune_decoder --model /tmp/shapesX --out /tmp/shapesXD --steps 1200

Limitation: composites along a boundary the renderer never draws (half a latent pixel off the object) are
asked to look like the image, which the decoder can only approximate; PSNR figures are inside the masks.
"""
import argparse
import os
import shutil
import time

import numpy as np
import torch

from scripts.demo import shapes_model
from scripts.demo import shapes_world as world
from scripts.demo.shapes_export import publish, save_networks
from scripts.demo.shapes_pairs import PAIR_SEED_BASE, edited_scene
from scripts.demo.shapes_training import fmt_time, log


def latent_region(cover, side, grow=1):
    """[B, 1, side, side] 0/1: latent pixels touched by the coverage ``cover`` [B, H, W], grown by ``grow``."""
    m = torch.from_numpy(np.asarray(cover, dtype=np.float32))[:, None]
    m = (torch.nn.functional.adaptive_avg_pool2d(m, side) > 0.02).float()
    return torch.nn.functional.max_pool2d(m, 2 * grow + 1, 1, grow) if grow else m


def batch(vae, seeds, rng):
    """(latents [B, 4, h, w], target images [B, 3, H, W], outside [B - B/2, 4, h, w], region [B - B/2, 1, h, w]):
    the first half plain scenes, the second composites; ``outside`` is the latent each composite takes outside
    its ``region``."""
    half = len(seeds) // 2
    sources = [world.render(int(s))[0] for s in seeds]
    edits = [edited_scene(int(s), rng) for s in seeds[half:]]
    x = shapes_model.images_to_tensor(sources)
    xe = shapes_model.images_to_tensor([e[0] for e in edits])
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mean  # [B, 4, h, w]
        ze = vae.encode(xe).latent_dist.mean  # [B - half, 4, h, w]
    region = latent_region(np.stack([e[2][0] for e in edits]), z.shape[-1])  # edited object, grown
    forward = torch.from_numpy(rng.random(len(edits)) < 0.5)[:, None, None, None]  # edit inside, else source inside
    zs = z[half:]
    inside, outside = torch.where(forward, ze, zs), torch.where(forward, zs, ze)
    composite = outside * (1 - region) + inside * region
    target = torch.where(forward, xe, x[half:])
    return torch.cat([z[:half], composite]), torch.cat([x[:half], target]), outside, region


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--model", required=True, help="a shapes model folder (diffusers layout)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--consistency", type=float, default=0.0,
                    help="weight of the composites' squared change outside the edited region from the decoder's own "
                    "decoding of the outside latent (the decoder's locality itself, not only the match to the image)")
    ap.add_argument("--scenes", type=int, default=8000, help="draw scenes from seeds [0, scenes)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.steps < 1 or args.batch < 2:
        raise SystemExit("--steps must be at least 1 and --batch at least 2")
    if not os.path.isfile(os.path.join(args.model, "model_index.json")):
        raise SystemExit(f"{args.model}: not a diffusers model folder (no model_index.json)")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(args.model, subfolder="vae", torch_dtype=torch.float32)
    if vae.config.scaling_factor != 1:
        raise SystemExit(f"{args.model}: the VAE's scaling_factor is {vae.config.scaling_factor}, expected 1 "
                         "(a shapes model folds its latent normalisation into the weights)")
    vae.requires_grad_(False)
    params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    rng = np.random.default_rng([PAIR_SEED_BASE, args.seed, 7])
    t0 = last = time.time()
    seen = []
    for step in range(1, args.steps + 1):
        for g in opt.param_groups:
            g["lr"] = args.lr * 0.5 * (1 + np.cos(np.pi * (step - 1) / args.steps))
        seeds = rng.integers(0, args.scenes, size=args.batch)
        z, target, outside, region = batch(vae, seeds, rng)
        y = vae.decode(z).sample
        per = (y - target).abs().mean((1, 2, 3)) + ((y - target) ** 2).mean((1, 2, 3))  # [B]
        loss = per.mean()
        half = args.batch // 2
        change = torch.zeros(1)
        if args.consistency > 0:
            with torch.no_grad():
                plain = vae.decode(outside).sample  # what the decoder makes of the outside latent alone
            keep = 1 - torch.nn.functional.interpolate(region, size=y.shape[-2:], mode="nearest")  # [C, 1, H, W]
            change = ((y[half:] - plain) ** 2 * keep).sum((1, 2, 3)) / (3 * keep.sum((1, 2, 3))).clamp_min(1)
            loss = loss + args.consistency * change.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        seen.append((per[:half].mean().item(), per[half:].mean().item(), change.mean().item()))
        if time.time() - last > 30 or step == args.steps:
            last = time.time()
            plain, comp, outside_change = np.mean(seen[-50:], axis=0)
            rate = step / (last - t0)
            log(f"[decoder] step {step}/{args.steps} plain {plain:.4f} composite {comp:.4f} outside change "
                f"{outside_change:.5f} {rate:.2f} steps/s "
                f"elapsed {fmt_time(last - t0)} ETA {fmt_time((args.steps - step) / rate)}")
    tmp = args.out + ".tmp"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    shutil.copytree(args.model, tmp)
    save_networks(tmp, {"vae": vae.eval()})
    with open(os.path.join(tmp, "README.md"), "a") as f:
        f.write(f"""
## VAE decoder fine-tuned for local edits

`python3 -m scripts.demo.finetune_decoder --model <the model above> --out <this folder> --steps {args.steps}
--batch {args.batch} --lr {args.lr} --consistency {args.consistency} --seed {args.seed}` ({(time.time() - t0) / 60:.1f} minutes on cpu with
{args.threads} thread(s)): the encoder frozen (the latents, and so the UNet and text encoder, unchanged), the
decoder trained on plain reconstructions and on composites (one scene's latent on an edited object's coverage,
its edit's elsewhere, decoding to the image whose latent lies on the object). Last 50 steps: plain
{np.mean([s[0] for s in seen[-50:]]):.4f}, composite {np.mean([s[1] for s in seen[-50:]]):.4f} (L1 + L2).
""")
    publish(tmp, args.out)
    log(f"wrote {args.out} in {fmt_time(time.time() - t0)}")


if __name__ == "__main__":
    main()
