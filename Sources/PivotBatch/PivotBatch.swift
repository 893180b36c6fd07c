// PivotBatch owns batches of edits: manifests, shards, the resumable append-only journal, and the row loop that runs
// each row through `StableDiffusion.edit`.
//
// It must not edit differently from `pivot edit` (it calls the same orchestration).
