"""`reviewlstm.layers`, the import path of earlier releases: the layer lives in reviewlstm.nn.layers."""
import sys

from reviewlstm.nn import layers as _layers

sys.modules[__name__] = _layers
