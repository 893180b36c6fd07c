// PivotDiffusion owns diffusion maths: the DDIM scheduler and its configs, one DDIM step (`Scheduler.ddimStep`), the
// one denoising loop (`DenoisingLoop`) controllers plug into, DDIM inversion and null-text optimisation
// (`PivotInversion`), Prompt-to-Prompt controllers, local blend, prompt alignment, cross-attention maps. Each
// algorithm names the reference it matches (docs/ALGORITHMS.md).
//
// It must not load models, read files or touch images.
