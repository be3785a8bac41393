"""The PyTorch cells and the Recurrent layer: equations by hand, torch.nn.LSTM, padded batches."""
import pytest
import torch
from torch import nn

from reviewlstm.nn.cells import ClassicLSTMCell, LSTMCell, LSTMState, RNNCell, RNNState
from reviewlstm.nn.layers import Recurrent

B, E, H = 4, 6, 5


def test_four_gate_cell_follows_its_equations_by_hand():
    cell = LSTMCell(E, H).double()
    event = torch.randn(B, E, dtype=torch.float64)
    ltm, stm = torch.randn(B, H, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    new, gates = cell(event, LSTMState(ltm, stm), return_gates=True)

    P = cell.gate_parameters()
    assert set(P) == {"n", "i", "f", "u", "v"}
    assert P["n"][0].shape == (H, H + E) and P["u"][0].shape == (H, H)
    xh = torch.cat([stm, event], 1)  # [STM_{t-1}, E_t]
    lin = lambda g, v: v @ P[g][0].T + P[g][1]  # noqa: E731
    N, i, f, V = torch.tanh(lin("n", xh)), torch.sigmoid(lin("i", xh)), torch.sigmoid(lin("f", xh)), torch.sigmoid(lin("v", xh))
    U = torch.tanh(lin("u", ltm * f))
    want_ltm = ltm * f + N * i
    want_stm = U * V
    torch.testing.assert_close(new.ltm, want_ltm, rtol=0, atol=1e-12)
    torch.testing.assert_close(new.stm, want_stm, rtol=0, atol=1e-12)
    for name, want in {"N": N, "i": i, "f": f, "U": U, "V": V, "learn": N * i, "forget": ltm * f,
                       "remember": want_ltm, "use": want_stm}.items():
        torch.testing.assert_close(gates[name], want, rtol=0, atol=1e-12)
    # without return_gates the same state comes back alone
    torch.testing.assert_close(cell(event, (ltm, stm)).stm, want_stm, rtol=0, atol=1e-12)


def test_forget_bias_starts_at_one():
    cell = LSTMCell(E, H)
    assert torch.all(cell.gate_parameters()["f"][1] == 1.0)
    classic = ClassicLSTMCell(E, H)
    assert torch.all(classic.gate_parameters()["f"][1] == 1.0)


def test_classic_cell_is_torch_lstm_cell():
    cell = ClassicLSTMCell(E, H, forget_bias=None)
    ref = nn.LSTMCell(E, H)
    ref.load_state_dict(cell.state_dict())
    event, h, c = torch.randn(B, E), torch.randn(B, H), torch.randn(B, H)
    new, gates = cell(event, LSTMState(c, h), return_gates=True)
    h2, c2 = ref(event, (h, c))
    torch.testing.assert_close(new.stm, h2)
    torch.testing.assert_close(new.ltm, c2)
    torch.testing.assert_close(gates["use"], h2)
    torch.testing.assert_close(gates["remember"], c2)
    torch.testing.assert_close(gates["forget"] + gates["learn"], c2)


def test_rnn_cell_equation():
    cell = RNNCell(E, H)
    event, stm = torch.randn(B, E), torch.randn(B, H)
    want = torch.tanh(stm @ cell.weight_hh.T + event @ cell.weight_ih.T + cell.bias)
    torch.testing.assert_close(cell(event, RNNState(stm)).stm, want)
    torch.testing.assert_close(cell(event).stm, torch.tanh(event @ cell.weight_ih.T + cell.bias))


def run_torch_lstm(ref, x, lengths, state=None):
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, (h, c) = ref(packed, state)
    out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
    return out, h, c


@pytest.mark.parametrize("layers,bidirectional", [(1, False), (1, True), (2, False), (2, True)])
def test_classic_recurrent_matches_nn_lstm_outputs_and_gradients(layers, bidirectional):
    ours = Recurrent("classic-lstm", E, H, num_layers=layers, bidirectional=bidirectional).double()
    ref = nn.LSTM(E, H, num_layers=layers, bidirectional=bidirectional, batch_first=True).double()
    assert set(ours.state_dict()) == set(ref.state_dict())
    ref.load_state_dict(ours.state_dict())

    x = torch.randn(B, 7, E, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([7, 3, 5, 1])
    D = 2 if bidirectional else 1
    h0 = torch.randn(layers * D, B, H, dtype=torch.float64)
    c0 = torch.randn(layers * D, B, H, dtype=torch.float64)
    out, state = ours(x, lengths, state=LSTMState(c0, h0))
    ref_out, h, c = run_torch_lstm(ref, x, lengths, (h0, c0))
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-12)
    torch.testing.assert_close(state.stm, h, rtol=0, atol=1e-12)
    torch.testing.assert_close(state.ltm, c, rtol=0, atol=1e-12)

    w = torch.randn_like(out)
    gx, *gp = torch.autograd.grad((out * w).sum() + state.ltm.sum(), [x, *ours.parameters()])
    rgx, *rgp = torch.autograd.grad((ref_out * w).sum() + c.sum(), [x, *ref.parameters()])
    torch.testing.assert_close(gx, rgx, rtol=0, atol=1e-12)
    ours_named = dict(zip(ours.state_dict(), gp))  # parameters() and state_dict() share their order
    for (name, _), g in zip(ref.named_parameters(), rgp):
        torch.testing.assert_close(ours_named[name], g, rtol=0, atol=1e-12, msg=name)


def test_weights_load_both_ways_with_nn_lstm():
    ref = nn.LSTM(E, H, num_layers=2, bidirectional=True, batch_first=True)
    ours = Recurrent("classic-lstm", E, H, num_layers=2, bidirectional=True)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(B, 5, E)
    torch.testing.assert_close(ours(x)[0], ref(x)[0])
    ref2 = nn.LSTM(E, H, num_layers=2, bidirectional=True, batch_first=True)
    ref2.load_state_dict(ours.state_dict())
    torch.testing.assert_close(ref2(x)[0], ref(x)[0])
    # nested inside another module, the prefix is kept
    outer = nn.Sequential(ours)
    assert "0.weight_ih_l1_reverse" in outer.state_dict()


@pytest.mark.parametrize("cell", ["lstm", "classic-lstm", "rnn"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padded_batch_equals_each_sequence_alone(cell, bidirectional):
    """Flax-style: a padded batch gives each sequence exactly what it gets alone, unpadded."""
    layer = Recurrent(cell, E, H, num_layers=2, bidirectional=bidirectional).double()
    lengths = [6, 2, 4, 6]
    x = torch.randn(B, 6, E, dtype=torch.float64)
    out, state = layer(x, lengths)
    for b, L in enumerate(lengths):
        alone, alone_state = layer(x[b:b + 1, :L])
        torch.testing.assert_close(out[b:b + 1, :L], alone, rtol=0, atol=1e-12)
        assert torch.all(out[b, L:] == 0)
        for got, want in zip(state, alone_state):
            torch.testing.assert_close(got[:, b:b + 1], want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", ["lstm", "classic-lstm", "rnn"])
def test_layer_steps_the_cell(cell):
    """The layer's loop is the cell called word by word; the reverse direction reads words backwards."""
    layer = Recurrent(cell, E, H, bidirectional=True).double()
    x = torch.randn(B, 5, E, dtype=torch.float64)
    out, _ = layer(x)
    fwd, bwd = layer.cells
    state, states = None, []
    for t in range(5):
        state = fwd(x[:, t], state)
        states.append(state.stm)
    torch.testing.assert_close(out[..., :H], torch.stack(states, 1), rtol=0, atol=1e-12)
    state, states = None, []
    for t in reversed(range(5)):
        state = bwd(x[:, t], state)
        states.insert(0, state.stm)
    torch.testing.assert_close(out[..., H:], torch.stack(states, 1), rtol=0, atol=1e-12)


def test_gates_from_the_layer():
    layer = Recurrent("lstm", E, H, num_layers=2, bidirectional=True)
    x = torch.randn(B, 5, E)
    lengths = torch.tensor([5, 3, 1, 4])
    out, state, gates = layer(x, lengths, return_gates=True)
    for name in ("N", "i", "f", "U", "V", "learn", "forget", "remember", "use"):
        assert gates[name].shape == (2, 2, B, 5, H), name
    # the last layer's use gate is the output; padded steps are zeros
    torch.testing.assert_close(torch.cat([gates["use"][1, 0], gates["use"][1, 1]], -1), out)
    assert torch.all(gates["f"][:, :, 2, 1:] == 0)
    # the reverse direction's LTM after reading the whole sequence backwards sits at word 0
    torch.testing.assert_close(gates["remember"][1, 1, :, 0], state.ltm[3])
    out2, _ = layer(x, lengths)
    torch.testing.assert_close(out2, out)


def test_dropout_only_in_training():
    layer = Recurrent("lstm", E, H, num_layers=2, dropout=0.5)
    x = torch.randn(B, 5, E)
    layer.eval()
    torch.testing.assert_close(layer(x)[0], layer(x)[0])
    layer.train()
    assert not torch.equal(layer(x)[0], layer(x)[0])


@pytest.mark.parametrize("call,message", [
    (lambda l: l(torch.randn(3, 4)), r"x must have shape \(B, T, 6\), got \(3, 4\)"),
    (lambda l: l(torch.randn(3, 4, 7)), r"x must have shape \(B, T, 6\), got \(3, 4, 7\)"),
    (lambda l: l(torch.randn(3, 4, 6, dtype=torch.float64)), "dtype"),
    (lambda l: l(torch.randint(0, 3, (3, 4, 6))), "floating-point"),
    (lambda l: l(torch.randn(3, 4, 6), torch.tensor([4, 4])), r"lengths must have shape \(3,\), got \(2,\)"),
    (lambda l: l(torch.randn(3, 4, 6), torch.tensor([4, 5, 1])), r"lengths must lie in \[0, 4\]"),
    (lambda l: l(torch.randn(3, 4, 6), torch.tensor([4.0, 3.0, 1.0])), "lengths must be integers"),
    (lambda l: l(torch.randn(3, 4, 6), state=LSTMState(torch.zeros(3, 5), torch.zeros(3, 5))),
     r"state.ltm must have shape \(1, 3, 5\)"),
])
def test_bad_inputs_name_the_expected_shape(call, message):
    with pytest.raises(ValueError, match=message):
        call(Recurrent("lstm", 6, 5))


def test_cell_bad_inputs():
    cell = LSTMCell(6, 5)
    with pytest.raises(ValueError, match=r"event must have shape \(B, 6\), got \(2, 3\)"):
        cell(torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"state.stm must have shape \(2, 5\), got \(2, 4\)"):
        cell(torch.randn(2, 6), (torch.zeros(2, 5), torch.zeros(2, 4)))
    with pytest.raises(ValueError, match="unknown cell 'gru'"):
        Recurrent("gru", 6, 5)


def test_use_identity_init_reads_the_kept_memory_through_tanh():
    from reviewlstm.nn.cells import LSTMCell, LSTMState
    cell = LSTMCell(4, 3)
    cell.init_use_identity()
    new, gates = cell(torch.randn(2, 4), LSTMState(torch.randn(2, 3), torch.randn(2, 3)), return_gates=True)
    torch.testing.assert_close(gates["U"], torch.tanh(gates["forget"]))  # U = tanh(I forget + 0)
    torch.testing.assert_close(new.stm, torch.tanh(gates["forget"]) * gates["V"])
