"""`Recurrent`: run a cell over a padded batch of sequences, layer by layer, in one or two directions."""
from __future__ import annotations

import re
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from reviewlstm.nn import fourgate
from reviewlstm.nn.cells import CELLS, LSTMState, RNNState, make_cell

BACKENDS = ("readable", *fourgate.BACKENDS)

_TORCH_KEY = re.compile(r"^(?P<name>\w+?)_l(?P<layer>\d+)(?P<rev>_reverse)?$")


class Recurrent(nn.Module):
    r"""A stack of recurrent cells over a padded batch.

    Args:
        cell: "lstm" (four-gate), "classic-lstm" (torch.nn.LSTM's) or "rnn".
        input_size: E. hidden_size: H.
        num_layers: stacked layers; layer k > 0 reads layer k-1's outputs.
        bidirectional: also read every sequence backwards (within its own length), outputs concatenated.
        dropout: dropout on the outputs of every layer but the last, in training (as torch.nn.LSTM).
        backend: for the four-gate cell, how the sequence loop runs: "auto" (the fast path,
            reviewlstm.nn.fourgate: on CPU the compiled loop when it built, on CUDA the Triton kernels
            when Triton imports, else the Python loop), "compiled", "triton" or "python" (that fast
            backend or an error), or "readable" (the step loop over the cell, which is also what
            runs when gates are asked for, and for the other cells).

    Inputs: x, lengths=None, state=None, return_gates=False, outputs=True
        - x: (B, T, E), float, padded at the end.
        - lengths: (B,) integers in [0, T], the true length of each sequence; None means all T.
        - state: initial state, :class:`LSTMState` (or :class:`RNNState`) whose fields are
          (num_layers * directions, B, H), ordered as torch.nn.LSTM's h_0 / c_0; None means zeros.
        - outputs: False when only the final state is wanted (outputs come back as None).

    Outputs: outputs, state (and gates with ``return_gates=True``)
        - outputs: (B, T, H * directions), the last layer's stm at every step, zeros at padded steps.
        - state: final state, fields (num_layers * directions, B, H): each sequence's state after its
          last real step (forwards) or its first (backwards). Padded steps never change the state.
        - gates: dict name -> (num_layers, directions, B, T, H), the cell's gate activations in the
          original word order, zeros at padded steps.

    With ``cell="classic-lstm"`` the state_dict uses torch.nn.LSTM's names (``weight_ih_l0``,
    ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``, ``..._reverse``), so weights load both ways
    and outputs match nn.LSTM's. The other cells follow the same pattern with their own names.
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, backend: str = "auto"):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}: expected one of {', '.join(CELLS)}")
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
        self.cell_kind, self.input_size, self.hidden_size = cell, input_size, hidden_size
        self.num_layers, self.bidirectional, self.dropout = num_layers, bidirectional, dropout
        self.directions = 2 if bidirectional else 1
        self.is_lstm = cell != "rnn"
        # the four-gate LSTM's fast path (reviewlstm.nn.fourgate); the readable step loop stays the
        # reference, and is what runs when gates are asked for
        self.backend = backend
        self.triton_settings = None  # fourgate.triton_loop.TritonSettings; None: the defaults
        # cells[layer * directions + direction], the order of torch.nn.LSTM's h_0
        self.cells = nn.ModuleList(
            make_cell(cell, input_size if layer == 0 else hidden_size * self.directions, hidden_size)
            for layer in range(num_layers) for _ in range(self.directions))
        self.register_state_dict_post_hook(_to_torch_names)
        self.register_load_state_dict_pre_hook(_from_torch_names)

    @property
    def output_size(self) -> int:
        return self.hidden_size * self.directions

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | Sequence[int] | None = None,
                state=None, return_gates: bool = False, outputs: bool = True):
        lengths = self._check(x, lengths)
        B, T, _ = x.shape
        state = self._check_state(state, B, x)
        padded = bool((lengths < T).any())
        fast = self.backend != "readable" and self.cell_kind == "lstm" and not return_gates
        # (B, T), True at real steps; the fused loops shrink the batch instead
        mask = (torch.arange(T, device=x.device)[None, :] < lengths[:, None]) if padded and not fast else None
        # reversing each sequence within its own length, so padding stays at the end (unpadded: a flip)
        rev_index = _reverse_index(lengths, T) if self.bidirectional and padded else None  # (B, T)

        finals, all_gates = [], []
        layer_in = x
        for layer in range(self.num_layers):
            outs, layer_gates = [], []
            ks = [layer * self.directions + d for d in range(self.directions)]
            seqs = [layer_in if d == 0 else _gather_time(layer_in, rev_index) for d in range(self.directions)]
            inits = [None if state is None else type(state)(*(s[k] for s in state)) for k in ks]
            if fast:  # every direction in one call: the compiled loop runs them side by side
                per_dir = [(out, final, {}) for out, final in
                           self._run_fast([self.cells[k] for k in ks], seqs, lengths, inits)]
            else:
                per_dir = [self._run(self.cells[k], seq, mask, init, return_gates)
                           for k, seq, init in zip(ks, seqs, inits)]
            last = layer == self.num_layers - 1
            for d, (out, final, gates) in enumerate(per_dir):
                if last and not outputs:  # only the final states are wanted: skip re-ordering the outputs
                    out = None
                elif d == 1:  # back to the original word order
                    out = _gather_time(out, rev_index)
                    gates = {n: _gather_time(g, rev_index) for n, g in gates.items()}
                outs.append(out)
                finals.append(final)
                layer_gates.append(gates)
            if last and not outputs:
                layer_in = None
            else:
                layer_in = outs[0] if self.directions == 1 else torch.cat(outs, dim=2)  # (B, T, H * D)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_in = F.dropout(layer_in, self.dropout, training=True)
            if return_gates:
                all_gates.append({n: torch.stack([g[n] for g in layer_gates]) for n in layer_gates[0]})

        final_state = type(finals[0])(*(torch.stack(parts) for parts in zip(*finals)))  # (L * D, B, H)
        if not return_gates:
            return layer_in, final_state
        gates = {n: torch.stack([g[n] for g in all_gates]) for n in all_gates[0]}  # (L, D, B, T, H)
        return layer_in, final_state, gates

    def _run_fast(self, cells, seqs, lengths, inits):
        inits = [init if init is not None else cell.initial_state(seq.size(0), seq)
                 for cell, seq, init in zip(cells, seqs, inits)]
        results = fourgate.run(cells, seqs, lengths, [i.ltm for i in inits], [i.stm for i in inits],
                               backend=self.backend, triton_settings=self.triton_settings)
        return [(out, LSTMState(ltm, stm)) for out, ltm, stm in results]

    def _run(self, cell, seq, mask, init, return_gates):
        """One direction of one layer: project every event at once, then step through time."""
        B, T, _ = seq.shape
        projected = cell.project(seq)  # (B, T, G): the input half of every gate, one matrix product
        state = init if init is not None else cell.initial_state(B, seq)
        outputs, gates = [], {}
        # unbind, not projected[:, t]: the backward of one unbind is one stack, while T separate
        # slices would each scatter into a fresh (B, T, G) zero tensor, O(T^2) memory traffic
        for t, projected_t in enumerate(projected.unbind(1)):
            step = cell.recur(projected_t, state, return_gates)
            new_state, g = step if return_gates else (step, None)
            if mask is not None:
                # padded steps keep the old state: a short review's final state must not be washed
                # out by the zeros that pad it to the batch's length
                m = mask[:, t, None]  # (B, 1)
                new_state = type(state)(*(torch.where(m, n, o) for n, o in zip(new_state, state)))
                if g is not None:
                    g = {n: v * m for n, v in g.items()}
            state = new_state
            outputs.append(state.stm if mask is None else state.stm * mask[:, t, None])
            if g is not None:
                for n, v in g.items():
                    gates.setdefault(n, []).append(v)
        out = torch.stack(outputs, dim=1)  # (B, T, H)
        gates = {n: torch.stack(v, dim=1) for n, v in gates.items()}  # name -> (B, T, H)
        return out, state, gates

    def _check(self, x, lengths) -> torch.Tensor:
        E = self.input_size
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"Recurrent: x must be a torch.Tensor of shape (B, T, {E}), got {type(x).__name__}")
        if x.dim() != 3 or x.size(2) != E:
            raise ValueError(f"Recurrent: x must have shape (B, T, {E}), got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"Recurrent: x must be a floating-point tensor, got {x.dtype}")
        ref = self.cells[0].weight_ih
        if x.dtype != ref.dtype:
            raise ValueError(f"Recurrent: x dtype {x.dtype} does not match the parameters ({ref.dtype})")
        B, T, _ = x.shape
        if T == 0:
            raise ValueError(f"Recurrent: x must have at least one time step, got shape {tuple(x.shape)}")
        if lengths is None:
            return torch.full((B,), T, dtype=torch.long, device=x.device)
        lengths = torch.as_tensor(lengths, device=x.device)
        if lengths.shape != (B,):
            raise ValueError(f"Recurrent: lengths must have shape ({B},), got {tuple(lengths.shape)}")
        if lengths.is_floating_point() or lengths.dtype == torch.bool:
            raise ValueError(f"Recurrent: lengths must be integers, got {lengths.dtype}")
        if B and (int(lengths.min()) < 0 or int(lengths.max()) > T):
            raise ValueError(f"Recurrent: lengths must lie in [0, {T}] (x has T={T}), "
                             f"got min {int(lengths.min())}, max {int(lengths.max())}")
        return lengths.long()

    def _check_state(self, state, B, x):
        if state is None:
            return None
        cls = LSTMState if self.is_lstm else RNNState
        try:
            state = cls(*state)
        except TypeError:
            raise ValueError(f"Recurrent: state must be {cls.__name__} with fields {cls._fields}") from None
        want = (self.num_layers * self.directions, B, self.hidden_size)
        for name, t in zip(cls._fields, state):
            if not isinstance(t, torch.Tensor) or t.shape != want:
                got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise ValueError(f"Recurrent: state.{name} must have shape {want}, got {got}")
        return cls(*(t.to(x.dtype) for t in state))

    def extra_repr(self) -> str:
        return (f"cell={self.cell_kind!r}, {self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"bidirectional={self.bidirectional}, dropout={self.dropout}")


def _reverse_index(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """(B, T) time index that reverses each sequence's first lengths[b] steps and leaves padding alone."""
    t = torch.arange(T, device=lengths.device)[None, :]  # (1, T)
    L = lengths[:, None]  # (B, 1)
    return torch.where(t < L, L - 1 - t, t)  # an involution: applying it twice gives the identity


