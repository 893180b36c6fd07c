"""The shapes demo model's architecture and its training data: the diffusers and transformers configs of
its three networks, the CLIP tokenizer, and the world's scenes as tensors (images, token ids, the positions
and regions of the supervised words, region coverage at the latent's 16x16).

Scene seeds: the UNet set is [0, scenes), the VAE stream [10^7, ...), held-out scenes from 9 x 10^8; seeds in
[10^6, 10^7) are never trained on (the benchmarks use them).
"""
import time

import numpy as np
import torch

from scripts.demo import shapes_world as world
from scripts.demo.shapes_training import fmt_time, log
from scripts.fixtures.make_tokenizer_fixtures import EOT, RESOURCE, clip_vocab, hub_configs, write_configs, write_vocab

VAE_CONFIG = dict(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=[32, 64, 64, 64],
    down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
    layers_per_block=1, norm_num_groups=16, sample_size=128, act_fn="silu")
LATENT_FACTOR = 8  # 2^(levels - 1)
LATENT_SIDE = 128 // LATENT_FACTOR
CLIP_CONFIG = dict(
    vocab_size=49408, hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=256,
    max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=64,
    # SD 1.5's text encoder config values
    bos_token_id=0, eos_token_id=2, pad_token_id=1)
UNET_CONFIG = dict(
    sample_size=16, in_channels=4, out_channels=4, block_out_channels=[64, 128],
    down_block_types=["CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    layers_per_block=1, cross_attention_dim=64, attention_head_dim=4, norm_num_groups=32)
SCHEDULER_CONFIG = {
    "_class_name": "DDIMScheduler", "_diffusers_version": "0.42.1",
    "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False,
    "clip_sample_range": 1.0, "dynamic_thresholding_ratio": 0.995, "num_train_timesteps": 1000,
    "prediction_type": "epsilon", "rescale_betas_zero_snr": False, "sample_max_value": 1.0,
    "set_alpha_to_one": False, "steps_offset": 1, "thresholding": False, "timestep_spacing": "leading",
    "trained_betas": None}
MODEL_INDEX = {
    "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1",
    "feature_extractor": [None, None], "image_encoder": [None, None], "requires_safety_checker": False,
    "safety_checker": [None, None], "scheduler": ["diffusers", "DDIMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}

# Disjoint scene-seed ranges: UNet training set [0, scenes), VAE training stream, held-out scenes.
VAE_SEED_BASE = 10_000_000
HELDOUT_SEED_BASE = 900_000_000
CHECK_CAPTIONS = [
    "a red circle on a white background", "a blue square and a yellow circle on a black background",
    "a green triangle on a gray background", "a yellow circle and a purple square on a black background",
    "a purple square on a white background", "a orange triangle and a blue circle on a white background",
    "a blue circle on a gray background", "a red triangle and a green square on a gray background"]
# The words whose cross-attention the token loss supervises, at most this many per caption (two objects'
# colour and shape words, and the background's colour word), with the regions they name.
SLOTS = 5


def images_to_tensor(images):
    """PIL RGB images -> float32 [N, 3, H, W] in [-1, 1]."""
    a = np.stack([np.asarray(im, dtype=np.float32) for im in images]) / 127.5 - 1.0
    return torch.from_numpy(a).permute(0, 3, 1, 2).contiguous()


def encode_image(vae, image):
    """The scaled latent mean [1, 4, h, w] of a PIL RGB image."""
    with torch.no_grad():
        return vae.encode(images_to_tensor([image])).latent_dist.mean * vae.config.scaling_factor


def decode_image(vae, z):
    """The uint8 [H, W, 3] image of the first latent of ``z`` (scaled)."""
    with torch.no_grad():
        x = vae.decode(z / vae.config.scaling_factor).sample
    return ((x[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().byte().numpy()


def render_batch(seeds, crop=None, rng=None):
    """Render scenes; with ``crop`` a random crop (offsets multiples of the latent factor, on the latent grid)."""
    x = images_to_tensor([world.render(int(s))[0] for s in seeds])
    if crop:
        side, f = x.shape[-1], LATENT_FACTOR
        out = torch.empty(x.shape[0], 3, crop, crop)
        for i in range(x.shape[0]):
            oy, ox = (int(v) * f for v in rng.integers(0, (side - crop) // f + 1, size=2))
            out[i] = x[i, :, oy:oy + crop, ox:ox + crop]
        x = out
    return x


def write_tokenizer(folder):
    """The real CLIP tokenizer in the SD 1.x hub layout (vocab.json, merges.txt and the two configs)."""
    with open(RESOURCE, encoding="utf-8") as f:
        merges = f.read().splitlines()
    write_vocab(folder, clip_vocab(merges), merges)
    write_configs(folder, hub_configs(EOT))


def load_tokenizer():
    import tempfile
    from transformers import CLIPTokenizer
    with tempfile.TemporaryDirectory() as folder:
        write_tokenizer(folder)
        return CLIPTokenizer.from_pretrained(folder)


def tokenize(tokenizer, captions):
    """Token ids [len(captions), 77] (int64) of captions, padded as SD pads them."""
    return tokenizer(captions, padding="max_length", max_length=77, truncation=True,
                     return_tensors="pt").input_ids


def word_slots(tokenizer, caption, info):
    """Token positions [SLOTS] (-1 unused) and regions [SLOTS] (0, 1: objects, 2: background) of a scene.

    Checks that every word of the caption is one token (so word i is token i + 1), as the world promises.
    """
    ids = tokenizer(caption).input_ids
    if len(ids) != len(caption.split()) + 2:
        raise ValueError(f"{caption!r}: a word of the world is not one CLIP token")
    pos, reg = [-1] * SLOTS, [0] * SLOTS
    for j, (word, region) in enumerate(world.word_regions(info)):
        pos[j], reg[j] = word + 1, 2 if region == "background" else region
    return pos, reg


def region_masks(info, side=LATENT_SIDE):
    """[3, side, side] coverage of object 0, object 1 (zero when absent) and the background, block-averaged."""
    n = info["image_size"] // side
    out = np.zeros((3, side, side), dtype=np.float32)
    for k in range(len(info["objects"])):
        out[k] = info["objects"][k]["mask"].reshape(side, n, side, n).mean(axis=(1, 3))
    out[2] = (1.0 - info["mask"]).reshape(side, n, side, n).mean(axis=(1, 3))
    return out


def build_models(seed, vae_groups=VAE_CONFIG["norm_num_groups"], unet_groups=UNET_CONFIG["norm_num_groups"]):
    """The three networks, freshly initialised from ``seed``; ``vae_groups`` and ``unet_groups`` are their
    GroupNorm group counts (`norm_num_groups`; each must divide every level's channel count)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    vae = AutoencoderKL(**dict(VAE_CONFIG, norm_num_groups=vae_groups))
    torch.manual_seed(seed + 1)
    text_encoder = CLIPTextModel(CLIPTextConfig(**CLIP_CONFIG))
    torch.manual_seed(seed + 2)
    unet = UNet2DConditionModel(**dict(UNET_CONFIG, norm_num_groups=unet_groups))
    return vae, text_encoder, unet


CONTEXTLESS_HELP = ("zero and freeze the text encoder's attention output projections (`make_contextless`), so each "
                    "token's embedding depends on that token and its position only: swapping one word then changes "
                    "one embedding")


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


@torch.no_grad()
def encode_scenes(vae, seeds, device, tokenizer, batch=64):
    """The scenes' unscaled latent means [N, 4, 16, 16] (CPU, float32), token ids [N, 77], supervised word
    positions and regions [N, SLOTS] and region masks [N, 3, 16, 16] (float16)."""
    latents, ids, pos, reg, masks = [], [], [], [], []
    t0 = time.time()
    last = t0
    for i in range(0, len(seeds), batch):
        rendered = [world.render(int(s)) for s in seeds[i:i + batch]]
        x = images_to_tensor([r[0] for r in rendered]).to(device)
        latents.append(vae.encode(x).latent_dist.mean.float().cpu())
        ids.append(tokenize(tokenizer, [r[1] for r in rendered]))
        for _, caption, info in rendered:
            p, g = word_slots(tokenizer, caption, info)
            pos.append(p)
            reg.append(g)
            masks.append(region_masks(info))
        if time.time() - last > 20 or i + batch >= len(seeds):
            last = time.time()
            done = min(i + batch, len(seeds))
            rate = done / (last - t0)
            log(f"[encode] {done}/{len(seeds)} scenes, {rate:.1f} scenes/s, "
                f"elapsed {fmt_time(last - t0)} ETA {fmt_time((len(seeds) - done) / rate)}")
    return dict(latents=torch.cat(latents), ids=torch.cat(ids), pos=torch.tensor(pos), reg=torch.tensor(reg),
                masks=torch.from_numpy(np.stack(masks)).half()), len(seeds) / (time.time() - t0)


def alphas_cumprod():
    from diffusers import DDIMScheduler
    return DDIMScheduler.from_config(SCHEDULER_CONFIG).alphas_cumprod.float()
