// PivotFormats owns file formats of weights and records: safetensors (reading, validating, atomic writing), PyTorch
// .ckpt/.bin (zip + a restricted pickle reader), fp16/bf16 conversion, SHA-256.
//
// It must not interpret what tensors mean (that is the loaders' job) or trust a header before it is validated.
