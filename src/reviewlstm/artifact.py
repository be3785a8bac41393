"""The model artifact: a directory that rebuilds exactly what was trained, never unpickled.

    model.safetensors   the weights
    config.json         {"format": "reviewlstm-model", "format_version": 1, "model": ModelConfig, "train": {...}}
    vocab.json          the vocabulary, a JSON list (id = position)
    metadata.json       training data hash, dev metrics, package versions, embedding coverage
    MODEL_CARD.md       what it was trained on, its scores, its limits
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from .model import ModelConfig, RatingModel
from .text import Vocab

FORMAT, FORMAT_VERSION = "reviewlstm-model", 1
FILES = ("model.safetensors", "config.json", "vocab.json", "metadata.json")


class ArtifactError(ValueError):
    """A model directory that cannot be loaded: missing, corrupt, truncated or foreign files."""


@dataclass
class LoadedModel:
    model: RatingModel
    vocab: Vocab
    config: ModelConfig
    train_config: dict
    metadata: dict
    path: Path


def versions() -> dict:
    import numpy
    from . import __version__
    return {"reviewlstm": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


CHECKED = ("model.safetensors", "config.json", "vocab.json")  # their sha256 is in metadata.json
STAGES = {"teacher": "teacher fine-tuning", "augment": "augmenting", "label": "labelling",
          "augment_and_label": "augmenting and labelling", "student": "student"}


def save(out_dir: str | Path, model: RatingModel, vocab: Vocab, train_config: dict, metadata: dict) -> Path:
    """Write the artifact into a new directory beside `out_dir`, then swap it into place: a crash at
    any moment leaves the previous model whole (in `out_dir`, or, between the two renames, in
    `.NAME.old-*` beside it, which `load` points to). Anything else in `out_dir` (a training
    checkpoint) moves into the new one."""
    import shutil
    import uuid
    from safetensors.torch import save_file
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    new = out.parent / f".{out.name}.new-{tag}"
    new.mkdir()
    try:
        tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(tensors, str(new / "model.safetensors"), metadata={"format": FORMAT})
        config = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": model.config.to_dict(),
                  "train": train_config}
        (new / "config.json").write_text(json.dumps(config, indent=1))
        vocab.save(new / "vocab.json")
        metadata = {**metadata, "versions": versions(), "sha256": {f: file_sha256(new / f) for f in CHECKED}}
        (new / "metadata.json").write_text(json.dumps(metadata, indent=1))
        (new / "MODEL_CARD.md").write_text(model_card(model.config, train_config, metadata))
        for f in new.iterdir():
            _fsync(f)
        if out.exists():
            for child in out.iterdir():
                if child.name not in (*FILES, "MODEL_CARD.md"):
                    child.rename(new / child.name)
            old = out.parent / f".{out.name}.old-{tag}"
            out.rename(old)
            new.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            new.rename(out)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    return out


def write_metadata(out_dir: str | Path, metadata: dict, card: str | None = None) -> None:
    """Replace metadata.json (and the card) of a saved model, each file whole or not at all."""
    out = Path(out_dir)
    try:  # the checked files are unchanged: their recorded sums stay those of the files on disk
        metadata = {**metadata, "sha256": json.loads((out / "metadata.json").read_text())["sha256"]}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    for name, text in (("metadata.json", json.dumps(metadata, indent=1)), ("MODEL_CARD.md", card)):
        if text is None:
            continue
        tmp = out / f".{name}.tmp-{os.getpid()}"
        tmp.write_text(text, encoding="utf-8")
        _fsync(tmp)
        tmp.replace(out / name)


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ArtifactError(f"{path}: not UTF-8 text: not a reviewlstm model file") from None
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{path}:{e.lineno}: not valid JSON ({e.msg}): the file is corrupt or truncated") from None


def load(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the model from a directory written by :func:`save`; raise ArtifactError with the reason."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    path = Path(path)
    if not path.is_dir():
        left = sorted(path.parent.glob(f".{path.name}.old-*")) if not path.exists() else []
        if left:
            raise ArtifactError(f"{path}: no such model directory; a save was interrupted and the previous model "
                                f"is in {left[-1]}: rename it to {path}")
        raise ArtifactError(f"{path}: no such model directory" if not path.exists() else
                            f"{path}: a model is a directory (with {', '.join(FILES)}), not a file")
    missing = [f for f in FILES if not (path / f).is_file()]
    if missing:
        raise ArtifactError(f"{path}: not a reviewlstm model: missing {', '.join(missing)}")
    config = _read_json(path / "config.json")
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ArtifactError(f"{path / 'config.json'}: not a reviewlstm model config (no \"format\": \"{FORMAT}\")")
    if config.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{path / 'config.json'}: model format version {config.get('format_version')} "
                            f"is not supported (this reviewlstm reads version {FORMAT_VERSION})")
    try:
        model_config = ModelConfig.from_dict(config["model"])
        model_config.validate()
    except (KeyError, TypeError, ValueError) as e:
        raise ArtifactError(f"{path / 'config.json'}: bad model config: {e}") from None
    metadata = _read_json(path / "metadata.json")
    sums = metadata.get("sha256") if isinstance(metadata, dict) else None
    if isinstance(sums, dict):  # models saved before checksums were recorded load unchecked
        for name in CHECKED:
            if name in sums and file_sha256(path / name) != sums[name]:
                raise ArtifactError(f"{path / name}: its sha256 does not match the one recorded in metadata.json "
                                    "when the model was saved: the file was changed or damaged")
    try:
        vocab = Vocab.load(path / "vocab.json")
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{path / 'vocab.json'}:{e.lineno}: not valid JSON ({e.msg}): corrupt or truncated") from None
    except ValueError as e:
        raise ArtifactError(f"{path / 'vocab.json'}: {e}") from None
    if len(vocab) != model_config.vocab_size:
        raise ArtifactError(f"{path}: vocab.json has {len(vocab)} tokens but the model was built for "
                            f"{model_config.vocab_size}")
    try:
        from safetensors import safe_open
        with safe_open(str(path / "model.safetensors"), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ArtifactError(f"{path / 'model.safetensors'}: cannot read the weights ({str(e).splitlines()[0]}): "
                            "the file is corrupt, truncated or not safetensors") from None
    # the config's sizes checked against the file's shapes before anything is allocated
    want = {"embedding.weight": (model_config.vocab_size, model_config.embed_dim),
            "head.weight": (len(model_config.ratings), model_config.hidden * (2 if model_config.bidirectional else 1))}
    for name, shape in want.items():
        if shapes.get(name) != shape:
            raise ArtifactError(f"{path}: config.json describes {name} of shape {shape}, model.safetensors holds "
                                f"{shapes.get(name, 'none')}: the files do not belong together")
    try:
        tensors = load_file(str(path / "model.safetensors"))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ArtifactError(f"{path / 'model.safetensors'}: cannot read the weights ({str(e).splitlines()[0]}): "
                            "the file is corrupt, truncated or not safetensors") from None
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ArtifactError(f"{path / 'model.safetensors'}: {len(bad)} weight tensor(s) hold NaN or infinity "
                            f"({', '.join(bad[:3])}): the model cannot rate anything")
    model = RatingModel(model_config)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise ArtifactError(f"{path / 'model.safetensors'}: the weights do not fit the config ({first})") from None
    model.to(device).eval()
    return LoadedModel(model, vocab, model_config, config.get("train", {}), metadata, path)


def model_card(cfg: ModelConfig, train: dict, meta: dict) -> str:
    dev = meta.get("dev_metrics") or {}
    data = meta.get("train_data", {})
    lines = [
        "# reviewlstm model card", "",
        f"A {'bidirectional ' if cfg.bidirectional else ''}{cfg.cell} ({cfg.num_layers} layer(s), hidden {cfg.hidden}, "
        f"{cfg.pooling} pooling) over {cfg.embed_dim}-d {train.get('embeddings', '?')} embeddings, "
        f"rating {cfg.scale_min}..{cfg.scale_max}.", "",
        "## Trained on", "",
        f"- {data.get('path', '?')} (sha256 {data.get('sha256', '?')[:16]}…), {data.get('examples', '?')} examples"
        f"{' (every labelled phrase)' if train.get('phrases') else ''}",
        f"- {train.get('epochs', '?')} epochs at most, seed {train.get('seed', '?')}, best epoch {meta.get('best_epoch', '?')}",
        "", "## Scores (dev)", "",
    ]
    majority = meta.get("majority_rating")

    def scores(m: dict) -> str:
        return (f"accuracy {m['accuracy']:.1%}, macro-F1 {m['macro_f1']:.3f}, MAE {m['mae']:.3f} stars, "
                f"within ±1 star {m['within_one']:.1%}, QWK {m['qwk']:.3f}")

    def section(m: dict | None, about: str, baseline: dict | None, missing: str) -> list[str]:
        if not m:
            return [missing]
        out = [f"- {m.get('n')} {about}", f"- {scores(m)}"]
        return out + ([f"- always {majority} stars would score: {scores(baseline)}"] if baseline else [])

    lines += section(dev, f"examples from {(meta.get('dev_data') or {}).get('path', '?')} (the checkpoint was chosen "
                          "on them, so this figure is optimistic by the choosing)",
                     meta.get("dev_majority_metrics"), "- no dev set was given")
    lines += ["", "## Scores (validation slice, untouched)", ""]
    lines += section(meta.get("holdout_metrics"), "training reviews set aside by a hash of their text before "
                     "training, never used for any choice, scored once on the kept model",
                     meta.get("holdout_majority_metrics"),
                     "- no validation slice was set aside (holdout 0)" if "holdout_data" in meta else "- not scored yet")
    if meta.get("reading"):
        lines += ["", "## Reading", "", f"- {meta['reading']}"]
    if meta.get("distillation"):
        d = meta["distillation"]
        trained = d.get("teacher_trained") or {}
        lines += ["", "## Distilled from a teacher", "",
                  f"- teacher: {d.get('teacher_source')} fine-tuned on {trained.get('examples', '?')} training examples "
                  f"({trained.get('epochs', '?')} epoch(s), lr {trained.get('lr', '?')}, at most "
                  f"{d.get('teacher_max_length')} wordpieces; kept in {d.get('teacher')})"]
        if d.get("teacher_dev_metrics"):
            lines.append(f"- the teacher on dev: {scores(d['teacher_dev_metrics'])}")
        lines += [f"- trained on {d.get('labelled_texts')} training texts with the teacher's logits and "
                  f"{d.get('augmented_texts')} augmented texts (masking {d.get('mask_p')}, GloVe neighbours "
                  f"{d.get('replace_p')}, n-grams {d.get('ngram_p')}) with the teacher's alone",
                  f"- loss: {d.get('alpha')} x cross-entropy on the gold rating + {1 - d.get('alpha', 0):g} x "
                  f"T^2 x KL(teacher || student), T = {d.get('temperature')}",
                  "- time per stage: " + ", ".join(f"{STAGES.get(k, k)} {v:,.0f} s" for k, v in (d.get("seconds") or {}).items())
                  + " (the work itself, whichever run did it: a resumed or cached stage counts what it first cost)"]
    if meta.get("curves"):
        lines += ["", "## Training curves", "",
                  f"![training curves]({meta['curves']['png']})", "",
                  f"The loss, dev accuracy and MAE at every check, the kept checkpoint marked; the numbers are in "
                  f"[{meta['curves']['json']}]({meta['curves']['json']})."]
    if meta.get("warnings"):
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in meta["warnings"]]
    lines += ["", "## Limits", "",
              "- Trained on one domain (the training file's); reviews of other things, other languages, sarcasm "
              "and very long texts read less well.",
              f"- Texts longer than {cfg.max_length} tokens are not read whole (see the README on long reviews).",
              "- Words never seen in training or in the pretrained vectors read as <unk>.", ""]
    return "\n".join(lines)
