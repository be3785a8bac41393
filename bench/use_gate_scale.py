"""The use gate's input scale in a trained four-gate model: what W_u reads and how saturated U is.

    python bench/use_gate_scale.py [--model DIR] [--dev ../shared/data/sst5/dev.txt] [--reviews 400]

The four-gate cell's use gate reads |forget| = |LTM ⊙ f| through W_u, U = tanh(W_u·forget + b_u);
printed: the mean and 95th percentile of |forget|, |remember|, |U| and of U's pre-activation, and the
share of |U| > 0.95 (saturated). For the classic cell, the same of c' and tanh(c'). Without --model:
the bundled model.
"""
import argparse

import torch

from reviewlstm import api
from reviewlstm.io.data import read_examples
from reviewlstm.inference.predict import pad_batch


def stats(name: str, t: torch.Tensor, mask: torch.Tensor) -> None:
    v = t[:, :, mask].abs()  # (layers, directions, B, T, H) -> the real steps only
    sample = v if v.numel() < 16e6 else v.flatten()[::7]
    print(f"{name:28s} mean|x| {v.mean():.3f}  p95 {sample.quantile(0.95):.3f}  max {v.max():.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="a model directory (default: the bundled model)")
    ap.add_argument("--dev", default="../shared/data/sst5/dev.txt")
    ap.add_argument("--reviews", type=int, default=400)
    args = ap.parse_args()
    loaded = api.load_model(args.model)
    m = loaded.model.eval()
    ex = list(read_examples(args.dev))[:args.reviews]
    ids = [loaded.vocab.encode([t.lower() for t in e.tokens]) for e in ex]
    x, lengths = pad_batch(ids)
    with torch.no_grad():
        _, g = m.from_embeddings(m.embed(x), lengths, return_gates=True)
    mask = torch.arange(x.shape[1])[None, :] < lengths[:, None]  # (B, T)
    if loaded.config.cell == "lstm":
        stats("forget = LTM*f (W_u input)", g["forget"], mask)
        stats("remember = LTM'", g["remember"], mask)
        stats("U", g["U"], mask)
        stats("W_u.forget + b_u", torch.atanh(g["U"].clamp(-0.999999, 0.999999)), mask)
        print("share |U| > 0.95:", float((g["U"][:, :, mask].abs() > 0.95).float().mean()))
    else:
        stats("remember = c'", g["remember"], mask)
        t = torch.tanh(g["remember"])
        stats("tanh(c')", t, mask)
        print("share |tanh c| > 0.95:", float((t[:, :, mask].abs() > 0.95).float().mean()))


if __name__ == "__main__":
    main()
