// PivotLoading owns finding and loading models: diffusers folders and single-file checkpoints (every original-layout
// key conversion in `SingleFileKeys`, one table), strict parameter stores that name every missing, misshaped or
// unused tensor (over safetensors and torch `.bin` files, `TensorArchive`), what users add to a model and how it is
// merged at load (`LoRA`, `CustomDiffusion`, a replacement VAE; `AdaptedStore`), tokenizer and scheduler settings of a
// model, fingerprints, conversion to diffusers folders, pivot's version.
//
// It must not run networks or know about inversions and edits.
