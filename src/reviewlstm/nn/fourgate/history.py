"""What a forward pass of the four-gate loop keeps, and the sorted batch it runs over: defined once,
for every backend.

Every tensor is time-major and its rows are sorted by length, longest first, so at step t only the
first ``batch.sizes[t]`` rows are still reading: the batch shrinks instead of being masked (as cuDNN's
packed sequences do) and padded steps cost nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch


class History(NamedTuple):
    """One direction's forward pass, the seed's names (cells/lstm.py):

    - ``ltm`` (T + 1, B, H): LTM before step t (``ltm[0]`` the initial state); a row keeps its last
      value once its sequence has ended.
    - ``stm`` (T + 1, B, H): STM likewise; ``stm[1:]`` are the outputs, zeros past a row's length.
    - ``n`` (T, B, H): the learn gate's N = tanh(W_n [STM, E] + b_n).
    - ``ifv`` (T, B, 3H): the three sigmoid gates side by side: the learn gate's i, the forget gate's
      f, the use gate's V.
    - ``u`` (T, B, H): the use gate's U = tanh(W_u forget + b_u).
    - ``forget`` (T, B, H): the forget gate's output LTM ⊙ f (what U reads).

    Past a row's length ``n``, ``ifv``, ``u`` and ``forget`` are zeros, so those steps weigh nothing in
    backward. Without autograd a backend may keep only one step of them (scratch, not history).
    """
    ltm: torch.Tensor
    stm: torch.Tensor
    n: torch.Tensor
    ifv: torch.Tensor
    u: torch.Tensor
    forget: torch.Tensor


@dataclass(frozen=True)
class SortedBatch:
    """A batch's lengths, sorted longest first, in the forms the backends read."""
    lengths: torch.Tensor   # (B,) long, on the batch's device
    sizes: list[int]        # sizes[t] = rows still reading at step t (length > t)
    full: bool              # every row reads all T steps

    @classmethod
    def of(cls, sorted_lengths: list[int], T: int, device) -> "SortedBatch":
        sizes, b = [], len(sorted_lengths)
        for t in range(T):
            while b and sorted_lengths[b - 1] <= t:
                b -= 1
            sizes.append(b)
        full = not sorted_lengths or sorted_lengths[-1] == T
        return cls(torch.tensor(sorted_lengths, dtype=torch.long, device=device), sizes, full)

    def final(self, states: torch.Tensor) -> torch.Tensor:
        """Each row's state after its last word, (B, H), from a (T + 1, B, H) history."""
        if self.full:  # nobody stopped early: the last step
            return states[-1]
        return states[self.lengths, torch.arange(states.size(1), device=states.device)]
