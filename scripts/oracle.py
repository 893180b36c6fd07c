"""Importing this sets the Python oracle up the way every fixture generator and reference check runs it: two
torch threads (these machines have 2 cores, and a fixed count fixes the reductions' order), warnings off,
transformers, diffusers and the hub quiet. Import it before diffusers and transformers."""
import os
import warnings

import torch

torch.set_num_threads(2)
warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
