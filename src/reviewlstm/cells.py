"""`reviewlstm.cells`, the import path of earlier releases: the cells live in reviewlstm.nn.cells."""
import sys

from reviewlstm.nn import cells as _cells

sys.modules[__name__] = _cells
