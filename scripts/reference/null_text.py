#!/usr/bin/env python3
"""A Python port of the published Null-text Inversion algorithm (Mokady et al. 2022), on diffusers.

This is the reference pivot is checked against (docs/ALGORITHMS.md §4): written from the paper and the
published notebook's behaviour, with diffusers' DDIMScheduler, UNet2DConditionModel and CLIP text encoder
underneath. It runs on any diffusers folder (the tiny fixture models in CI-free scripts, SD 1.5 in the
full-size comparison).

* ``ddim_inversion(z0, cond)``: the pivot trajectory z*_0 … z*_T. The UNet sees label t while z sits at
  level t − 1000/T (the reference's off-by-one, reproduced on purpose).
* ``null_text_optimization(latents, cond, uncond)``: per-step null embeddings with a fresh Adam per outer
  step, lr 1e-2·(1 − i/100), up to ``inner_steps`` iterations, early stop when loss < 1e-5 + i·2e-5, and the
  running latent advanced with the final embedding (not snapped back to the pivot).
* v-prediction models: every network output is converted to ε at the level the latent sits at
  (ε = √a·v + √(1−a)·z, as diffusers' DDIMInverseScheduler does) before the DDIM formulas.
"""
import torch
import torch.nn.functional as F


class Reference:
    def __init__(self, unet, scheduler, steps, guidance=7.5):
        self.unet = unet
        self.scheduler = scheduler
        self.steps = steps
        self.guidance = guidance
        scheduler.set_timesteps(steps)
        self.stride = scheduler.config.num_train_timesteps // steps

    def alpha(self, t):
        return self.scheduler.alphas_cumprod[t] if t >= 0 else self.scheduler.final_alpha_cumprod

    def eps(self, z, t, context):
        return self.unet(z, t, encoder_hidden_states=context).sample

    def to_eps(self, out, z, a):
        """ε from a network output at latent z sitting at level ᾱ = a."""
        if self.scheduler.config.prediction_type == "v_prediction":
            return a ** 0.5 * out + (1 - a) ** 0.5 * z
        return out

    def next_step(self, eps, t, z):
        """One inversion step from level t − stride (label t) up to level t."""
        cur = min(t - self.stride, 999)
        a, a_next = self.alpha(cur), self.scheduler.alphas_cumprod[t]
        x0 = (z - (1 - a) ** 0.5 * eps) / a ** 0.5
        return a_next ** 0.5 * x0 + (1 - a_next) ** 0.5 * eps

    def prev_step(self, eps, t, z):
        """One DDIM step from level t down to level t − stride."""
        a, a_prev = self.scheduler.alphas_cumprod[t], self.alpha(t - self.stride)
        x0 = (z - (1 - a) ** 0.5 * eps) / a ** 0.5
        return a_prev ** 0.5 * x0 + (1 - a_prev) ** 0.5 * eps

    @torch.no_grad()
    def ddim_inversion(self, z0, cond):
        latents = [z0]
        z = z0
        timesteps = self.scheduler.timesteps
        for i in range(self.steps):
            t = int(timesteps[len(timesteps) - i - 1])
            a = self.alpha(min(t - self.stride, 999))
            z = self.next_step(self.to_eps(self.eps(z, t, cond), z, a), t, z)
            latents.append(z)
        return latents

    def null_text_optimization(self, latents, cond, uncond, inner_steps=10, epsilon=1e-5):
        """Returns the null embeddings, and per outer step the inner iterations run and their losses."""
        nulls, iterations, losses = [], [], []
        z = latents[-1]
        u = uncond.clone()
        for i in range(self.steps):
            u = u.clone().detach().requires_grad_(True)
            opt = torch.optim.Adam([u], lr=1e-2 * (1.0 - i / 100.0))
            target = latents[len(latents) - i - 2]
            t = int(self.scheduler.timesteps[i])
            with torch.no_grad():
                eps_c = self.eps(z, t, cond)
            step_losses = []
            for _ in range(inner_steps):
                eps_u = self.eps(z, t, u)
                eps = self.to_eps(eps_u + self.guidance * (eps_c - eps_u), z, self.alpha(t))
                loss = F.mse_loss(self.prev_step(eps, t, z), target)
                opt.zero_grad()
                loss.backward()
                opt.step()
                step_losses.append(loss.item())
                if loss.item() < epsilon + i * 2e-5:
                    break
            iterations.append(len(step_losses))
            losses.append(step_losses)
            nulls.append(u.detach().clone())
            with torch.no_grad():
                eps_u = self.eps(z, t, u)
                z = self.prev_step(self.to_eps(eps_u + self.guidance * (eps_c - eps_u), z, self.alpha(t)), t, z)
        return nulls, iterations, losses
