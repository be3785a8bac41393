"""What the three cells share: their state types, initialization and input checks."""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn


class LSTMState(NamedTuple):
    """The state an LSTM carries from one word to the next.

    ltm: long-term memory (the classic LSTM's cell state c), (B, H)
    stm: short-term memory (the classic LSTM's hidden state h), (B, H); it is also the output.
    """

    ltm: torch.Tensor
    stm: torch.Tensor


class RNNState(NamedTuple):
    """The vanilla RNN's state: short-term memory only, (B, H)."""

    stm: torch.Tensor


def uniform_init(module: nn.Module, hidden_size: int) -> None:
    """U(-1/sqrt(H), 1/sqrt(H)) for every parameter: the same rule torch.nn.LSTM uses.

    It keeps the pre-activations of every gate at unit scale whatever H is, so the sigmoids and
    tanhs start in their sensitive range rather than saturated.
    """
    bound = 1.0 / math.sqrt(hidden_size)
    for p in module.parameters():
        nn.init.uniform_(p, -bound, bound)


def check_event(event: torch.Tensor, input_size: int, who: str, ref: torch.Tensor) -> None:
    """Raise a ValueError that names the expected shape when `event` is not (B, input_size)."""
    if not isinstance(event, torch.Tensor):
        raise TypeError(f"{who}: event must be a torch.Tensor of shape (B, {input_size}), got {type(event).__name__}")
    if event.dim() != 2 or event.size(1) != input_size:
        raise ValueError(f"{who}: event must have shape (B, {input_size}), got {tuple(event.shape)}")
    if event.dtype != ref.dtype:
        raise ValueError(f"{who}: event dtype {event.dtype} does not match the cell's parameters ({ref.dtype}); "
                         f"convert one with .to({ref.dtype}) or cell.to({event.dtype})")


def check_state_part(name: str, t: torch.Tensor, batch: int, hidden_size: int, who: str) -> None:
    if not isinstance(t, torch.Tensor) or t.shape != (batch, hidden_size):
        shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(f"{who}: state.{name} must have shape ({batch}, {hidden_size}), got {shape}")


class Cell(nn.Module):
    """What every cell does around its equations: check the event and the state, start from zeros.

    A subclass sets `state_type` and implements `project(event)` (the event's share of every gate,
    one matrix product for a whole sequence) and `recur(projected, state, return_gates)` (the rest
    of one step: everything that must wait for the last state).
    """

    state_type: type = LSTMState
    input_size: int
    hidden_size: int

    def initial_state(self, batch: int, like: torch.Tensor):
        zeros = like.new_zeros(batch, self.hidden_size)
        return self.state_type(*([zeros] * len(self.state_type._fields)))

    def forward(self, event: torch.Tensor, state=None, return_gates: bool = False):
        who = type(self).__name__
        check_event(event, self.input_size, who, self.weight_ih)
        B = event.size(0)
        if state is None:
            state = self.initial_state(B, event)
        else:
            state = self.state_type(*state)
            for name, part in zip(self.state_type._fields, state):
                check_state_part(name, part, B, self.hidden_size, who)
        return self.recur(self.project(event), state, return_gates)
