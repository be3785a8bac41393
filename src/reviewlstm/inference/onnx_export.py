"""The rating model as one ONNX graph, for runtimes other than torch (onnxruntime, and through it
optimum's and the browsers' and phones' engines).

No converter knows the four-gate cell, and tracing the readable loop would unroll it for one length,
so the graph is written here op by op (onnx.helper), the cell's equations as cells/lstm.py states them:
each direction of each layer is a `Scan` over time whose body is one step, batch and time both
dynamic:

    ids (B, T) int64, lengths (B,) int64
      -> Gather (the embedding) -> Transpose to (T, B, E)
      -> per layer, per direction: MatMul by W_ih^T (every step at once) -> Scan(step) over T
         (the backward direction reads each review reversed within its own length: ReverseSequence)
      -> pooling (final state, mean, max or attention, as the model's config says)
      -> Gemm (the head) -> logits (B, K); Softmax(logits / temperature) -> probabilities (B, K)

A step past a review's length keeps the state and outputs zeros, as the readable loop does, so a
review gets the same answer alone or in any batch. The vocabulary stays outside the graph: the
exported directory carries vocab.json and config.json, and `onnx_ids` turns texts into the inputs
with the same tokenizer and reading rule as `predict` (one pass per text: a long text read sentence
by sentence is several rows whose distributions the caller averages, as predict does).

Requires `pip install onnx onnxruntime` (the `onnx` extra).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from reviewlstm.inference.artifact import LoadedModel

OPSET = 17
CELLS = ("lstm",)  # the four-gate cell; see `export` for the others


def _onnx():
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise RuntimeError('ONNX export needs the onnx package: pip install -e ".[onnx]"') from None
    return onnx, TensorProto, helper, numpy_helper


class _Graph:
    """Nodes and initializers with unique names, added in order."""

    def __init__(self):
        self.onnx, self.T, self.h, self.nh = _onnx()
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, hint: str) -> str:
        self.n += 1
        return f"{hint}_{self.n}"

    def const(self, value, hint: str = "c") -> str:
        name = self.name(hint)
        self.inits.append(self.nh.from_array(np.asarray(value), name))
        return name

    def op(self, kind: str, inputs, hint: str | None = None, outputs: int = 1, **attrs):
        names = [self.name(hint or kind.lower()) for _ in range(outputs)]
        self.nodes.append(self.h.make_node(kind, list(inputs), names, **attrs))
        return names[0] if outputs == 1 else names


def _f32(t) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


def _step_body(g: _Graph, cell, H: int):
    """One four-gate step as a Scan body: state (ltm, stm) (B, H), scanned (proj_t (B, 4H), keep_t
    (B, 1)) -> new state, output stm_t masked (B, H)."""
    T, h = g.T, g.h
    b = _Graph()
    w_hh_t, bias = b.const(_f32(cell.weight_hh.t()), "w_hh_t"), b.const(_f32(cell.bias), "bias")
    w_u_t, bias_u = b.const(_f32(cell.weight_u.t()), "w_u_t"), b.const(_f32(cell.bias_u), "bias_u")
    one = b.const(np.float32(1.0), "one")
    pre = b.op("Add", [b.op("Add", ["proj_t", b.op("MatMul", ["stm", w_hh_t])]), bias], "pre")  # (B, 4H)
    n_pre, i_pre, f_pre, v_pre = b.op("Split", [pre, b.const(np.array([H] * 4, dtype=np.int64), "split")],
                                      "gate", outputs=4, axis=1)
    learn = b.op("Mul", [b.op("Tanh", [n_pre], "N"), b.op("Sigmoid", [i_pre], "i")], "learn")
    forget = b.op("Mul", ["ltm", b.op("Sigmoid", [f_pre], "f")], "forget")
    remember = b.op("Add", [forget, learn], "remember")
    use = b.op("Mul", [b.op("Tanh", [b.op("Add", [b.op("MatMul", [forget, w_u_t]), bias_u])], "U"),
                       b.op("Sigmoid", [v_pre], "V")], "use")
    # past a review's length (keep 0) the state stays and the output is zero
    drop = b.op("Sub", [one, "keep_t"], "drop")
    b.nodes.append(h.make_node("Add", [b.op("Mul", [remember, "keep_t"]), b.op("Mul", ["ltm", drop])], ["ltm_out"]))
    b.nodes.append(h.make_node("Add", [b.op("Mul", [use, "keep_t"]), b.op("Mul", ["stm", drop])], ["stm_out"]))
    b.nodes.append(h.make_node("Mul", [use, "keep_t"], ["out_t"]))
    f32 = T.FLOAT
    return h.make_graph(
        b.nodes, "four_gate_step",
        [h.make_tensor_value_info("ltm", f32, ["B", H]), h.make_tensor_value_info("stm", f32, ["B", H]),
         h.make_tensor_value_info("proj_t", f32, ["B", 4 * H]), h.make_tensor_value_info("keep_t", f32, ["B", 1])],
        [h.make_tensor_value_info("ltm_out", f32, ["B", H]), h.make_tensor_value_info("stm_out", f32, ["B", H]),
         h.make_tensor_value_info("out_t", f32, ["B", H])],
        b.inits)


def build(loaded: LoadedModel):
    """The onnx.ModelProto of a loaded model (four-gate cells; eval mode: no dropout)."""
    cfg, model = loaded.config, loaded.model
    if cfg.cell not in CELLS:
        raise ValueError(f"ONNX export covers the four-gate LSTM (cell 'lstm'); this model's cell is {cfg.cell!r}: "
                         "its step is not written as an ONNX graph yet")
    if model.ngrams is not None:
        raise ValueError(f"ONNX export covers the recurrent network; this model mixes in an n-gram path (share "
                         f"{1 - cfg.ngram_share:g}) that the graph would leave out: train it with --ngram-path off to export it")
    g = _Graph()
    T, h = g.T, g.h
    H, D, L = cfg.hidden, 2 if cfg.bidirectional else 1, cfg.num_layers
    emb = g.const(_f32(model.embedding.weight), "embedding")
    events = g.op("Gather", [emb, "ids"], "events")                            # (B, T, E)
    x = g.op("Transpose", [events], "time_major", perm=[1, 0, 2])              # (T, B, E)
    # keep (T, B, 1): 1 at a review's real steps, 0 past its length
    steps = g.op("Shape", ["ids"], "shape")
    t_len = g.op("Gather", [steps, g.const(np.int64(1))], "t_len")
    b_len = g.op("Gather", [steps, g.const(np.int64(0))], "b_len")
    arange = g.op("Range", [g.const(np.int64(0)), t_len, g.const(np.int64(1))], "arange")        # (T,)
    real = g.op("Less", [g.op("Unsqueeze", [arange, g.const(np.array([1], dtype=np.int64))]),
                         g.op("Unsqueeze", ["lengths", g.const(np.array([0], dtype=np.int64))])], "real")  # (T, B)
    keep = g.op("Unsqueeze", [g.op("Cast", [real], to=T.FLOAT), g.const(np.array([2], dtype=np.int64))], "keep")
    zeros = g.op("ConstantOfShape", [g.op("Concat", [g.op("Unsqueeze", [b_len, g.const(np.array([0], dtype=np.int64))]),
                                                   g.const(np.array([H], dtype=np.int64))], axis=0)],
                 "zeros", value=h.make_tensor("z", T.FLOAT, [1], [0.0]))
    finals = []
    layer_in = x
    for layer in range(L):
        outs = []
        for d in range(D):
            cell = model.rnn.cells[layer * D + d]
            seq = layer_in if d == 0 else g.op("ReverseSequence", [layer_in, "lengths"], "reversed",
                                               batch_axis=1, time_axis=0)
            proj = g.op("MatMul", [seq, g.const(_f32(cell.weight_ih.t()), "w_ih_t")], "proj")   # (T, B, 4H)
            ltm, stm, out = g.op("Scan", [zeros, zeros, proj, keep], "scan", outputs=3,
                                 body=_step_body(g, cell, H), num_scan_inputs=2)
            if d == 1:  # back to the reviews' word order
                out = g.op("ReverseSequence", [out, "lengths"], "unreversed", batch_axis=1, time_axis=0)
            outs.append(out)
            finals.append(stm)
        layer_in = outs[0] if D == 1 else g.op("Concat", outs, "layer_out", axis=2)   # (T, B, H * D)
    pooled = _pool(g, cfg, model, layer_in, finals[-D:], keep)
    logits = g.op("Gemm", [pooled, g.const(_f32(model.head.weight), "head_w"), g.const(_f32(model.head.bias), "head_b")],
                  "logits_raw", transB=1)
    g.nodes.append(h.make_node("Identity", [logits], ["logits"]))
    scaled = g.op("Div", [logits, g.const(np.float32(cfg.temperature), "temperature")], "scaled")
    g.nodes.append(h.make_node("Softmax", [scaled], ["probabilities"], axis=1))
    graph = h.make_graph(
        g.nodes, "reviewlstm",
        [h.make_tensor_value_info("ids", T.INT64, ["B", "T"]), h.make_tensor_value_info("lengths", T.INT64, ["B"])],
        [h.make_tensor_value_info("probabilities", T.FLOAT, ["B", len(cfg.ratings)]),
         h.make_tensor_value_info("logits", T.FLOAT, ["B", len(cfg.ratings)])],
        g.inits)
    proto = h.make_model(graph, opset_imports=[h.make_opsetid("", OPSET)], producer_name="reviewlstm")
    proto.doc_string = (f"reviewlstm rating model: four-gate LSTM, ratings {cfg.ratings}; inputs token ids (B, T) padded "
                        "with 0 and lengths (B,) from vocab.json beside this file")
    g.onnx.checker.check_model(proto)
    return proto


def _pool(g: _Graph, cfg, model, outputs: str, last_stms: list[str], keep: str) -> str:
    """(B, H * D) from the last layer: its final states, or its outputs (T, B, H * D) pooled over the real steps."""
    if cfg.pooling == "final":
        return last_stms[0] if len(last_stms) == 1 else g.op("Concat", last_stms, "final", axis=1)
    if cfg.pooling == "mean":
        total = g.op("ReduceSum", [outputs, g.const(np.array([0], dtype=np.int64))], keepdims=0)       # (B, HD)
        count = g.op("ReduceSum", [keep, g.const(np.array([0], dtype=np.int64))], keepdims=0)           # (B, 1)
        return g.op("Div", [total, g.op("Max", [count, g.const(np.float32(1.0))])], "mean")
    if cfg.pooling == "max":
        # past the length: -inf before the max (every review has a real step: predict reads an empty one as <unk>)
        neg = g.op("Mul", [g.op("Sub", [g.const(np.float32(1.0)), keep]), g.const(np.float32(-3.0e38))])
        return g.op("ReduceMax", [g.op("Add", [outputs, neg])], "max", axes=[0], keepdims=0)  # axes: an attribute at opset 17
    # attention: softmax over the real steps of a scored projection of each output
    att = model.attention
    scores = g.op("Add", [g.op("MatMul", [outputs, g.const(_f32(att.weight.t()), "att_w")]),
                          g.const(_f32(att.bias), "att_b")], "scores")                                   # (T, B, 1)
    neg = g.op("Mul", [g.op("Sub", [g.const(np.float32(1.0)), keep]), g.const(np.float32(-3.0e38))])
    weights = g.op("Softmax", [g.op("Add", [scores, neg])], "weights", axis=0)
    return g.op("ReduceSum", [g.op("Mul", [weights, outputs]), g.const(np.array([0], dtype=np.int64))], "attended",
                keepdims=0)


def export(loaded: LoadedModel, out: str | Path) -> Path:
    """Write out/model.onnx with the model's vocab.json, config.json and card beside it: everything a
    runtime needs to rate texts the way `predict` does. Returns the .onnx path."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a directory: name a directory for the exported model")
    if out.is_dir() and any(p.name not in ("model.onnx", "vocab.json", "config.json", "MODEL_CARD.md")
                            for p in out.iterdir()):
        raise ValueError(f"{out}: holds other files: export into a new or empty directory")
    if out.is_dir() and any(p.is_symlink() for p in out.iterdir()):
        raise ValueError(f"{out}: holds symbolic links: export into a new or empty directory")
    proto = build(loaded)
    # everything written into a fresh directory beside `out`, then moved in by rename: a failure
    # leaves nothing behind, and a name in `out` is replaced, never written through
    out.parent.mkdir(parents=True, exist_ok=True)
    new = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        (new / "model.onnx").write_bytes(proto.SerializeToString())
        src = Path(loaded.path)
        for name in ("vocab.json", "config.json", "MODEL_CARD.md"):
            if name != "MODEL_CARD.md" or (src / name).is_file():  # a model saved without a card exports without one
                shutil.copyfile(src / name, new / name)
        for f in new.iterdir():
            f.chmod(0o644)
        if not out.exists():
            new.rename(out)
        else:
            for f in sorted(new.iterdir()):
                os.replace(f, out / f.name)
    finally:
        shutil.rmtree(new, ignore_errors=True)
    return out / "model.onnx"


