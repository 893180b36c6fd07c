#!/usr/bin/env python3
"""Fixtures for textual-inversion embeddings: files in every format users have, and what diffusers'
``load_textual_inversion`` + the text encoder make of prompts that use them.

On the sd1-tiny fixture model (text width 32, tiny tokenizer) writes to
``Tests/PivotModelsTests/Fixtures/embeddings/``:

* ``cat-toy.safetensors`` — diffusers, ``{"<cat-toy>": [2, 32]}`` (two vectors: ``<cat-toy> <cat-toy>_1``)
* ``dog-toy.bin`` — diffusers through ``torch.save``, ``{"<dog-toy>": [32]}`` (one vector, 1-D)
* ``style.pt`` — Automatic1111, ``string_to_param {"*": Parameter [3, 32]}``, ``name`` "a1-style"
* ``old-style.pt`` — Automatic1111 in torch's legacy (pre-zip) format, [1, 32], ``name`` "old-style"
* ``kohya-thing.safetensors`` — kohya, ``{"emb_params": [2, 32]}``; the token is the file name
* ``wide.safetensors`` — a [1, 768] vector (an SD 1.x embedding for this 32-wide model: refused)
* ``two-keys.safetensors`` — two entries (in none of the formats: refused)
* ``reference.safetensors`` — ``last_hidden_state`` [B, 77, 32] of ``PROMPTS`` (metadata ``prompts``, one per
  line) with all five embeddings loaded into diffusers' pipeline under the tokens pivot derives.

Run from the package root after make_fixtures.py:
    python3 scripts/make_embedding_fixtures.py
"""
import os
import warnings

import torch

torch.set_num_threads(2)
warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

from diffusers import StableDiffusionPipeline  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "Tests/PivotModelsTests/Fixtures/sd1-tiny/model")
OUT = os.path.join(ROOT, "Tests/PivotModelsTests/Fixtures/embeddings")
PROMPTS = [
    "a photo of <cat-toy> on a red circle",
    "<dog-toy> and <cat-toy> in a1-style",
    "kohya-thing old-style <cat-toy>",
    "a red circle",
]


def main():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(7)

    def vec(*shape):
        return torch.randn(*shape, generator=g) * 0.5

    files = {}  # path -> token diffusers must be given
    p = os.path.join(OUT, "cat-toy.safetensors")
    save_file({"<cat-toy>": vec(2, 32)}, p)
    files[p] = None
    p = os.path.join(OUT, "dog-toy.bin")
    torch.save({"<dog-toy>": vec(32)}, p)
    files[p] = None
    p = os.path.join(OUT, "style.pt")
    torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": torch.nn.Parameter(vec(3, 32))},
                "name": "a1-style", "step": 500, "sd_checkpoint": None, "sd_checkpoint_name": None}, p)
    files[p] = None
    p = os.path.join(OUT, "old-style.pt")
    torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": torch.nn.Parameter(vec(1, 32))},
                "name": "old-style", "step": 100}, p, _use_new_zipfile_serialization=False)
    files[p] = None
    p = os.path.join(OUT, "kohya-thing.safetensors")
    save_file({"emb_params": vec(2, 32)}, p)
    files[p] = "kohya-thing"
    save_file({"w": vec(1, 768)}, os.path.join(OUT, "wide.safetensors"))
    save_file({"a": vec(1, 32), "b": vec(1, 32)}, os.path.join(OUT, "two-keys.safetensors"))

    pipe = StableDiffusionPipeline.from_pretrained(MODEL, safety_checker=None, requires_safety_checker=False)
    for path, token in files.items():
        if path.endswith(".pt") or path.endswith(".bin"):
            state = torch.load(path, weights_only=True)
            pipe.load_textual_inversion(state, token=token)
        else:
            pipe.load_textual_inversion(path, token=token)
    states = []
    for prompt in PROMPTS:
        text = pipe.maybe_convert_prompt(prompt, pipe.tokenizer)
        ids = pipe.tokenizer(text, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        with torch.no_grad():
            states.append(pipe.text_encoder(ids).last_hidden_state)
        print(prompt, "->", text)
    save_file({"last_hidden_state": torch.cat(states).contiguous()}, os.path.join(OUT, "reference.safetensors"),
              metadata={"prompts": "\n".join(PROMPTS)})


if __name__ == "__main__":
    main()
