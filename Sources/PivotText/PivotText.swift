// PivotText owns the CLIP BPE tokenizer (transformers' `CLIPTokenizer`), its folders, and added textual-inversion
// tokens; ships CLIP's merges.
//
// It must not compute embeddings (the text encoder lives in PivotModels).
