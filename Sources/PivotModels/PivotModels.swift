// PivotModels owns the networks: CLIP text encoder, UNet and VAE with diffusers' numerics, their `Codable` configs
// read from diffusers JSON, the `ParameterStore` they are built from, their input-gradient VJPs, and the
// `AttentionController` hook (an argument of the UNet call).
//
// It must not parse files (models take a parameter store), or hold global state.
