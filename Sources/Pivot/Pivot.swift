// Pivot owns the pipelines, through the `StableDiffusion` facade: generate, invert (inversion records, their
// validation against the model, the cache), edit (`StableDiffusion.edit`, the one orchestration `pivot edit` and
// batches share), textual-inversion tokens and learning them (`TokenLearner`, `StableDiffusion.learn`, its
// checkpoints), precision plans, components and benchmarks; PIE-Bench evaluation of edited images
// (`PIEBench`, `Evaluation`, `PIEBenchReport`); the canonical settings (`InversionSettings`, `EditSettings`).
//
// It must not parse command-line flags or name them in errors (errors name settings by key), or print.
