#!/usr/bin/env python3
"""A Python port of Prompt-to-Prompt's attention controllers (Hertz et al. 2022) as the published null-text
notebook drives them, on diffusers.

Written from the published code's behaviour (google/prompt-to-prompt: ``ptp_utils``, ``seq_aligner`` and the
``null_text_w_ptp`` notebook), with diffusers' UNet underneath through attention processors that expose the
probabilities. What it reproduces on purpose:

* Word swap: the token mapper of ``get_replacement_mapper_``, including its quirk that tokens after the last
  swapped word map to themselves (``mapper[j, j]``) rather than across; a word of k source and l ≠ k target
  tokens spreads each source token over the target tokens with weight 1/l.
* Refinement: Needleman–Wunsch over the token ids (gap 0, match 1, mismatch −1, ties prefer left, then up,
  then diagonal); unaligned target tokens keep their own attention (α = 0).
* Cross-attention replacement on steps [0, int(f·(T + 1))) (per word where asked), reweighting after
  replacement, self-attention injection on steps [int(T·s0), int(T·s1)) at layers of at most
  ``self_max_tokens`` queries (32² for SD's 64² latent).
* Controllers edit only the conditional half of the batch; the stored maps (for local blend) are the
  conditional cross-attention *after* editing, summed over the steps so far.
* Local blend after each step once more than int(0.2·T) steps have run: the chosen words' maps at
  ``blend_tokens`` queries (16² for SD; else the size nearest 16², ``map_tokens``) outside the mid block, averaged over layers and heads, 3×3
  max-pooled, nearest-upsampled, divided by their maximum, thresholded (0.3), OR-ed with the source's mask.

The constants tied to SD's 64×64 latent are parameters here (``self_max_tokens``, ``blend_tokens``), so the
same code runs the tiny fixture models; at SD 1.5 size they take the reference's values.
"""
import math

import numpy as np

import torch
import torch.nn.functional as F


# ---------------------------------------------------------------- prompt bookkeeping

def word_token_positions(text, word, tokenizer):
    """Token positions (BOS = 0) of a word (by index or by text) of a space-separated prompt, found the way
    the reference does: by walking the decoded tokens' lengths against the words' lengths."""
    words = text.split(" ")
    places = [i for i, w in enumerate(words) if w == word] if isinstance(word, str) else [word]
    if not places:
        return []
    pieces = [tokenizer.decode([t]).strip("#") for t in tokenizer.encode(text)][1:-1]
    out, length, ptr = [], 0, 0
    for i, piece in enumerate(pieces):
        length += len(piece)
        if ptr in places:
            out.append(i + 1)
        if length >= len(words[ptr]):
            ptr, length = ptr + 1, 0
    return out


def swap_mapper(source, target, tokenizer, length=77):
    words_s, words_t = source.split(" "), target.split(" ")
    if len(words_s) != len(words_t):
        raise ValueError("a word swap needs prompts with the same number of words")
    swapped = [i for i in range(len(words_t)) if words_t[i] != words_s[i]]
    src = [word_token_positions(source, i, tokenizer) for i in swapped]
    tgt = [word_token_positions(target, i, tokenizer) for i in swapped]
    mapper = np.zeros((length, length))
    i = j = k = 0
    while i < length and j < length:
        if k < len(src) and src[k][0] == i:
            if len(src[k]) == len(tgt[k]):
                mapper[src[k], tgt[k]] = 1
            else:
                for t in tgt[k]:
                    mapper[src[k], t] = 1 / len(tgt[k])
            i, j, k = i + len(src[k]), j + len(tgt[k]), k + 1
        elif k < len(src):
            mapper[i, j] = 1
            i, j = i + 1, j + 1
        else:
            mapper[j, j] = 1
            i, j = i + 1, j + 1
    return torch.from_numpy(mapper).float()


