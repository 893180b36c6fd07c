"""pivot's Python scripts, run as modules from the repository root (`python3 -m scripts.fixtures.rebuild_all`):

- `scripts.fixtures` — generators of the committed test fixtures (each writes under Tests/*/Fixtures or samples/),
  and `rebuild_all`, which runs every one of them;
- `scripts.reference` — Python ports of the published reference code (null-text inversion, Prompt-to-Prompt) and
  parity checks at SD 1.5 size;
- `scripts.bench` — benchmarks beside the CPU peers (PyTorch, OpenVINO) and accuracy measurements;
- `scripts.demo` — the synthetic shapes world, the training of the demo model and its quality benchmark.
"""
import os

#: The repository's root folder.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
