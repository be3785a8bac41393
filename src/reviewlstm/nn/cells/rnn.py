"""The vanilla RNN: one squashing per step, nothing else::

    stm' = tanh(W_m stm + W_e event + b)

Its memory is short for the same reason: whatever was in stm is multiplied by W_m and squashed by
tanh again at every word, so after k words it (and its gradient) has been shrunk about k times.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reviewlstm.nn.cells._common import Cell, RNNState, uniform_init


class RNNCell(Cell):
    r"""One step of the vanilla (Elman) RNN.

    Args:
        input_size: E. hidden_size: H.

    Inputs: event (B, E), state :class:`RNNState` (stm (B, H)) or None for zeros.

    Outputs: state, or (state, gates) with ``return_gates=True``, gates = {"stm": (B, H)}: an RNN
    has no gates, its state is all there is to watch.

    Parameters: weight_ih = W_e (H, E), weight_hh = W_m (H, H), bias = b (H,); all
    U(-1/sqrt(H), 1/sqrt(H)).
    """

    state_type = RNNState

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.empty(hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        uniform_init(self, self.hidden_size)

    def gate_parameters(self) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
        """{"m": (W_m, None), "e": (W_e, b)}: the two matrices of the equation."""
        return {"m": (self.weight_hh, None), "e": (self.weight_ih, self.bias)}


    def project(self, event: torch.Tensor) -> torch.Tensor:
        """W_e event + b, (..., E) -> (..., H)."""
        return F.linear(event, self.weight_ih, self.bias)

    def recur(self, projected: torch.Tensor, state: RNNState, return_gates: bool = False):
        stm = torch.tanh(torch.addmm(projected, state.stm, self.weight_hh.t()))  # (B, H)
        new_state = RNNState(stm)
        return (new_state, {"stm": stm}) if return_gates else new_state

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"
