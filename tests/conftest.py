import sys
from pathlib import Path

import torch

# Tests import their own helpers (e.g. darknet_reference) by module name.
sys.path.insert(0, str(Path(__file__).resolve().parent))
torch.set_num_threads(2)
