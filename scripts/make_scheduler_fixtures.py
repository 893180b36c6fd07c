#!/usr/bin/env python3
"""Golden fixtures for pivot's DDIM scheduler (Sources/PivotDiffusion), from diffusers' `DDIMScheduler`.

Writes Tests/PivotDiffusionTests/Fixtures/scheduler.json with
- "schedules": for several configs (diffusers keyword arguments), the FNV-1a hash of the fp32 bit patterns of
  `betas` and `alphas_cumprod`, the bits of a subset of `alphas_cumprod`, their float64 sum, and
  `final_alpha_cumprod` ("bitwise": false where torch.sqrt is involved, see below);
- "timesteps": `set_timesteps(T).timesteps` in full for T in {1, 10, 50, 999} and, for every T in 1…1000, a hash per
  block of 50 consecutive T of the words [len, t_0, t_1, …] of each list (catches any off-by-one in NumPy's
  float arange/linspace/round), for each spacing and steps_offset 0 and 1;
- "steps": `step()` on small random fp32 tensors: inputs and outputs (prev_sample, pred_original_sample) as bit
  patterns, for epsilon, v_prediction and sample prediction, clip_sample on and off, set_alpha_to_one on and
  off, the first, a middle and the last step (prev timestep < 0), η > 0 with given noise, and
  use_clipped_model_output. `step()` takes square roots (`** 0.5`), which PyTorch computes with MKL's vsSqrt
  (within 1 ulp, not correctly rounded, processor-dependent), so these are compared within 1e-6, not bitwise.

Needs torch==2.13.0+cpu and diffusers==0.42.1 (README.md):
    python3 scripts/make_scheduler_fixtures.py [--out Tests/PivotDiffusionTests/Fixtures/scheduler.json]
"""
import argparse
import json
import math
import os
import sys

SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", set_alpha_to_one=False,
          steps_offset=1, clip_sample=False)
