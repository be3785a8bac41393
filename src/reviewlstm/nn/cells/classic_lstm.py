"""The classic LSTM, the one torch.nn.LSTM computes, with the four gate names mapped onto it.

Cell state c is the long-term memory `ltm`, hidden state h the short-term memory `stm`::

    i = σ(W_ii event + b_ii + W_hi stm + b_hi)      input gate
    f = σ(W_if event + b_if + W_hf stm + b_hf)      forget gate
    g = tanh(W_ig event + b_ig + W_hg stm + b_hg)   candidate
    o = σ(W_io event + b_io + W_ho stm + b_ho)      output gate

    learn    = i ⊙ g
    forget   = f ⊙ ltm
    remember = ltm' = forget + learn
    use      = stm' = o ⊙ tanh(ltm')

The use gate here reads the *new* long-term memory through a plain tanh with no matrix of its own;
the four-gate LSTM (lstm.py) reads the kept memory through W_u.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reviewlstm.nn.cells._common import Cell, LSTMState, uniform_init

GATES = ("i", "f", "g", "o")  # torch.nn.LSTM's row order


class ClassicLSTMCell(Cell):
    r"""One step of the classic LSTM, numerically torch.nn.LSTM's.

    Args:
        input_size: E. hidden_size: H.
        forget_bias: b_if + b_hf at initialization (default 1.0; b_if is set to it and b_hf to 0).
            ``None`` keeps torch's own initialization untouched.

    Inputs: event (B, E), state :class:`LSTMState` or None for zeros.

    Outputs: state, or (state, gates) with ``return_gates=True``; gates has ``i``, ``f``, ``g``,
    ``o`` and the mapped ``learn``, ``forget``, ``remember``, ``use``, each (B, H).

    Parameters: exactly torch.nn.LSTMCell's, rows in the order i, f, g, o:
    weight_ih (4H, E), weight_hh (4H, H), bias_ih (4H,), bias_hh (4H,).
    """

    def __init__(self, input_size: int, hidden_size: int, forget_bias: float | None = 1.0):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        H = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * H, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * H, H))
        self.bias_ih = nn.Parameter(torch.empty(4 * H))
        self.bias_hh = nn.Parameter(torch.empty(4 * H))
        self.forget_bias = forget_bias
        self.reset_parameters()

    def reset_parameters(self) -> None:
        uniform_init(self, self.hidden_size)
        if self.forget_bias is not None:  # why 1: see LSTMCell's docstring
            H = self.hidden_size
            with torch.no_grad():
                self.bias_ih[H:2 * H].fill_(self.forget_bias)
                self.bias_hh[H:2 * H].zero_()

    def gate_parameters(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Each gate's (W, b): W acts on [stm, event], (H, H+E); b = b_i* + b_h*."""
        H = self.hidden_size
        W = torch.cat([self.weight_hh, self.weight_ih], dim=1)  # (4H, H+E)
        b = self.bias_ih + self.bias_hh
        return {g: (W[k * H:(k + 1) * H], b[k * H:(k + 1) * H]) for k, g in enumerate(GATES)}


    def project(self, event: torch.Tensor) -> torch.Tensor:
        """The event's share of the gates, (..., E) -> (..., 4H); both biases folded in here."""
        return F.linear(event, self.weight_ih, self.bias_ih + self.bias_hh)

    def recur(self, projected: torch.Tensor, state: LSTMState, return_gates: bool = False):
        ltm, stm = state
        pre = torch.addmm(projected, stm, self.weight_hh.t())  # (B, 4H)
        i_pre, f_pre, g_pre, o_pre = pre.chunk(4, dim=1)       # 4 x (B, H)

        i, f, g, o = torch.sigmoid(i_pre), torch.sigmoid(f_pre), torch.tanh(g_pre), torch.sigmoid(o_pre)
        learn = i * g
        forget = f * ltm
        remember = forget + learn
        use = o * torch.tanh(remember)

        new_state = LSTMState(ltm=remember, stm=use)
        if not return_gates:
            return new_state
        gates = {"i": i, "f": f, "g": g, "o": o,
                 "learn": learn, "forget": forget, "remember": remember, "use": use}
        return new_state, gates

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, forget_bias={self.forget_bias}"
