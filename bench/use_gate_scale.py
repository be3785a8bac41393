"""The use gate's input scale (issue 11): python bench/use_gate_scale.py bundled (or a model directory).

Use gate input scale: |forget| = |LTM⊙f| fed to W_u in the four-gate cell, the pre-activation W_u·forget+b_u,
and U's saturation; against the classic cell where use = o⊙tanh(c)."""
import sys, torch
from reviewlstm import api
from reviewlstm.data import read_examples
from reviewlstm.predict import pad_batch
path = sys.argv[1]
loaded = api.load_model(path if path != "bundled" else None)
m = loaded.model.eval()
ex = list(read_examples("../shared/data/sst5/dev.txt"))[:400]
ids = [loaded.vocab.encode([t.lower() for t in e.tokens]) for e in ex]
x, L = pad_batch(ids)
with torch.no_grad():
    logits, g = m.from_embeddings(m.embed(x), L, return_gates=True)
mask = (torch.arange(x.shape[1])[None, :] < L[:, None])  # (B, T)
def stats(name, t):
    v = t[:, :, mask].abs()  # (L, D, N, H) -> masked
    print(f"{name:28s} mean|x| {v.mean():.3f}  p95 {v.quantile(0.95) if v.numel()<16e6 else v.flatten()[::7].quantile(0.95):.3f}  max {v.max():.2f}")
cell = loaded.config.cell
if cell == "lstm":
    stats("forget = LTM*f (W_u input)", g["forget"])
    stats("remember = LTM'", g["remember"])
    U = g["U"]; stats("U", U)
    pre = torch.atanh(U.clamp(-0.999999, 0.999999)); stats("W_u.forget + b_u", pre)
    print("share |U| > 0.95:", float((U[:, :, mask].abs() > 0.95).float().mean()))
else:
    stats("remember = c'", g["remember"])
    t = torch.tanh(g["remember"]); stats("tanh(c')", t)
    print("share |tanh c| > 0.95:", float((t[:, :, mask].abs() > 0.95).float().mean()))
