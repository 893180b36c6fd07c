"""Training helpers of the shapes demo scripts: logging with ETA, the learning-rate schedule, AdamW groups,
an EMA of the weights and resumable checkpoints."""
import contextlib
import math
import os
import shutil
import time

import numpy as np
import torch

def log(msg):
    print(msg, flush=True)


def fmt_time(seconds):
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class Progress:
    """Prints `[phase] step i/n loss ... elapsed ... ETA ...` every `every` seconds and at the end."""

    def __init__(self, phase, total, start_step=0, every=20.0):
        self.phase, self.total, self.start_step, self.every = phase, total, start_step, every
        self.t0 = time.time()
        self.last = 0.0
        self.losses = []

    def update(self, step, loss, extra=""):
        self.losses.append(loss)
        done = step + 1
        now = time.time()
        if now - self.last < self.every and done != self.total and done != self.start_step + 1:
            return
        self.last = now
        elapsed = now - self.t0
        rate = (done - self.start_step) / max(elapsed, 1e-9)
        eta = (self.total - done) / max(rate, 1e-9)
        recent = float(np.mean(self.losses[-50:]))
        log(f"[{self.phase}] step {done}/{self.total} loss {recent:.5f}{extra} "
            f"{rate:.2f} steps/s elapsed {fmt_time(elapsed)} ETA {fmt_time(eta)}")

    def rate(self, done):
        return (done - self.start_step) / max(time.time() - self.t0, 1e-9)


def lr_at(step, total, peak, warmup):
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


def set_lr(opt, lr):
    for group in opt.param_groups:
        group["lr"] = lr


def param_groups(*models, weight_decay=0.01):
    """AdamW groups: decay on matrices and kernels, none on biases, norms and embeddings."""
    decay, no_decay = [], []
    for model in models:
        for name, p in model.named_parameters():
            (no_decay if p.ndim < 2 or "token_embedding" in name or "position_embedding" in name
             else decay).append(p)
    return [dict(params=decay, weight_decay=weight_decay), dict(params=no_decay, weight_decay=0.0)]


def folder_size(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def param_count(model):
    return sum(p.numel() for p in model.parameters())


class EMA:
    """Exponential moving average of parameters, decay min(max_decay, (1 + n) / (10 + n))."""

    def __init__(self, params, max_decay):
        self.params = list(params)
        self.shadow = [p.detach().clone() for p in self.params]
        self.max_decay = max_decay
        self.updates = 0

    @torch.no_grad()
    def update(self):
        self.updates += 1
        decay = min(self.max_decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1 - decay)

    @contextlib.contextmanager
    def swapped_in(self):
        """The averaged weights in the parameters for the duration of a ``with`` block."""
        saved = [p.detach().clone() for p in self.params]
        self.copy_to_params()
        try:
            yield
        finally:
            with torch.no_grad():
                for p, v in zip(self.params, saved):
                    p.copy_(v)

    @torch.no_grad()
    def copy_to_params(self):
        for s, p in zip(self.shadow, self.params):
            p.copy_(s)

    def state_dict(self):
        return dict(shadow=[s.cpu() for s in self.shadow], updates=self.updates)

    def load_state_dict(self, state):
        for s, v in zip(self.shadow, state["shadow"]):
            s.copy_(v)
        self.updates = state["updates"]


class Checkpoint:
    """`<out>.partial/state.pt` (atomic replace) and `<out>.partial/latents.pt`."""

    def __init__(self, out, minutes):
        self.dir = out.rstrip("/") + ".partial"
        self.every = minutes * 60
        self.last = time.time()

    def path(self, name):
        return os.path.join(self.dir, name)

    def exists(self):
        return os.path.exists(self.path("state.pt"))

    def due(self):
        return time.time() - self.last >= self.every

    def save(self, state, name="state.pt"):
        os.makedirs(self.dir, exist_ok=True)
        tmp = self.path(name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.path(name))
        self.last = time.time()

    def load(self, name="state.pt"):
        return torch.load(self.path(name), map_location="cpu", weights_only=False)

    def clear(self):
        shutil.rmtree(self.dir, ignore_errors=True)
