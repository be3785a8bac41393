"""Why an LSTM: how far back a gradient reaches, and which cell solves a long-range task.

The task is the adding problem (Hochreiter & Schmidhuber, 1997): every step's event is a pair
(value, marker), values uniform in [0, 1]; two steps are marked, one among the first tenth of the
sequence and one in its second half, and the target is the sum of the two marked values, read from
the final state only. Predicting the mean (1.0) scores MSE 1/6; a cell that solves it must carry a
real number across up to T steps while ignoring the others. Why a value and not one bit: an RNN
can learn a saturated latch that holds one bit across many distractors, so a bit does not test
memory; a real number cannot be latched.

The measurement: for the loss on the final state, the norm of ∂loss/∂E_t (the gradient reaching
the event of step t), for every t. An RNN squashes its state through W_m and tanh at every step, so
this shrinks geometrically with the distance to the end; the LSTM's long-term memory is only scaled
by the forget gate, which training can hold near 1.
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from reviewlstm.nn.layers import Recurrent

BASELINE_MSE = 1.0 / 6.0  # always answering 1.0, the mean of the sum of two U(0, 1)
TOLERANCE = 0.04          # an answer within this of the target counts as correct
CHANCE = 0.0784           # P(|sum - 1| < 0.04) for the predict-the-mean answer


@dataclass
class StudyConfig:
    cells: tuple[str, ...] = ("lstm", "classic-lstm", "rnn")
    lengths: tuple[int, ...] = (25, 100)  # T, sequence lengths trained on
    gradient_length: int = 200            # sequence length at which gradient norms are measured
    hidden: int = 32
    batch: int = 64
    steps: int = 1500                     # at most, per (cell, T); stops early once solved
    lr: float = 1e-2
    clip: float = 1.0
    eval_every: int = 100
    eval_size: int = 512
    seed: int = 0
    threads: int | None = 1               # the loop is latency-bound: one thread is as fast as two
    solved_at: float = 0.9                # accuracy that ends training early


class Regressor(nn.Module):
    """Recurrent over (value, marker) events -> final short-term memory -> one number."""

    def __init__(self, cell: str, hidden: int):
        super().__init__()
        self.rnn = Recurrent(cell, 2, hidden)
        self.head = nn.Linear(hidden, 1)

    def forward(self, events: torch.Tensor) -> torch.Tensor:
        _, state = self.rnn(events)
        return self.head(state.stm[-1]).squeeze(1)  # (B,)


def make_batch(batch: int, T: int, generator: torch.Generator):
    """(events (B, T, 2), targets (B,)) of the adding problem."""
    values = torch.rand(batch, T, generator=generator)
    first = torch.randint(0, max(1, T // 10), (batch,), generator=generator)
    second = torch.randint(T // 2, T, (batch,), generator=generator)
    rows = torch.arange(batch)
    markers = torch.zeros(batch, T)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    return torch.stack([values, markers], dim=2), values[rows, first] + values[rows, second]


def gradient_norms(model: Regressor, T: int, cfg: StudyConfig, generator: torch.Generator) -> list[float]:
    """Mean over a batch of ||∂loss/∂E_t|| for t = 0..T-1 (t = T-1 is the last step).

    In float64: an RNN's gradient falls below float32's smallest number (1e-45) within ~100 steps,
    and we want to see how far it falls, not where float32 gives up.
    """
    model = copy.deepcopy(model).double()
    events, targets = make_batch(cfg.batch, T, generator)
    events = events.double().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.mse_loss(model(events), targets.double()), events)
    return grad.norm(dim=2).mean(dim=0).tolist()  # (T,)


@torch.no_grad()
def score(model: Regressor, T: int, cfg: StudyConfig, generator: torch.Generator) -> tuple[float, float]:
    """(accuracy within TOLERANCE, MSE) on fresh sequences."""
    events, targets = make_batch(cfg.eval_size, T, generator)
    pred = model(events)
    return ((pred - targets).abs() < TOLERANCE).float().mean().item(), F.mse_loss(pred, targets).item()


def train_on_task(cell: str, T: int, cfg: StudyConfig, log=print):
    """Train one model on sequences of length T; returns (model, accuracy, mse, steps, seconds)."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed + T)
    eval_gen = torch.Generator().manual_seed(10_000 + T)
    model = Regressor(cell, cfg.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    start, step = time.perf_counter(), 0
    for step in range(1, cfg.steps + 1):
        events, targets = make_batch(cfg.batch, T, gen)
        loss = F.mse_loss(model(events), targets)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
        if step % cfg.eval_every == 0 and score(model, T, cfg, eval_gen)[0] >= cfg.solved_at:
            break
    acc, mse = score(model, T, cfg, torch.Generator().manual_seed(20_000 + T))  # never seen in training
    seconds = time.perf_counter() - start
    log(f"  {cell:>12}  T={T:<4} accuracy {acc:6.1%}  MSE {mse:.4f}  after {step} steps, {seconds:.1f}s")
    return model, acc, mse, step, seconds


def run_study(cfg: StudyConfig, out_dir: str | Path, log=print) -> dict:
    """Measure, train, measure again; write gradients.json and gradients.png into out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    started = time.perf_counter()
    result: dict = {"task": "adding problem", "config": asdict(cfg), "chance": CHANCE, "baseline_mse": BASELINE_MSE,
                    "tolerance": TOLERANCE, "accuracy": {}, "mse": {}, "train_steps": {}, "train_seconds": {},
                    "gradient_norms": {"init": {}, "trained": {}}}
    longest = max(cfg.lengths)
    for cell in cfg.cells:
        torch.manual_seed(cfg.seed)
        fresh = Regressor(cell, cfg.hidden)
        result["gradient_norms"]["init"][cell] = gradient_norms(
            fresh, cfg.gradient_length, cfg, torch.Generator().manual_seed(cfg.seed))
        for key in ("accuracy", "mse", "train_steps", "train_seconds"):
            result[key][cell] = {}
        for T in cfg.lengths:
            model, acc, mse, steps, secs = train_on_task(cell, T, cfg, log)
            result["accuracy"][cell][str(T)] = acc
            result["mse"][cell][str(T)] = mse
            result["train_steps"][cell][str(T)] = steps
            result["train_seconds"][cell][str(T)] = round(secs, 2)
            if T == longest:  # the trained model's reach, measured at the same long length as at init
                result["gradient_norms"]["trained"][cell] = gradient_norms(
                    model, cfg.gradient_length, cfg, torch.Generator().manual_seed(cfg.seed))
    result["summary"] = summarize(result, cfg)
    result["seconds"] = round(time.perf_counter() - started, 1)
    (out / "gradients.json").write_text(json.dumps(result, indent=1))
    plot(result, out / "gradients.png")
    return result


def summarize(result: dict, cfg: StudyConfig) -> dict:
    """Gradient norm 50 steps before the end relative to the last step, and the longest T solved
    (MSE below a tenth of the predict-the-mean baseline)."""
    summary = {}
    for cell in cfg.cells:
        row = {}
        for phase, norms in result["gradient_norms"].items():
            g = norms.get(cell)
            if g:
                back = min(50, len(g) - 1)
                row[f"{phase}_ratio_{back}_back"] = g[-1 - back] / g[-1] if g[-1] > 0 else 0.0
        solved = [int(T) for T, m in result["mse"][cell].items() if m < BASELINE_MSE / 10]
        row["longest_solved_T"] = max(solved) if solved else 0
        summary[cell] = row
    return summary


def plot(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"lstm": "tab:blue", "classic-lstm": "tab:green", "rnn": "tab:red"}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for phase, style in (("init", "--"), ("trained", "-")):
        for cell, norms in result["gradient_norms"][phase].items():
            back = list(range(len(norms) - 1, -1, -1))  # words before the end
            ax1.semilogy(back, [max(n, 1e-300) for n in norms], style, color=colors.get(cell),
                         label=f"{cell} ({'at init' if phase == 'init' else 'trained'})")
    ax1.set_xlabel("steps before the end of the sequence")
    ax1.set_ylabel("‖∂loss/∂E_t‖ (mean over a batch)")
    ax1.set_title("How far back the gradient reaches")
    ax1.legend(fontsize=8)
    for cell, accs in result["accuracy"].items():
        Ts = sorted(int(t) for t in accs)
        ax2.plot(Ts, [accs[str(t)] for t in Ts], "o-", color=colors.get(cell), label=cell)
    ax2.axhline(result["chance"], color="gray", ls=":", label="predict the mean")
    ax2.set_xscale("log")
    ax2.set_ylim(0.0, 1.02)
    ax2.set_xlabel("T, sequence length")
    ax2.set_ylabel(f"accuracy (|error| < {TOLERANCE}, fresh sequences)")
    ax2.set_title("The adding problem")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(x: float) -> str:
    return f"{x:.1e}" if x and (abs(x) < 1e-2 or abs(x) >= 1e3) else f"{x:.3f}"


def report(result: dict) -> str:
    """A few lines for the terminal."""
    lines = ["cell           " + "  ".join(f"T={t:<5}" for t in result["config"]["lengths"]) + "  grad 50 back / last (init, trained)"]
    for cell, accs in result["accuracy"].items():
        s = result["summary"][cell]
        ratios = [v for k, v in s.items() if "ratio" in k]
        lines.append(f"{cell:<14} " + "  ".join(f"{accs[str(t)]:6.1%} " for t in result["config"]["lengths"])
                     + "  " + ", ".join(_fmt(r) for r in ratios))
    return "\n".join(lines)