def refinement_mapper(source, target, tokenizer, length=77):
    x, y = tokenizer.encode(source), tokenizer.encode(target)
    score = np.zeros((len(x) + 1, len(y) + 1), dtype=np.int64)
    move = np.zeros((len(x) + 1, len(y) + 1), dtype=np.int64)
    move[0, 1:], move[1:, 0], move[0, 0] = 1, 2, 4
    for i in range(1, len(x) + 1):
        for j in range(1, len(y) + 1):
            left, up = score[i, j - 1], score[i - 1, j]
            diag = score[i - 1, j - 1] + (1 if x[i - 1] == y[j - 1] else -1)
            score[i, j] = max(left, up, diag)
            move[i, j] = 1 if score[i, j] == left else 2 if score[i, j] == up else 3
    pairs, i, j = [], len(x), len(y)
    while i > 0 or j > 0:
        if move[i, j] == 3:
            i, j = i - 1, j - 1
            pairs.append((j, i))
        elif move[i, j] == 1:
            j -= 1
            pairs.append((j, -1))
        elif move[i, j] == 2:
            i -= 1
        else:
            break
    pairs = torch.tensor(pairs[::-1], dtype=torch.int64)
    alphas = torch.ones(length)
    alphas[: len(pairs)] = pairs[:, 1].ne(-1).float()
    mapper = torch.zeros(length, dtype=torch.int64)
    mapper[: len(pairs)] = pairs[:, 1]
    mapper[len(pairs):] = len(y) + torch.arange(length - len(y))
    return mapper, alphas


def cross_alphas(prompts, steps, replace, tokenizer, length=77):
    """[T + 1, targets, 1, 1, 77]: 1 where the target's cross-attention is replaced. ``replace`` is a fraction
    or a dict with "default_" and per-word fractions."""
    replace = replace if isinstance(replace, dict) else {"default_": replace}
    alpha = torch.zeros(steps + 1, len(prompts) - 1, length)

    def fill(fraction, target, tokens=None):
        end = int(fraction * alpha.shape[0])
        tokens = slice(None) if tokens is None else tokens
        alpha[:end, target, tokens] = 1
        alpha[end:, target, tokens] = 0

    for t in range(len(prompts) - 1):
        fill(replace.get("default_", 1.0), t)
    for word, fraction in replace.items():
        if word == "default_":
            continue
        for t in range(1, len(prompts)):
            tokens = word_token_positions(prompts[t], word, tokenizer)
            if tokens:
                fill(fraction, t - 1, tokens)
    return alpha.reshape(steps + 1, len(prompts) - 1, 1, 1, length)


def word_weights(prompts, words, tokenizer, length=77):
    """[targets, 77] attention scales per target from {word: scale} (words of the target prompts)."""
    eq = torch.ones(len(prompts) - 1, length)
    for t in range(1, len(prompts)):
        for word, value in words.items():
            eq[t - 1, word_token_positions(prompts[t], word, tokenizer)] = value
    return eq


# ---------------------------------------------------------------- controller

def map_tokens(sizes, preferred):
    """The query-token count whose maps the blend (and the attention pictures) read: ``preferred`` when a
    layer has it (16x16 on SD), else the size nearest 16x16 = 256 by ratio, the larger on a tie (pivot's
    `mapTokens`: a small model whose latent is 16x16 reads its 16x16 maps, as P2P does on SD)."""
    if preferred in sizes:
        return preferred
    return max(sizes, key=lambda n: (-abs(math.log(n / 256)), n))


