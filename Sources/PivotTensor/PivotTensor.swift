// PivotTensor owns the tensor core: dense fp32 tensors, their kernels (GEMM on OpenBLAS and oneDNN, convolutions,
// attention, norms, activations) with each forward and its VJP side by side, the task-local gradient tape, the Adam
// optimiser, the precision (fp32/bf16) of matrix work, the worker pool, PyTorch-identical noise, and the batch
// helpers (concat, repeat, chunk, stack, guide) every layer above uses.
//
// It must not know about networks, files or diffusion; no other module does pointer arithmetic on tensors (they use
// the helpers here).
