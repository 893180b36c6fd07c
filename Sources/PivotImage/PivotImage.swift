// PivotImage owns photos: PNG/JPEG/TIFF reading and atomic writing (through the C shims), preprocessing (crop,
// Pillow-identical resampling), image ↔ tensor, labelled grids.
//
// It must not know about models or prompts.