SCHEDULES = {
    "sd": SD,
    "sd-offset0": dict(SD, steps_offset=0),
    "diffusers-default": {},
    "squaredcos": dict(beta_schedule="squaredcos_cap_v2"),
    "zero-snr": dict(SD, rescale_betas_zero_snr=True, timestep_spacing="trailing", prediction_type="v_prediction"),
    "linear-37": dict(num_train_timesteps=37, beta_start=0.001, beta_end=0.03),
    "scaled-1001": dict(num_train_timesteps=1001, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear"),
    "trained": dict(num_train_timesteps=10, trained_betas=[0.01 * (i + 1) for i in range(10)], set_alpha_to_one=False),
}
STEP_CASES = [
    # (schedule, overrides, T, which timesteps, eta, use_clipped_model_output, scale of the sample)
    ("sd", {}, 50, "first,middle,last", 0.0, False, 1.0),
    ("sd", {"steps_offset": 0}, 50, "first,last", 0.0, False, 1.0),
    ("sd", {"clip_sample": True}, 10, "first,middle,last", 0.0, False, 3.0),
    ("sd", {"clip_sample": True, "clip_sample_range": 0.5, "set_alpha_to_one": True}, 10, "middle,last", 0.0, False, 3.0),
    ("sd", {"prediction_type": "v_prediction"}, 50, "first,middle,last", 0.0, False, 1.0),
    ("sd", {"prediction_type": "v_prediction", "clip_sample": True, "set_alpha_to_one": True}, 10,
     "first,middle,last", 0.0, False, 3.0),
    ("sd", {"prediction_type": "sample"}, 10, "first,last", 0.0, False, 1.0),
    ("sd", {"clip_sample": True}, 10, "middle", 0.0, True, 3.0),
    ("sd", {}, 50, "middle", 0.5, False, 1.0),
    ("sd", {"timestep_spacing": "trailing"}, 10, "first,last", 0.0, False, 1.0),
    ("sd", {"timestep_spacing": "linspace"}, 7, "first,middle,last", 0.0, False, 1.0),
    ("diffusers-default", {}, 20, "first,last", 0.0, False, 2.0),
    ("zero-snr", {}, 10, "first,middle,last", 0.0, False, 1.0),
]
SHAPE = [2, 4, 1, 3]


def fnv1a64(words):
    h = 0xCBF29CE484222325
    for w in words:
        h ^= int(w) & 0xFFFFFFFF          # negative timesteps as their 32-bit two's complement
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def bits(t, np):
    return [int(b) for b in t.detach().reshape(-1).contiguous().numpy().view(np.uint32)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..",
                                                   "Tests/PivotDiffusionTests/Fixtures/scheduler.json"))
    args = ap.parse_args()
    import numpy as np
    import torch
    import diffusers
    from diffusers import DDIMScheduler
    if not torch.__version__.startswith("2.13.0") or diffusers.__version__ != "0.42.1":
        sys.exit(f"make_scheduler_fixtures: needs torch 2.13.0 and diffusers 0.42.1 "
                 f"(found {torch.__version__}, {diffusers.__version__}); see README.md")

    schedules = []
    for name, cfg in SCHEDULES.items():
        s = DDIMScheduler(**cfg)
        ac = s.alphas_cumprod
        n = ac.numel()
        idx = sorted(set(range(0, n, max(1, n // 40))) | {n - 3, n - 2, n - 1} | {1, 2})
        idx = [i for i in idx if 0 <= i < n]
        acb = bits(ac, np)
        schedules.append({
            # rescale_betas_zero_snr calls torch.sqrt, which on CPU is MKL's vsSqrt: within 1 ulp of the correctly
            # rounded root but not equal to it (and dependent on the processor's rsqrt estimate), so only those
            # schedules are compared with a tolerance instead of bit for bit.
            "name": name, "config": cfg, "bitwise": not cfg.get("rescale_betas_zero_snr", False),
            "betas_fnv1a64": fnv1a64(bits(s.betas, np)), "alphas_cumprod_fnv1a64": fnv1a64(acb),
            "alphas_cumprod_sum": math.fsum(float(v) for v in ac.tolist()),
            "index": idx, "alphas_cumprod_bits": [acb[i] for i in idx],
            "final_alpha_cumprod_bits": bits(torch.as_tensor(s.final_alpha_cumprod, dtype=torch.float32), np)[0],
        })

    timesteps = []
    for spacing in ("leading", "trailing", "linspace"):
        for offset in (0, 1):
            cfg = dict(SD, timestep_spacing=spacing, steps_offset=offset)
            s = DDIMScheduler(**cfg)
            full = {}
            block_hashes = []
            words = []
            for t in range(1, 1001):
                s.set_timesteps(t)
                ts = [int(v) for v in s.timesteps.tolist()]
                words += [len(ts)] + ts
                if t % 50 == 0:
                    block_hashes.append(fnv1a64(words))
                    words = []
                if t in (1, 10, 50, 999):
                    full[str(t)] = ts
            timesteps.append({"config": cfg, "full": full, "block_hashes": block_hashes})

    gen = torch.Generator().manual_seed(1234)
    steps = []
    for sched, over, T, which, eta, clipped_out, scale in STEP_CASES:
        cfg = dict(SCHEDULES[sched], **over)
        s = DDIMScheduler(**cfg)
        s.set_timesteps(T)
        ts = [int(v) for v in s.timesteps.tolist()]
        picks = {"first": ts[0], "middle": ts[len(ts) // 2], "last": ts[-1]}
        for w in which.split(","):
            t = picks[w]
            model_output = torch.randn(SHAPE, generator=gen) * 1.5
            sample = torch.randn(SHAPE, generator=gen) * scale
            noise = torch.randn(SHAPE, generator=gen) if eta > 0 else None
            out = s.step(model_output, t, sample, eta=eta, use_clipped_model_output=clipped_out,
                         variance_noise=noise, return_dict=True)
            case = {"config": cfg, "steps": T, "timestep": t, "prev_timestep": t - s.config.num_train_timesteps // T,
                    "eta": eta, "use_clipped_model_output": clipped_out, "shape": SHAPE,
                    "model_output": bits(model_output, np), "sample": bits(sample, np),
                    "prev_sample": bits(out.prev_sample, np), "pred_original_sample": bits(out.pred_original_sample, np)}
            if noise is not None:
                case["variance_noise"] = bits(noise, np)
            steps.append(case)

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"torch": torch.__version__, "diffusers": diffusers.__version__, "schedules": schedules,
                   "timesteps": timesteps, "steps": steps}, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {len(schedules)} schedules, {len(timesteps)} timestep tables, {len(steps)} steps to "
          f"{os.path.normpath(args.out)} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