def _gather_time(x: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
    """x[b, index[b, t]] for (B, T, H) x and (B, T) index; index None: every sequence is full, flip time."""
    if index is None:
        return x.flip(1)
    return x.gather(1, index[:, :, None].expand(-1, -1, x.size(2)))


def _to_torch_names(module: Recurrent, state_dict, prefix, local_metadata) -> None:
    """cells.{k}.weight_ih -> weight_ih_l{layer}[_reverse], the names torch.nn.LSTM uses."""
    for k in range(len(module.cells)):
        layer, d = divmod(k, module.directions)
        for name in list(module.cells[k]._parameters):
            old = f"{prefix}cells.{k}.{name}"
            if old in state_dict:
                state_dict[f"{prefix}{name}_l{layer}{'_reverse' if d else ''}"] = state_dict.pop(old)


def _from_torch_names(module: Recurrent, state_dict, prefix, local_metadata, strict,
                      missing_keys, unexpected_keys, error_msgs) -> None:
    for key in [k for k in state_dict if k.startswith(prefix)]:
        m = _TORCH_KEY.match(key[len(prefix):])
        if m:
            k = int(m["layer"]) * module.directions + (1 if m["rev"] else 0)
            state_dict[f"{prefix}cells.{k}.{m['name']}"] = state_dict.pop(key)
