"""From scratch in NumPy: forward and backpropagation through time for the RNN and the four-gate LSTM.

The readable copy of the equations and the oracle that the PyTorch cells are tested against.
"""
from reviewlstm.reference import lstm, rnn
from reviewlstm.reference.lstm import lstm_backward, lstm_forward
from reviewlstm.reference.rnn import rnn_backward, rnn_forward

__all__ = ["lstm", "rnn", "lstm_forward", "lstm_backward", "rnn_forward", "rnn_backward"]
