"""`python -m reviewlstm ...`, and so `torchrun --nproc_per_node=N -m reviewlstm train ...`."""
import sys

from .cli import main

sys.exit(main())
