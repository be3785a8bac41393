"""The three recurrent cells, each called as ``cell(event, state) -> state``.

- :class:`LSTMCell`: the four-gate LSTM (learn, forget, remember, use).
- :class:`ClassicLSTMCell`: the LSTM of torch.nn.LSTM, with the four names mapped onto it.
- :class:`RNNCell`: the vanilla RNN.
"""
from reviewlstm.nn.cells._common import LSTMState, RNNState
from reviewlstm.nn.cells.classic_lstm import ClassicLSTMCell
from reviewlstm.nn.cells.lstm import LSTMCell
from reviewlstm.nn.cells.rnn import RNNCell

CELLS = {"lstm": LSTMCell, "classic-lstm": ClassicLSTMCell, "rnn": RNNCell}


def make_cell(kind: str, input_size: int, hidden_size: int):
    """The cell called `kind` ("lstm", "classic-lstm" or "rnn")."""
    try:
        cls = CELLS[kind]
    except KeyError:
        raise ValueError(f"unknown cell {kind!r}: expected one of {', '.join(CELLS)}") from None
    return cls(input_size, hidden_size)


__all__ = ["LSTMCell", "ClassicLSTMCell", "RNNCell", "LSTMState", "RNNState", "CELLS", "make_cell"]
