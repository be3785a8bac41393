"""The four-gate LSTM: learn, forget, remember and use.

Long-term memory `ltm`, short-term memory `stm`, and the event `event` (this word's embedding)::

    learn     N = tanh(W_n [stm, event] + b_n)
              i = σ(W_i [stm, event] + b_i)
              learn = N ⊙ i                      what the event adds to memory
    forget    f = σ(W_f [stm, event] + b_f)
              forget = ltm ⊙ f                   what long-term memory keeps
    remember  ltm' = remember = forget + learn   the new long-term memory
    use       U = tanh(W_u forget + b_u)
              V = σ(W_v [stm, event] + b_v)
              stm' = use = U ⊙ V                 the new short-term memory, also the output

Unlike the classic LSTM, the use gate reads the *kept* long-term memory (forget), not the new one,
through its own matrix W_u: a second matrix product per step that depends on the first.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reviewlstm.nn.cells._common import Cell, LSTMState, uniform_init

GATES = ("n", "i", "f", "v")  # row blocks of weight_ih / weight_hh / bias, in this order


class LSTMCell(Cell):
    r"""One step of the four-gate LSTM.

    Args:
        input_size: E, the size of an event (word embedding).
        hidden_size: H, the size of the long- and short-term memories.
        forget_bias: initial value of b_f (default 1.0, see below).

    Inputs: event, state
        - event: (B, E)
        - state: :class:`LSTMState` (ltm (B, H), stm (B, H)), or None for zeros.

    Outputs: state, or (state, gates) with ``return_gates=True``
        - state: the new :class:`LSTMState`.
        - gates: dict of (B, H) tensors: ``N``, ``i``, ``f``, ``U``, ``V`` and the four named
          products ``learn`` (N⊙i), ``forget`` (ltm⊙f), ``remember`` (new ltm), ``use`` (new stm).

    Parameters: the four gates that read [stm, event] are stored fused, rows in the order n, i, f, v,
    and split by what they read, so a layer can project every event of a sequence at once:
        - weight_ih: (4H, E), the event half of W_n, W_i, W_f, W_v
        - weight_hh: (4H, H), the stm half
        - bias: (4H,), b_n, b_i, b_f, b_v
        - weight_u: (H, H), W_u; bias_u: (H,), b_u
    :meth:`gate_parameters` gives each gate's W over [stm, event] as in the equations.

    Initialization: every weight and bias U(-1/sqrt(H), 1/sqrt(H)), as torch.nn.LSTM, then
    b_f = forget_bias. Why 1: with b_f near 0 the forget gate starts at σ(0) = 0.5 and long-term
    memory halves at every word, so nothing survives ten words and the gradient that would teach the
    cell to keep things vanishes with it; σ(1) ≈ 0.73 starts with a memory of a few dozen words
    (Gers et al. 2000; Jozefowicz et al. 2015).
    """

    def __init__(self, input_size: int, hidden_size: int, forget_bias: float = 1.0):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        H = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * H, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * H, H))
        self.bias = nn.Parameter(torch.empty(4 * H))
        self.weight_u = nn.Parameter(torch.empty(H, H))
        self.bias_u = nn.Parameter(torch.empty(H))
        self.forget_bias = forget_bias
        self.reset_parameters()

    def reset_parameters(self) -> None:
        uniform_init(self, self.hidden_size)
        H = self.hidden_size
        with torch.no_grad():
            self.bias[2 * H:3 * H].fill_(self.forget_bias)

    def init_use_identity(self) -> None:
        """W_u = I, b_u = 0: the use gate starts as U = tanh(forget), reading the kept long-term
        memory as the classic cell reads its memory (tanh(ltm')), instead of through a random
        (H, H) product that mixes and shrinks it (an initialization studied in bench/recipe.py)."""
        with torch.no_grad():
            self.weight_u.copy_(torch.eye(self.hidden_size, dtype=self.weight_u.dtype))
            self.bias_u.zero_()

    def gate_parameters(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Each gate's (W, b) as in the equations: W acts on [stm, event], (H, H+E); W_u on forget, (H, H)."""
        H = self.hidden_size
        W = torch.cat([self.weight_hh, self.weight_ih], dim=1)  # (4H, H+E), acts on [stm, event]
        out = {g: (W[k * H:(k + 1) * H], self.bias[k * H:(k + 1) * H]) for k, g in enumerate(GATES)}
        out["u"] = (self.weight_u, self.bias_u)
        return {g: out[g] for g in ("n", "i", "f", "u", "v")}


    def project(self, event: torch.Tensor) -> torch.Tensor:
        """The event's share of the four [stm, event] gates: (..., E) -> (..., 4H).

        A layer calls this once for a whole (B, T, E) sequence, one matrix product instead of T.
        """
        return F.linear(event, self.weight_ih, self.bias)

    def recur(self, projected: torch.Tensor, state: LSTMState, return_gates: bool = False):
        """One step from the projected event (B, 4H): everything that must wait for the last state."""
        ltm, stm = state
        pre = torch.addmm(projected, stm, self.weight_hh.t())  # (B, 4H): W [stm, event] + b, all four gates
        n_pre, i_pre, f_pre, v_pre = pre.chunk(4, dim=1)       # 4 x (B, H)

        N, i = torch.tanh(n_pre), torch.sigmoid(i_pre)
        learn = N * i
        f = torch.sigmoid(f_pre)
        forget = ltm * f
        remember = forget + learn
        U = torch.tanh(F.linear(forget, self.weight_u, self.bias_u))
        V = torch.sigmoid(v_pre)
        use = U * V

        new_state = LSTMState(ltm=remember, stm=use)
        if not return_gates:
            return new_state
        gates = {"N": N, "i": i, "f": f, "U": U, "V": V,
                 "learn": learn, "forget": forget, "remember": remember, "use": use}
        return new_state, gates

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, forget_bias={self.forget_bias}"
