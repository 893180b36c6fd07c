"""Writing a shapes demo model: the diffusers folder (fp16 safetensors, written aside and renamed into
place) and the self-check that generates captions with diffusers and scores their colours."""
import copy
import json
import os
import shutil

import torch

from scripts.demo import shapes_world as world
from scripts.demo.shapes_model import CHECK_CAPTIONS, MODEL_INDEX, SCHEDULER_CONFIG, write_tokenizer
from scripts.demo.shapes_vae import fold_channels

def export(out, vae, text_encoder, unet, data):
    """Write the diffusers folder (fp16 safetensors) atomically: into `<out>.tmp`, then renamed."""
    tmp = out.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, "scheduler"))
    with open(os.path.join(tmp, "model_index.json"), "w") as f:
        json.dump(MODEL_INDEX, f, indent=2)
        f.write("\n")
    with open(os.path.join(tmp, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump(SCHEDULER_CONFIG, f, indent=2)
        f.write("\n")
    write_tokenizer(os.path.join(tmp, "tokenizer"))
    vae = copy.deepcopy(vae).cpu().float()
    fold_channels(vae, data["channel_mean"].cpu().float(), data["transform"].cpu().float(),
                  data["inverse"].cpu().float())
    vae.register_to_config(scaling_factor=1.0)
    save_networks(tmp, dict(vae=vae, text_encoder=text_encoder, unet=unet))
    publish(tmp, out)


def save_networks(folder, networks):
    """Save each network (name -> model) as fp16 safetensors into ``folder``/name, replacing what is there."""
    for name, model in networks.items():
        shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
        half = copy.deepcopy(model).cpu().to(torch.float16)
        half.save_pretrained(os.path.join(folder, name), safe_serialization=True)
    if "text_encoder" in networks:
        # transformers records the saved dtype and would then *load* the text encoder in fp16 next to an
        # fp32 UNet; declare fp32 (the dtype pipelines compute in), the file stays fp16
        config_path = os.path.join(folder, "text_encoder", "config.json")
        with open(config_path) as f:
            config = json.load(f)
        config["dtype"] = "float32"
        with open(config_path, "w") as f:
            json.dump(config, f, indent=2, sort_keys=True)
            f.write("\n")


def publish(tmp, out):
    """Make the files of ``tmp`` world-readable and rename it to ``out`` (replacing it)."""
    for d, _, files in os.walk(tmp):
        for f in files:
            os.chmod(os.path.join(d, f), 0o644)  # the libraries write weights 0600
    if os.path.exists(out):
        shutil.rmtree(out)
    os.replace(tmp, out)


@torch.no_grad()
def self_check(out, n, seed):
    """Generate ``n`` check captions with diffusers; returns (hits, rows, grid image)."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline
    from diffusers.utils import logging as diffusers_logging
    from PIL import Image

    diffusers_logging.disable_progress_bar()
    pipe = StableDiffusionPipeline.from_pretrained(out, safety_checker=None, requires_safety_checker=False)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    captions = [CHECK_CAPTIONS[i % len(CHECK_CAPTIONS)] for i in range(n)]
    gen = torch.Generator().manual_seed(seed)
    images = pipe(captions, num_inference_steps=25, guidance_scale=7.5, generator=gen).images
    hits, rows = score_colours(captions, images)
    side = world.IMAGE_SIZE
    grid = Image.new("RGB", (side * n, side))
    for i, image in enumerate(images):
        grid.paste(image.resize((side, side)), (side * i, 0))
    return hits, rows, grid


def score_colours(captions, images):
    """How many images show exactly their caption's object colours (`shapes_world.object_colours`), and one
    Markdown line per image."""
    hits, rows = 0, []
    for caption, image in zip(captions, images):
        words = caption.split()
        background = words[-2]
        wanted = sorted(words[i] for i in range(1, len(words) - 4, 4))
        got = world.object_colours(image, background, len(wanted))
        hits += got == wanted
        rows.append(f"- `{caption}`: {', '.join(got) or 'no object found'} {'(ok)' if got == wanted else '(wrong)'}")
    return hits, rows
