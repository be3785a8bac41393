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
import re
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from reviewlstm.inference.card import model_card
from reviewlstm.nn.model import ModelConfig, RatingModel, weights_to_be_loaded
from reviewlstm.io.text import Vocab

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
    from reviewlstm import __version__
    return {"reviewlstm": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


CHECKED = ("model.safetensors", "config.json", "vocab.json")  # their sha256 is in metadata.json


# What a model directory may hold: its files, its card, the training curves and checkpoint, and the
# temporary names this package gives them while writing. Anything else is the user's, and a save
# never moves or deletes it: an --out holding such files is refused before training starts.
OWNED = frozenset({*FILES, "MODEL_CARD.md", "curves.png", "curves.json", "checkpoint"})
_OWNED_TEMPORARY = re.compile(r"^\.(checkpoint|metadata\.json|MODEL_CARD\.md)\.(new|old|tmp)-")


def check_output(out_dir: str | Path) -> Path:
    """`out_dir` made absolute, or ArtifactError when a model cannot be written there without
    touching files that are not a model's (a user's own directory, `--out .` in their home)."""
    out = Path(out_dir).expanduser().resolve()
    if out.parent == out:
        raise ArtifactError(f"{out}: a model cannot be written to the root of the filesystem: name a directory of its own")
    if out.exists() and not out.is_dir():
        raise ArtifactError(f"{out}: is a file, and a model is a directory: choose another --out")
    if out.is_dir():
        foreign = sorted(c.name for c in out.iterdir() if c.name not in OWNED and not _OWNED_TEMPORARY.match(c.name))
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise ArtifactError(f"{out}: holds files that are not a model's ({shown}); a model is written by replacing "
                                "its whole directory, so choose a new or empty directory for --out")
    return out


class OutputLock:
    """One writer per model directory: an exclusive `flock` on `.NAME.lock` beside it, held while a
    run trains and saves there. The kernel drops the lock when its holder dies, however it dies, so
    a killed run never blocks the next. A second run into the same directory fails at once."""

    _held: set = set()  # the directories this process holds: a nested lock (distill's student) passes

    def __init__(self, out_dir: str | Path):
        self.out = Path(out_dir).expanduser().resolve()
        self.path = self.out.parent / f".{self.out.name}.lock"
        self.fd: int | None = None
        self.nested = False

    def __enter__(self) -> "OutputLock":
        import fcntl
        if self.out in OutputLock._held:
            self.nested = True
            return self
        self.out.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "another process"
                os.close(fd)
                raise ArtifactError(f"{self.out}: another run (pid {holder}) is writing a model there now: wait for it "
                                    "to finish, or choose another --out") from None
            try:  # the file we locked must still be the one at the path (a finishing run unlinks it)
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self.fd = fd
        OutputLock._held.add(self.out)
        return self

    def __exit__(self, *exc) -> None:
        if self.nested:
            return
        OutputLock._held.discard(self.out)
        if self.fd is not None:
            try:
                self.path.unlink(missing_ok=True)  # unlinked while held: a waiter re-checks the inode
            finally:
                os.close(self.fd)
                self.fd = None


def save(out_dir: str | Path, model: RatingModel, vocab: Vocab, train_config: dict, metadata: dict) -> Path:
    """Write the artifact into a new directory beside `out_dir`, then swap it into place: a crash at
    any moment leaves the previous model whole (in `out_dir`, or, between the two renames, in
    `.NAME.old-*` beside it, which `load` points to). The checkpoint and curves in `out_dir` move
    into the new one; a directory holding anything else is refused (check_output), and on any
    failure what was moved is put back."""
    import shutil
    import uuid
    from safetensors.torch import save_file
    out = check_output(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    new = out.parent / f".{out.name}.new-{tag}"
    old = out.parent / f".{out.name}.old-{tag}"
    new.mkdir()
    moved: list[str] = []
    swapped = False
    try:
        tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(tensors, str(new / "model.safetensors"), metadata={"format": FORMAT})
        config = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": model.config.to_dict(),
                  "train": train_config}
        (new / "config.json").write_text(json.dumps(config, indent=1))
        vocab.save(new / "vocab.json")
        metadata = {**metadata, "versions": versions(),
                    "sha256": {**{f: file_sha256(new / f) for f in CHECKED}, **_metadata_sums(metadata)}}
        (new / "metadata.json").write_text(json.dumps(metadata, indent=1))
        (new / "MODEL_CARD.md").write_text(model_card(model.config, train_config, metadata))
        # the weights as readable as their neighbours (the safetensors writer makes its file 0600)
        os.chmod(new / "model.safetensors", (new / "config.json").stat().st_mode & 0o777)
        for f in new.iterdir():
            _fsync(f)
        if out.exists():
            for child in out.iterdir():
                if child.name in OWNED and child.name not in (*FILES, "MODEL_CARD.md"):
                    child.rename(new / child.name)
                    moved.append(child.name)
            out.rename(old)
            new.rename(out)
            swapped = True
            shutil.rmtree(old, ignore_errors=True)
        else:
            new.rename(out)
            swapped = True
    except BaseException:
        if not swapped:
            if old.exists() and not out.exists():
                old.rename(out)
            for name in moved:  # put back what was moved, then remove only what this save wrote
                if (new / name).exists() and not (out / name).exists():
                    (new / name).rename(out / name)
            shutil.rmtree(new, ignore_errors=True)
        raise
    return out


def write_metadata(out_dir: str | Path, metadata: dict, card: str | None = None) -> None:
    """Replace metadata.json (and the card) of a saved model, each file whole or not at all."""
    out = Path(out_dir)
    try:  # the checked files are unchanged: their recorded sums stay those of the files on disk
        sums = json.loads((out / "metadata.json").read_text())["sha256"]
        metadata = {**metadata, "sha256": {**{k: v for k, v in sums.items() if k in CHECKED},
                                           **_metadata_sums(metadata)}}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    for name, text in (("metadata.json", json.dumps(metadata, indent=1)), ("MODEL_CARD.md", card)):
        if text is None:
            continue
        tmp = out / f".{name}.tmp-{os.getpid()}"
        tmp.write_text(text, encoding="utf-8")
        _fsync(tmp)
        tmp.replace(out / name)


def _metadata_sums(metadata: dict) -> dict:
    """The sha256 of what metadata.json holds that changes a prediction (the rating-set scores), kept
    beside the files' own: an edit of them is refused at load like an edited weight."""
    from reviewlstm.inference.conformal import digest
    return {"conformal": digest(metadata["conformal"])} if metadata.get("conformal") is not None else {}


def file_record(path, n: int) -> dict:
    """A data file as a model's metadata records it: where it was, its sha256, how many examples."""
    return {"path": str(path), "sha256": file_sha256(Path(path)), "examples": n}


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
    except RecursionError:
        raise ArtifactError(f"{path}: JSON nested too deep to be a reviewlstm model file") from None
    except ValueError as e:  # a number of more digits than Python converts
        raise ArtifactError(f"{path}: not a reviewlstm model file ({str(e).splitlines()[0][:120]})") from None


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
    if not isinstance(metadata, dict):
        raise ArtifactError(f"{path / 'metadata.json'}: expected a JSON object, got {type(metadata).__name__}: "
                            "the file was replaced or damaged")
    sums = metadata.get("sha256") if isinstance(metadata.get("sha256"), dict) else {}
    unchecked = [name for name in CHECKED if not isinstance(sums.get(name), str)]
    if unchecked:  # an older model (or edited metadata): it loads, and the user is told it is unverified
        print(f"reviewlstm: warning: {path / 'metadata.json'} records no sha256 for {', '.join(unchecked)}: "
              "those files load unchecked (a damaged or edited file would not be noticed)", file=sys.stderr, flush=True)
    for name in CHECKED:
        if name not in unchecked and file_sha256(path / name) != sums[name]:
            raise ArtifactError(f"{path / name}: its sha256 does not match the one recorded in metadata.json "
                                    "when the model was saved: the file was changed or damaged")
    if "conformal" in metadata:  # the rating sets' scores: as calibrate wrote them, or refused here
        from reviewlstm.inference.conformal import check, digest
        try:
            check(metadata["conformal"], str(path / "metadata.json"))
        except ValueError as e:
            raise ArtifactError(str(e)) from None
        recorded = sums.get("conformal")
        if recorded is not None and recorded != digest(metadata["conformal"]):
            raise ArtifactError(f"{path / 'metadata.json'}: conformal: its sha256 does not match the one recorded when "
                                "the model was saved: the rating-set calibration was edited or damaged")
    try:
        vocab = Vocab.load(path / "vocab.json")
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{path / 'vocab.json'}:{e.lineno}: not valid JSON ({e.msg}): corrupt or truncated") from None
    except RecursionError:
        raise ArtifactError(f"{path / 'vocab.json'}: JSON nested too deep to be a vocabulary") from None
    except ValueError as e:
        raise ArtifactError(f"{path / 'vocab.json'}: {str(e).splitlines()[0][:200]}") from None
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
    _check_sizes(path, model_config, shapes)
    try:
        tensors = load_file(str(path / "model.safetensors"))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ArtifactError(f"{path / 'model.safetensors'}: cannot read the weights ({str(e).splitlines()[0]}): "
                            "the file is corrupt, truncated or not safetensors") from None
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ArtifactError(f"{path / 'model.safetensors'}: {len(bad)} weight tensor(s) hold NaN or infinity "
                            f"({', '.join(bad[:3])}): the model cannot rate anything")
    with weights_to_be_loaded():  # no random draws that the load would overwrite
        model = RatingModel(model_config)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise ArtifactError(f"{path / 'model.safetensors'}: the weights do not fit the config ({first})") from None
    model.to(device).eval()
    return LoadedModel(model, vocab, model_config, config.get("train", {}), metadata, path)


def _check_sizes(path: Path, cfg: ModelConfig, shapes: dict[str, tuple]) -> None:
    """Every size in config.json checked against the names and shapes in the safetensors header, from
    the numbers alone, before anything is allocated: a tampered size (a scale of 10**15 ratings, 10**7
    layers) is one short error, not a MemoryError or gigabytes spent before refusing."""
    where = f"{path}: config.json and model.safetensors do not belong together"
    directions = 2 if cfg.bidirectional else 1
    n_ratings = cfg.scale_max - cfg.scale_min + 1  # not len(cfg.ratings): that would build the list
    want = {"embedding.weight": (cfg.vocab_size, cfg.embed_dim), "head.weight": (n_ratings, cfg.hidden * directions)}
    for name, shape in want.items():
        if shapes.get(name) != shape:
            raise ArtifactError(f"{where}: the config describes {name} of shape {shape}, the weights hold "
                                f"{shapes.get(name, 'none')}")
    layers = {int(m.group(1)) for k in shapes if (m := re.match(r"rnn\..*_l(\d+)(?:_reverse)?$", k))}
    if len(layers) != cfg.num_layers:
        raise ArtifactError(f"{where}: the config says num_layers {cfg.num_layers}, the weights hold "
                            f"{len(layers)} layer(s)")
    # the sizes agree: the network's every name and shape, built on the meta device (no memory)
    with torch.device("meta"), weights_to_be_loaded():
        expected = {k: tuple(v.shape) for k, v in RatingModel(cfg).state_dict().items()}
    if expected != shapes:
        diff = sorted(set(expected) ^ set(shapes)) or [k for k in expected if expected[k] != shapes[k]]
        k = diff[0]
        raise ArtifactError(f"{where}: {len(diff)} weight(s) differ, first {k} (the config expects "
                            f"{expected.get(k, 'none')}, the weights hold {shapes.get(k, 'none')})")


_CACHE: dict[str, LoadedModel] = {}


def default_model_path() -> Path:
    """The model that ships inside the package (the four-gate LSTM trained on SST-5)."""
    return Path(str(resources.files("reviewlstm") / "default_model"))


def start_model_path() -> Path:
    """The start `train` takes for reviews read whole (`--init-from auto`): an SST-5 model trained
    with the long-review recipe's own dropout (its card says why it ships beside the default)."""
    return Path(str(resources.files("reviewlstm") / "start_model"))


def load_model(path: "str | os.PathLike | LoadedModel | None" = None, device: str = "cpu") -> LoadedModel:
    """Load a model directory (the bundled model when path is None; any path-like, the result of
    `train` or `distill` too) onto `device` ("cpu", "cuda",
    "cuda:1", or "auto": CUDA when there is one); cached per path and device. Everything that takes
    `model=` runs on the device of the LoadedModel given."""
    if isinstance(path, LoadedModel):  # already loaded (a caller chose its device)
        return path
    p = Path(path) if path is not None else default_model_path()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: this torch sees no CUDA GPU (use cpu or auto)")
    key = f"{p.resolve()}@{device}"
    if key not in _CACHE:
        if path is None and not (p / "config.json").exists():
            raise ArtifactError(f"{p}: the bundled model is missing from this installation; pass --model DIR")
        _CACHE[key] = load(p, device=device)
    return _CACHE[key]


def forget(path: str | Path) -> None:
    """Drop a model directory from `load_model`'s cache (on every device): it was rewritten in place."""
    for key in [k for k in _CACHE if k.startswith(f"{Path(path).resolve()}@")]:
        del _CACHE[key]
