// PivotLoading owns finding and loading models: diffusers folders and single-file checkpoints (every original-layout
// key conversion in `SingleFileKeys`, one table), strict parameter stores that name every missing, misshaped or
// unused tensor, tokenizer and scheduler settings of a model, fingerprints, conversion to diffusers folders, pivot's
// version.
//
// It must not run networks or know about inversions and edits.