def onnx_ids(loaded: LoadedModel, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The inputs for a list of texts, read as `predict` reads them: (ids (P, T), lengths (P,)) over
    every pass, the text each pass belongs to (P,) and its weight in that text's average (P,)."""
    from reviewlstm.inference.predict import Predictor
    from reviewlstm.io.data import text_problem
    reader = Predictor(loaded)
    rows, owner, weight = [], [], []
    for i, t in enumerate(texts):
        problem = text_problem(t)
        if problem:  # predict's refusal: an empty text has nothing to read
            raise ValueError(f"text {i + 1} {problem}")
        for ids in reader.piece_ids(t):
            rows.append(ids or [1])  # an empty pass reads as one <unk>, as pad_batch has it
            owner.append(i)
            weight.append(max(len(ids), 1))
    width = max(len(r) for r in rows)
    ids = np.zeros((len(rows), width), dtype=np.int64)
    for j, r in enumerate(rows):
        ids[j, :len(r)] = r
    return ids, np.asarray([len(r) for r in rows], dtype=np.int64), np.asarray(owner), np.asarray(weight, float)


def describe(path: Path) -> str:
    meta = json.loads((path.parent / "config.json").read_text())["model"]
    return (f"{path} ({path.stat().st_size / 2**20:.1f} MB): inputs ids (B, T) int64 and lengths (B,) int64, outputs "
            f"probabilities and logits (B, {meta['scale_max'] - meta['scale_min'] + 1}); vocab.json beside it")
