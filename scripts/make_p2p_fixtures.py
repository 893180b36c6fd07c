#!/usr/bin/env python3
"""Fixtures for Prompt-to-Prompt edits, from the Python reference (scripts/reference/p2p.py).

From the null-text inversion fixture (Fixtures/inversion/reference.safetensors: x_T and the per-step null
embeddings of "a red circle" on sd1-tiny, 10 steps), renders each case below with the reference controllers
and writes ``Tests/PivotModelsTests/Fixtures/inversion/p2p.safetensors``: one tensor per case, the final
latents [B, 4, 16, 16] (prompt 0 the source). The Swift test (PromptToPromptParityTests) has the same table.

sd1-tiny's latent is 16×16, so the SD-size constants scale: self-attention injection at layers of at most
(16/2)² = 64 queries, local blend on (16/4)² = 16-query maps, or, as this model has none, its smallest
down/up cross-attention (256 queries). A random model's maps are nearly uniform (every value within 10% of
the maximum), so the blend cases use thresholds 0.95–0.96 to leave part of the latent to the source.

Run from the package root after make_inversion_fixtures.py:
    python3 scripts/make_p2p_fixtures.py
"""
import os
import sys
import warnings

import torch

torch.set_num_threads(2)
warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference"))

from diffusers import DDIMScheduler, UNet2DConditionModel  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import CLIPTextModel, CLIPTokenizer  # noqa: E402

from p2p import Controller, edit  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "Tests/PivotModelsTests/Fixtures/sd1-tiny/model")
OUT = os.path.join(ROOT, "Tests/PivotModelsTests/Fixtures/inversion")
SOURCE = "a red circle"

# name: (targets, kind, options)
CASES = {
    "replace": (["a blue circle"], "replace", dict(cross_replace=0.8, self_replace=0.4)),
    "replace2": (["a blue circle", "a green circle"], "replace", dict(cross_replace=0.6, self_replace=(0.1, 0.5))),
    "refine": (["a red circle on grey"], "refine", dict(cross_replace=0.8, self_replace=0.4)),
    "reweight": (["a red circle"], None, dict(cross_replace=0.8, self_replace=0.4, reweight={"red": 3.0})),
    "replace_reweight": (["a blue circle"], "replace",
                         dict(cross_replace={"default_": 0.8, "blue": 0.4}, self_replace=0.4, reweight={"blue": 2.0})),
    "blend": (["a blue circle"], "replace", dict(cross_replace=0.8, self_replace=0.4, blend_words=["circle"], blend_threshold=0.95)),
    "refine_blend": (["a big red circle"], "refine",
                     dict(cross_replace=0.8, self_replace=0.4, blend_words=["big", "red"], blend_threshold=0.96)),
}


def main():
    ref = load_file(os.path.join(OUT, "reference.safetensors"))
    steps = ref["nulls"].shape[0]
    tok = CLIPTokenizer.from_pretrained(os.path.join(MODEL, "tokenizer"))
    te = CLIPTextModel.from_pretrained(os.path.join(MODEL, "text_encoder")).eval()
    unet = UNet2DConditionModel.from_pretrained(os.path.join(MODEL, "unet")).eval()
    scheduler = DDIMScheduler.from_pretrained(os.path.join(MODEL, "scheduler"))
    scheduler.set_timesteps(steps)
    side = ref["latents"].shape[-1]

    def embed(texts):
        ids = tok(texts, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        with torch.no_grad():
            return te(ids).last_hidden_state

    x_t = ref["latents"][steps:steps + 1]
    nulls = ref["nulls"].unsqueeze(1)
    out = {}
    for name, (targets, kind, options) in CASES.items():
        prompts = [SOURCE] + targets
        controller = Controller(prompts, steps, tok, kind, self_max_tokens=(side // 2) ** 2,
                                blend_tokens=(side // 4) ** 2, **options)
        out[name] = edit(unet, scheduler, x_t, embed(prompts), nulls, controller).contiguous()
        print(name, [round(float((out[name][i] - out[name][0]).abs().max()), 4) for i in range(1, len(prompts))])
    save_file(out, os.path.join(OUT, "p2p.safetensors"), metadata={"source": SOURCE, "steps": str(steps)})


if __name__ == "__main__":
    main()