class Controller:
    """Replace (``kind="replace"``), refine (``"refine"``) or neither (``None``), optionally reweighted and
    locally blended, for the batch [uncond × B, cond × B] with prompt 0 the source."""

    def __init__(self, prompts, steps, tokenizer, kind, cross_replace=0.8, self_replace=0.4, reweight=None,
                 blend_words=None, blend_threshold=0.3, self_max_tokens=32 ** 2, blend_tokens=16 ** 2):
        self.b = len(prompts)
        self.kind = kind
        self.step = 0
        self.alpha = cross_alphas(prompts, steps, cross_replace, tokenizer)
        s0, s1 = self_replace if isinstance(self_replace, tuple) else (0.0, self_replace)
        self.self_window = (int(steps * s0), int(steps * s1))
        self.self_max_tokens = self_max_tokens
        if kind == "replace":
            self.mapper = torch.stack([swap_mapper(prompts[0], p, tokenizer) for p in prompts[1:]])
        elif kind == "refine":
            maps = [refinement_mapper(prompts[0], p, tokenizer) for p in prompts[1:]]
            self.mapper = torch.stack([m for m, _ in maps])
            self.alphas = torch.stack([a for _, a in maps]).reshape(self.b - 1, 1, 1, -1)
        self.equalizer = word_weights(prompts, reweight, tokenizer) if reweight else None
        self.blend = None
        if blend_words:
            layers = torch.zeros(self.b, 77)
            for i, p in enumerate(prompts):
                for w in blend_words:
                    layers[i, word_token_positions(p, w, tokenizer)] = 1
            self.blend = dict(layers=layers, threshold=blend_threshold, start=int(0.2 * steps), tokens=blend_tokens)
        self.maps = {}   # (place, query tokens) -> list of summed cond cross-attention [B*heads, n, 77] per layer
        self.layer = 0

    def begin_step(self, i):
        self.step = i
        self.layer = 0

    def edited_cross(self, base, target):
        if self.kind == "replace":
            new = torch.einsum("hpw,bwn->bhpn", base, self.mapper)
        elif self.kind == "refine":
            new = base[:, :, self.mapper].permute(2, 0, 1, 3) * self.alphas + target * (1 - self.alphas)
        else:
            new = base[None].expand_as(target)
        if self.equalizer is not None:
            new = new * self.equalizer[:, None, None, :]
        return new

    def __call__(self, probs, is_cross, place):
        half = probs.shape[0] // 2
        cond = probs[half:]
        n, m = cond.shape[1], cond.shape[2]
        a = cond.reshape(self.b, -1, n, m)
        if self.b > 1 and is_cross:
            base, target = a[0], a[1:]
            alpha = self.alpha[self.step]
            a[1:] = self.edited_cross(base, target) * alpha + (1 - alpha) * target
        elif self.b > 1 and self.self_window[0] <= self.step < self.self_window[1] and n <= self.self_max_tokens:
            a[1:] = a[0][None].expand_as(a[1:])
        if is_cross and place != "mid":
            key = (place, n, self.layer)
            self.maps[key] = self.maps.get(key, 0) + cond.detach().clone()
        self.layer += 1
        return probs

    def after_step(self, latents, steps_done):
        """Local blend on latents [B, C, h, w] after ``steps_done`` steps."""
        if self.blend is None or steps_done <= self.blend["start"]:
            return latents
        sizes = sorted({n for (_, n, _) in self.maps})
        n = map_tokens(sizes, self.blend["tokens"])
        side = int(round(n ** 0.5))
        maps = [v.reshape(self.b, -1, 1, side, side, 77) for (_, k, _), v in sorted(self.maps.items()) if k == n]
        maps = torch.cat(maps, dim=1)
        m = (maps * self.blend["layers"].reshape(self.b, 1, 1, 1, 1, 77)).sum(-1).mean(1)
        m = F.max_pool2d(m, (3, 3), (1, 1), padding=(1, 1))
        m = F.interpolate(m, size=latents.shape[2:])
        m = m / m.amax(dim=(2, 3), keepdim=True)
        mask = m.gt(self.blend["threshold"])
        mask = (mask[:1] | mask).float()
        return latents[:1] + mask * (latents - latents[:1])


class Processor:
    """A diffusers attention processor that materialises the probabilities and hands them to a controller."""

    def __init__(self, controller, place):
        self.controller = controller
        self.place = place

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        is_cross = encoder_hidden_states is not None
        context = encoder_hidden_states if is_cross else hidden_states
        q = attn.head_to_batch_dim(attn.to_q(hidden_states))
        k = attn.head_to_batch_dim(attn.to_k(context))
        v = attn.head_to_batch_dim(attn.to_v(context))
        probs = attn.get_attention_scores(q, k, None)
        probs = self.controller(probs, is_cross, self.place)
        out = attn.batch_to_head_dim(torch.bmm(probs, v))
        return attn.to_out[1](attn.to_out[0](out))


def install(unet, controller):
    """Routes every attention layer of ``unet`` through ``controller``."""
    procs = {}
    for name in unet.attn_processors.keys():
        place = "down" if name.startswith("down_blocks") else "mid" if name.startswith("mid_block") else "up"
        procs[name] = Processor(controller, place)
    unet.set_attn_processor(procs)


@torch.no_grad()
def edit(unet, scheduler, x_t, prompt_embeddings, nulls, controller, guidance=7.5):
    """The notebook's rendering loop: x_T shared by every prompt, ∅_i as each prompt's unconditional context
    at step i, guidance, a DDIM step (η = 0), then the controller's step callback (local blend)."""
    b = prompt_embeddings.shape[0]
    latents = x_t.expand(b, *x_t.shape[1:]).clone()
    install(unet, controller)
    for i, t in enumerate(scheduler.timesteps):
        controller.begin_step(i)
        context = torch.cat([nulls[i].expand(*prompt_embeddings.shape), prompt_embeddings])
        out = unet(torch.cat([latents] * 2), t, encoder_hidden_states=context).sample
        uncond, cond = out.chunk(2)
        latents = scheduler.step(uncond + guidance * (cond - uncond), t, latents).prev_sample
        latents = controller.after_step(latents, i + 1)
    return latents
