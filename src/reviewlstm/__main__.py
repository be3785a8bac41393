"""`python -m reviewlstm ...`, and so `torchrun --nproc_per_node=N -m reviewlstm train ...`."""
import sys

from reviewlstm.apps.cli import main

sys.exit(main())
