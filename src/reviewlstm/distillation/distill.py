"""`reviewlstm distill`: a transformer's accuracy in an LSTM's speed (Tang et al. 2019, "Distilling
Task-Specific Knowledge from BERT into Simple Neural Networks").

One story of six stages, each resumable and its output kept in the work directory (`OUT.work` by default):

1. data      the training file less the validation slice, exactly as `train` splits it (so the slice
             stays untouched by the teacher too)
2. teacher   a Hugging Face encoder fine-tuned on those reviews (teacher.py), saved in WORK/teacher
3. augment   new texts from the training reviews: words masked, words swapped for a GloVe nearest
             neighbour, n-grams sampled (Tang et al.'s recipe; GloVe neighbours in place of their
             part-of-speech swaps), `augment` per review, seeded
4. unrated   the user's unrated reviews (--unlabeled), more transfer text: new texts only, none of
             the slice's or dev's
5. label     the teacher's logits for every training text and augmented text, cached text by text in
             WORK/labels/<teacher fingerprint>/: a student retrains without the teacher, and another
             seed, another cap or another file labels only the texts no run labelled before
6. student   `train()` on the gold ratings plus the teacher's soft targets (TrainConfig.transfer):
             an ordinary reviewlstm model, the teacher and the recipe on its card
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from reviewlstm.inference import artifact, card
from reviewlstm.training import checkpoint, loop
from reviewlstm.distillation.config import DistillConfig
from reviewlstm.distillation.teacher import MASK, FineTuneConfig, Teacher, fine_tune, resolve_precision
from reviewlstm.io.text import text_tokens
from reviewlstm.io.data import BadRows
from reviewlstm.training.config import TrainConfig
from reviewlstm.training.recipe import reading_rule
from reviewlstm.training.examples import training_examples
from reviewlstm.training.transfer import TOKEN_SEP
from reviewlstm.training.train import train as train_student

@dataclass
class DistillResult:
    out: Path | None          # the student (None when stopped early with `until`)
    teacher: Path
    transfer: Path | None
    seconds: dict             # per stage
    student: object = None    # train()'s TrainResult
    teacher_check: dict | None = None  # the teacher and TF-IDF + LR on dev, side by side (`teacher_check`)

    def __fspath__(self) -> str:
        """Path-like, as the student: `predict(..., model=result)` reads it."""
        if self.out is None:
            raise ValueError(f"this distillation stopped before the student (its teacher: {self.teacher})")
        return str(self.out)


def distill(cfg: DistillConfig, log: Callable[[str], None] = print) -> DistillResult:
    """The pipeline, stage by stage (the module's docstring); `--out` is checked and locked before
    the teacher starts, so a second distill into it fails at once, not hours later."""
    cfg.validate()
    artifact.check_output(cfg.student.out)
    with artifact.OutputLock(cfg.student.out):
        return _distill(cfg, log)


def _distill(cfg: DistillConfig, log: Callable[[str], None]) -> DistillResult:
    st = cfg.student
    out = Path(st.out)
    if st.resume and not (checkpoint.location(out) / "state.json").exists() and (out / "metadata.json").is_file():
        try:
            finished = "distillation" in json.loads((out / "metadata.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            finished = False
        if finished:
            log(f"distill: {out} is finished (its student was written and recorded): nothing to resume; "
                "--overwrite starts again")
            return DistillResult(out, cfg.work_dir / "teacher", cfg.work_dir / "transfer.jsonl.gz", {})
    work = cfg.work_dir
    work.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    if st.threads:
        import torch
        torch.set_num_threads(st.threads)

    # -- 1. data: what train() will train on, the slice set aside the same way
    t0 = time.perf_counter()
    kept, held = training_examples(st, BadRows())
    tokens = [text_tokens(e.text, e.tokens, st.lowercase) for e in kept]
    data_sha = artifact.file_sha256(Path(st.train))
    log(f"distill: {len(kept)} training examples from {st.train}"
        + (f" ({len(held)} set aside as the validation slice, never seen by the teacher either)" if held else "")
        + f"; work directory {work}")

    # -- 2. teacher
    teacher, teacher_dir = _teacher(cfg, kept, tokens, data_sha, work, log)
    # each stage's cost is what doing its work took, whichever run did it: a resumed or cached
    # stage would otherwise report the seconds it took to load
    fine_tuned = (teacher.info.trained or {}).get("seconds")
    seconds["teacher"] = round(fine_tuned if fine_tuned is not None else time.perf_counter() - t0, 3)
    check, baseline = teacher_check(cfg, teacher, kept, tokens, log) if st.dev else (None, None)
    if cfg.until == "teacher":
        return DistillResult(None, teacher_dir, None, seconds, teacher_check=check)

    # -- 3. augment: from each review (an SST sentence, not its every phrase), seeded
    t0 = time.perf_counter()
    roots = _roots(kept, tokens)
    augmented = augment(roots, cfg.augment, np.random.default_rng(st.seed), _neighbours(roots) if cfg.replace_p else {},
                        cfg.mask_p, cfg.replace_p, cfg.ngram_p, exclude={TOKEN_SEP.join(t) for t in tokens})
    log(f"augment: {len(augmented)} new texts from {len(roots)} reviews ({cfg.augment} each asked; "
        f"mask {cfg.mask_p}, GloVe neighbour {cfg.replace_p}, n-gram {cfg.ngram_p})")

    # -- 4. unrated reviews: more transfer text, new texts only
    unique = list(dict.fromkeys(TOKEN_SEP.join(t) for t in tokens))
    student_reads = reading_rule(st, kept, tokens)[0]  # how train will read long texts: so are the unrated
    unrated = unlabeled_texts(cfg, exclude=set(unique) | {TOKEN_SEP.join(t) for t in augmented}, log=log,
                              student_reads=student_reads, withheld=_withheld(st, held))

    # -- 5. label: the teacher's logits for every text, cached
    texts = [k.split(TOKEN_SEP) for k in unique] + augmented + unrated
    seconds["augment"] = round(time.perf_counter() - t0, 3)
    precision = resolve_precision(cfg.teacher_precision, next(teacher.parameters()).device)
    log(labelling_estimate(teacher, texts, work / "labels", cfg.label_batch_size, precision))
    logits, label_seconds = label(teacher, texts, work / "labels", cfg.label_batch_size, st.progress, log,
                                  precision=precision)
    weight = check["ensemble"]["weight"] if check and "ensemble" in check else 1.0
    if weight < 1.0:
        t0 = time.perf_counter()
        logits = ensemble_logits(logits, texts, len(unique), kept, tokens, weight, baseline, st.seed,
                                 list(range(st.scale_min, st.scale_max + 1)))
        log(f"label: the teacher's distributions mixed with TF-IDF + LR's ({weight:g} : {1 - weight:g}; the training "
            f"texts' out of fold), {time.perf_counter() - t0:.0f} s")
    transfer = work / "transfer.jsonl.gz"
    _write_transfer(transfer, texts, logits, len(unique), len(unique) + len(augmented))
    seconds["label"] = round(label_seconds, 3)
    if cfg.until == "label":
        return DistillResult(None, teacher_dir, transfer, seconds, teacher_check=check)

    # -- 6. student: an ordinary reviewlstm model, trained on the gold ratings and the teacher's
    t0 = time.perf_counter()
    del teacher  # the student trains without the teacher in memory
    result = train_student(replace(st, transfer=str(transfer)), log=log)
    seconds["student"] = round(time.perf_counter() - t0, 3)
    _record(Path(st.out), cfg, teacher_dir, len(unique), len(augmented), seconds, len(unrated), check)
    return DistillResult(Path(st.out), teacher_dir, transfer, seconds, result, check)


def _teacher(cfg: DistillConfig, kept, tokens, data_sha: str, work: Path, log):
    """A fine-tuned teacher: the one given, the one already in WORK/teacher for the same data and
    settings, or a new one (resumed from WORK/teacher-checkpoint with --resume)."""
    import torch
    st = cfg.student
    device = torch.device("cuda" if st.device == "auto" and torch.cuda.is_available() else
                          "cpu" if st.device == "auto" else st.device)
    given = Path(cfg.teacher)
    if (given / "teacher.json").exists():  # an already fine-tuned teacher
        teacher = Teacher.load(given).to(device)
        _check_scale(teacher, st, given)
        log(f"teacher: {given} (given, fine-tuned on {(teacher.info.trained or {}).get('examples', '?')} examples)")
        return teacher, given
    target = work / "teacher"
    n = min(len(kept), cfg.teacher_max_examples or len(kept))
    settings = {"source": cfg.teacher, "data_sha256": data_sha, "examples": n, "epochs": cfg.teacher_epochs,
                "lr": cfg.teacher_lr, "batch_size": cfg.teacher_batch_size, "max_length": cfg.teacher_max_length,
                "seed": _teacher_seed(cfg), "scale": [st.scale_min, st.scale_max], "phrases": st.phrases}
    precision = resolve_precision(cfg.teacher_precision, device)
    if precision != "float32":  # float32 teachers' settings stay as they were: their work is reused
        settings["precision"] = precision
    if cfg.teacher_pooling != "mean":  # likewise mean-pooled teachers'
        settings["pooling"] = cfg.teacher_pooling
    if cfg.teacher_head != "linear":  # and linear-headed ones'
        settings["head"] = cfg.teacher_head
    if (target / "teacher.json").exists():
        teacher = Teacher.load(target)
        if (teacher.info.trained or {}).get("settings") == settings:
            log(f"teacher: {target} (already fine-tuned for this data and these settings)")
            return teacher.to(device), target
        log(f"teacher: {target} was fine-tuned with other data or settings: fine-tuning again")
    teacher = Teacher.from_encoder(cfg.teacher, (st.scale_min, st.scale_max), cfg.teacher_max_length,
                                   seed=_teacher_seed(cfg), pooling=cfg.teacher_pooling,
                                   head=cfg.teacher_head).to(device)
    params = sum(p.numel() for p in teacher.parameters())
    log(f"teacher: fine-tuning {cfg.teacher} ({params / 1e6:.1f}M parameters, on {device}) on {n} examples, "
        f"{cfg.teacher_epochs:g} epoch(s), lr {cfg.teacher_lr:g}, batch {cfg.teacher_batch_size}, "
        f"at most {cfg.teacher_max_length} wordpieces, {cfg.teacher_pooling} pooling, {cfg.teacher_head} head, {precision}")
    trained = fine_tune(teacher, [teacher.text(t) for t in tokens[:n]], [e.rating - st.scale_min for e in kept[:n]],
                        FineTuneConfig(epochs=cfg.teacher_epochs, lr=cfg.teacher_lr, batch_size=cfg.teacher_batch_size,
                                       seed=_teacher_seed(cfg), progress=st.progress, precision=precision),
                        work / "teacher-checkpoint", resume=st.resume, log=log, tag=settings,
                        # a dev check every epoch; the best epoch is kept (epochs is a ceiling)
                        check=(lambda t: evaluate_teacher(st.dev, t, st, precision=precision)) if st.dev else None)
    dev_metrics = trained.pop("dev_metrics", None)
    teacher.info.trained = {**trained, "settings": settings}
    if trained["cut_at_max_length"]:
        log(f"teacher: {trained['cut_at_max_length']} training texts were cut at {cfg.teacher_max_length} wordpieces")
    if dev_metrics:
        teacher.info.dev_metrics = m = dev_metrics
        log(f"teacher: kept epoch {trained['best_epoch']:g} of {cfg.teacher_epochs:g}: dev accuracy {m['accuracy']:.1%}, "
            f"MAE {m['mae']:.3f}, macro-F1 {m['macro_f1']:.3f} ({trained['seconds']:.0f} s to fine-tune)")
    teacher.save(target)
    return teacher, target


def teacher_check(cfg: DistillConfig, teacher: Teacher, kept, tokens, log=print):
    """The teacher against TF-IDF + LR fitted on the same training texts (seconds), both on dev,
    said before the teacher's labels are used: a teacher no better than that baseline cannot make a
    student better than it. Returns (both metric sets and the ensemble's, the fitted TF-IDF + LR)."""
    from reviewlstm.inference import metrics
    from reviewlstm.distillation.baseline import TfidfLR
    from reviewlstm.io.data import read_examples
    st = cfg.student
    ratings = list(range(st.scale_min, st.scale_max + 1))
    from reviewlstm.nn.model import parse_labels
    dev = list(read_examples(st.dev, fmt=st.format, scale=(st.scale_min, st.scale_max), require_rating=True,
                             labels=parse_labels(st.labels) if st.labels else None))
    dev_texts = [" ".join(text_tokens(e.text, e.tokens, st.lowercase)) for e in dev]
    gold = [e.rating for e in dev]
    baseline = TfidfLR.fit([" ".join(t) for t in tokens], [e.rating for e in kept], seed=st.seed)
    probs = baseline.proba(dev_texts, ratings)
    from reviewlstm.inference.predict import rating_and_expected
    best, expected = rating_and_expected(probs, ratings)
    peer = {**metrics.score(gold, best.tolist(), expected.tolist(), ratings),
            "nll": metrics.nll(probs, np.asarray(gold) - st.scale_min)}
    precision = resolve_precision(cfg.teacher_precision, next(teacher.parameters()).device)
    ours = teacher.info.dev_metrics or evaluate_teacher(st.dev, teacher, st, precision=precision)
    ahead = ours["accuracy"] - peer["accuracy"]
    log(f"teacher check on {st.dev}: teacher accuracy {ours['accuracy']:.1%}, MAE {ours['mae']:.3f}; "
        f"TF-IDF + LR on the same training texts {peer['accuracy']:.1%}, MAE {peer['mae']:.3f} "
        f"({ahead * 100:+.1f} points)")
    if ahead <= 0 or ours["mae"] >= peer["mae"]:
        log("teacher check: warning: the teacher is not ahead of TF-IDF + LR on dev on both accuracy and MAE, so its "
            "students are unlikely to be; more epochs (--teacher-epochs), another learning rate (--teacher-lr) or "
            "a larger encoder (--teacher DIR) may help")
    keep = ("accuracy", "mae", "macro_f1", "nll")
    out = {"teacher": {k: ours.get(k) for k in keep}, "tfidf_lr": {k: peer.get(k) for k in keep},
           "dev": str(st.dev), "dev_examples": len(dev)}
    if cfg.ensemble == "auto":
        dev_tokens = [text_tokens(e.text, e.tokens, st.lowercase) for e in dev]
        logits, _ = label(teacher, dev_tokens, cfg.work_dir / "labels", cfg.label_batch_size, False, lambda line: None,
                          precision=precision)
        teacher_probs, truth = _softmax(logits), np.asarray(gold) - st.scale_min
        weight, mixed = loop.mixture_share(teacher_probs, probs, truth, ratings)
        alone = loop.mixture_metrics(teacher_probs, probs, 1.0, truth, ratings)
        out["ensemble"] = {"weight": weight, **{k: mixed.get(k) for k in keep}}
        log(f"ensemble teacher: {weight:g} x the teacher + {1 - weight:g} x TF-IDF + LR, the weight chosen on dev: "
            f"accuracy {mixed['accuracy']:.1%}, MAE {mixed['mae']:.3f}, NLL {mixed['nll']:.3f} (the teacher alone, read "
            f"the same way: {alone['accuracy']:.1%})")
    return out, baseline


def ensemble_logits(teacher_logits: np.ndarray, texts: list[list[str]], n_training: int, kept, tokens, weight: float,
                    baseline, seed: int, ratings: list[int]) -> np.ndarray:
    """The transfer set's targets as log-probabilities of the mixture. TF-IDF + LR's distributions for
    the training texts come from models fitted without them (5 folds, a review's phrases in its fold:
    in-sample, LR would all but repeat the gold rating); for the other texts, from the model fitted on
    every training text."""
    from reviewlstm.distillation.baseline import TfidfLR
    peer = np.zeros_like(teacher_logits, dtype=np.float64)
    fold_of = {}
    by_line: dict = {}
    for e, t in zip(kept, tokens):
        by_line.setdefault(e.line, []).append((e, t))
    for group in by_line.values():
        root = max(group, key=lambda et: len(et[1]))[1]
        fold = int(hashlib.sha256(TOKEN_SEP.join(root).encode("utf-8")).hexdigest()[:8], 16) % 5
        for e, t in group:
            fold_of.setdefault(TOKEN_SEP.join(t), fold)
    for fold in range(5):
        rows = [i for i in range(n_training) if fold_of[TOKEN_SEP.join(texts[i])] == fold]
        if not rows:
            continue
        train = [(" ".join(t), e.rating) for e, t in zip(kept, tokens) if fold_of[TOKEN_SEP.join(t)] != fold]
        model = TfidfLR.fit([x for x, _ in train], [r for _, r in train], seed=seed)
        peer[rows] = model.proba([" ".join(texts[i]) for i in rows], ratings)
    if len(texts) > n_training:
        peer[n_training:] = baseline.proba([" ".join(t) for t in texts[n_training:]], ratings)
    mixed = weight * _softmax(teacher_logits.astype(np.float64)) + (1 - weight) * peer
    return np.log(np.maximum(mixed, 1e-7)).astype(np.float32)


def _teacher_seed(cfg: DistillConfig) -> int:
    return cfg.student.seed if cfg.teacher_seed is None else cfg.teacher_seed


def _check_scale(teacher: Teacher, st: TrainConfig, path) -> None:
    if (teacher.info.scale_min, teacher.info.scale_max) != (st.scale_min, st.scale_max):
        raise ValueError(f"{path}: the teacher rates {teacher.info.scale_min}-{teacher.info.scale_max}, "
                         f"the data {st.scale_min}-{st.scale_max}")


def evaluate_teacher(path, teacher: Teacher | str | Path, st: TrainConfig | None = None, fmt=None, columns=None,
                     skip_bad_rows: bool = False, precision: str = "float32") -> dict:
    """The teacher's metrics on a labelled file, read as the student reads it (the same tokens), its
    encoder in `precision`."""
    from reviewlstm.io.data import read_examples
    if not isinstance(teacher, Teacher):
        teacher = Teacher.load(teacher)
    info = teacher.info
    from reviewlstm.nn.model import parse_labels
    examples = list(read_examples(path, fmt=fmt if st is None else st.format, columns=columns,
                                  scale=(info.scale_min, info.scale_max), require_rating=True,
                                  on_bad="skip" if skip_bad_rows else "raise",
                                  labels=parse_labels(st.labels) if st is not None and st.labels else None))
    result = teacher_metrics(teacher, examples, st.lowercase if st else True, precision)
    result["file"] = str(path)
    return result


def teacher_metrics(teacher: Teacher, examples, lowercase: bool = True, precision: str = "float32") -> dict:
    from reviewlstm.inference import metrics
    info = teacher.info
    logits = teacher.logits([teacher.text(text_tokens(e.text, e.tokens, lowercase)) for e in examples],
                            precision=precision)
    probs = _softmax(logits)
    from reviewlstm.inference.predict import rating_and_expected
    ratings = list(range(info.scale_min, info.scale_max + 1))
    best, expected = rating_and_expected(probs, ratings)
    gold = np.asarray([e.rating - info.scale_min for e in examples])
    return {**metrics.score([e.rating for e in examples], best.tolist(), expected.tolist(), ratings),
            "nll": metrics.nll(probs, gold)}


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def _roots(kept, tokens) -> list[list[str]]:
    """One token list per review: an SST sentence (the longest phrase of its line), not its phrases."""
    best: dict[int, list[str]] = {}
    for e, t in zip(kept, tokens):
        if len(t) > len(best.get(e.line, ())):
            best[e.line] = t
    return list(best.values())


def _neighbours(token_lists, k: int = 8, pool: int = 50000) -> dict[str, list[str]]:
    """Each training word's k nearest GloVe words by cosine, among GloVe's `pool` most frequent."""
    from reviewlstm.nn.embeddings import GloVe
    glove = GloVe.load()
    words = sorted({t for toks in token_lists for t in toks if t.isalpha() and glove.lookup(t) is not None})
    if not words:
        return {}
    bank = np.array(glove.vectors[:pool], dtype=np.float32)  # a copy: the vectors are memory-mapped
    bank /= np.linalg.norm(bank, axis=1, keepdims=True) + 1e-8
    out: dict[str, list[str]] = {}
    for start in range(0, len(words), 2048):
        chunk = words[start:start + 2048]
        q = np.asarray([glove.vectors[glove.lookup(w)] for w in chunk], dtype=np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True) + 1e-8
        sims = q @ bank.T  # (chunk, pool)
        top = np.argpartition(-sims, k + 1, axis=1)[:, :k + 1]
        for w, row, s in zip(chunk, top, sims):
            ranked = [glove.words[j] for j in row[np.argsort(-s[row])] if glove.words[j] != w]
            out[w] = ranked[:k]
    return out


def augment(token_lists: list[list[str]], per_text: int, rng: np.random.Generator, neighbours: dict,
            mask_p: float = 0.1, replace_p: float = 0.1, ngram_p: float = 0.25, exclude: set | None = None,
            tries: int = 3) -> list[list[str]]:
    """Up to `per_text` new texts from each text (Tang et al. 2019): each word, with probability mask_p,
    becomes <mask>, else with probability replace_p one of its GloVe neighbours; then with probability
    ngram_p the text is cut to a random n-gram (n in 1..5). Texts equal to a training text or to one
    already made are dropped (a few tries each)."""
    seen = set(exclude or ())
    out = []
    for tokens in token_lists:
        made = 0
        for _ in range(per_text * tries):
            if made == per_text:
                break
            new = []
            for word in tokens:
                r = rng.random()
                if r < mask_p:
                    new.append(MASK)
                elif r < mask_p + replace_p and neighbours.get(word):
                    choices = neighbours[word]
                    new.append(choices[int(rng.integers(len(choices)))])
                else:
                    new.append(word)
            if len(new) > 1 and rng.random() < ngram_p:
                n = int(rng.integers(1, min(5, len(new)) + 1))
                start = int(rng.integers(0, len(new) - n + 1))
                new = new[start:start + n]
            key = TOKEN_SEP.join(new)
            if key in seen or all(t == MASK for t in new):
                continue
            seen.add(key)
            out.append(new)
            made += 1
    return out


def label(teacher: Teacher, token_lists: list[list[str]], cache: Path, batch_size: int = 64, progress: bool = True,
          log=print, chunk: int = 2048, precision: str = "float32") -> tuple[np.ndarray, float]:
    """(N, K) teacher logits for every text, and the seconds they cost to compute. The cache is by
    text: each text's logits are kept under the teacher's fingerprint with the hash of the text
    (LabelCache), so a rerun, another seed's augmented texts, a higher --unlabeled-max or texts in
    another order label only the texts never labelled before, each once, and a stopped labelling
    resumes from its last whole chunk of `chunk` texts. The seconds reported are the labelling's,
    whichever run did it: each cached text carries its share of the chunk it was labelled in."""
    from tqdm import tqdm
    store = LabelCache(_label_folder(cache, teacher, precision))
    texts = [teacher.text(t) for t in token_lists]
    keys = [_text_key(t) for t in texts]
    out = np.zeros((len(texts), teacher.n_classes), dtype=np.float32)
    bar = tqdm(total=len(texts), disable=None if progress else True, unit="text", file=sys.stderr,
               dynamic_ncols=True, desc="teacher: labelling")
    todo = list(dict.fromkeys(k for k in keys if k not in store.rows))  # each missing text once
    missing = set(todo)
    reused = sum(1 for k in keys if k not in missing)
    text_of = dict(zip(keys, texts))
    bar.update(reused)
    for start in range(0, len(todo), chunk):
        part = todo[start:start + chunk]
        t0 = time.perf_counter()
        values = teacher.logits([text_of[k] for k in part], batch_size, bar=bar, precision=precision)
        store.add(part, values, time.perf_counter() - t0)
    bar.n = len(texts)  # the bar's fractional updates, rounded; repeated texts were labelled once
    bar.close()
    cost = 0.0
    for i, k in enumerate(keys):
        out[i], seconds = store.get(k)
        cost += seconds
    log(f"label: {len(texts)} texts" + (f" ({reused} from the cache in {store.folder})" if reused else
                                        f", cached in {store.folder}"))
    return out, cost


class LabelCache:
    """A teacher's logits by text in one folder: chunk files (`<hash>.npz`: each text's 16-byte key
    and its logits) and seconds.json (what each chunk cost to label). A chunk is written whole or
    not at all, so a killed run leaves no half chunk."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.costs_path = folder / "seconds.json"
        self.costs = json.loads(self.costs_path.read_text()) if self.costs_path.exists() else {}
        self.chunks: list[tuple[np.ndarray, float]] = []  # (logits, seconds per text) of each chunk
        self.rows: dict[bytes, tuple[int, int]] = {}  # a text's key -> (its chunk, its row there)
        for path in sorted(folder.glob("*.npz")) if folder.exists() else ():
            with np.load(path) as chunk:
                self._index(chunk["keys"].tobytes(), chunk["logits"], self.costs.get(path.stem, 0.0))

    def _index(self, keys: bytes, logits: np.ndarray, seconds: float) -> None:
        self.chunks.append((logits, seconds / max(len(logits), 1)))
        for row in range(len(logits)):
            self.rows[keys[16 * row:16 * (row + 1)]] = (len(self.chunks) - 1, row)

    def get(self, key: bytes) -> tuple[np.ndarray, float]:
        """A cached text's logits and its share of the seconds its chunk cost."""
        chunk, row = self.rows[key]
        logits, seconds = self.chunks[chunk]
        return logits[row], seconds

    def add(self, keys: list[bytes], logits: np.ndarray, seconds: float) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        joined = b"".join(keys)
        name = hashlib.sha256(joined).hexdigest()[:24]
        tmp = self.folder / (name + ".tmp.npz")
        np.savez(tmp, keys=np.frombuffer(joined, dtype=np.uint8).reshape(len(keys), 16), logits=logits)
        tmp.replace(self.folder / (name + ".npz"))
        self.costs[name] = seconds
        tmp_costs = self.costs_path.with_suffix(".tmp")
        tmp_costs.write_text(json.dumps(self.costs))
        tmp_costs.replace(self.costs_path)
        self._index(joined, logits, seconds)


def _text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def _write_transfer(path: Path, token_lists, logits: np.ndarray, n_labelled: int, n_augmented_end: int | None = None) -> None:
    """Rows [0, n_labelled) are the training reviews, then augmented texts, then from n_augmented_end
    the unrated reviews: all but the first have no gold rating (`augmented`), the last say so (`unrated`)."""
    end = len(token_lists) if n_augmented_end is None else n_augmented_end
    tmp = path.with_name(path.name + ".tmp")
    # mtime 0: the same texts and labels give the same bytes, so the student's --resume key (the
    # file's sha256) holds across a rerun that rewrites it
    with open(tmp, "wb") as raw, io.TextIOWrapper(gzip.GzipFile("", "wb", fileobj=raw, mtime=0), encoding="utf-8") as f:
        for i, (tokens, row) in enumerate(zip(token_lists, logits)):
            record = {"tokens": tokens, "logits": [round(float(v), 5) for v in row], "augmented": i >= n_labelled}
            if i >= end:
                record["unrated"] = True
            f.write(json.dumps(record) + "\n")
    tmp.replace(path)


def _withheld(st: TrainConfig, held: list) -> set:
    """The texts no unrated source may bring into training: the validation slice's and dev's, whole
    and sentence by sentence (as the student's token lists, keys joined by TOKEN_SEP)."""
    from reviewlstm.inference.predict import split_sentences
    from reviewlstm.training.examples import read_rated
    examples = list(held) + (read_rated(st.dev, st, False, BadRows()) if st.dev else [])
    keys = set()
    for e in examples:
        whole = text_tokens(e.text, e.tokens, st.lowercase)
        keys.add(TOKEN_SEP.join(whole))
        keys.update(TOKEN_SEP.join(p) for p in split_sentences(whole) if p)
    return keys


def unlabeled_texts(cfg: DistillConfig, exclude: set, log=print, student_reads: str = "whole",
                    withheld: set = frozenset()) -> list[list[str]]:
    """The unrated reviews of cfg.unlabeled as the student's token lists: streamed file by file in
    order, split into sentences or kept whole (cfg.unlabeled_split; "auto": as the student reads long
    texts, `student_reads`, the reading rule train picks from the training data), texts already among
    `exclude` (the training and augmented texts, keys joined by TOKEN_SEP) or seen before left out, at
    most cfg.unlabeled_max. Texts of the validation slice or dev (`withheld`), whole or one of their
    sentences, are left out and counted: labelled, they would leak what measures the model into its
    training. Rows that hold no readable text are counted and named, not labelled."""
    if not cfg.unlabeled:
        return []
    from reviewlstm.io.data import read_examples
    from reviewlstm.inference.predict import split_sentences
    st = cfg.student
    split = cfg.unlabeled_split == "sentences" or (cfg.unlabeled_split == "auto" and student_reads == "sentences")
    cap = cfg.unlabeled_max or float("inf")
    seen, out = set(exclude), []
    for path in cfg.unlabeled:
        bad, rows, repeats, leaks = BadRows(), 0, 0, 0
        for e in read_examples(path, fmt=None, require_rating=False, ratings=False, on_bad="skip", bad=bad,
                               scale_hint=False):
            rows += 1
            whole = text_tokens(e.text, e.tokens, st.lowercase)
            if TOKEN_SEP.join(whole) in withheld:
                leaks += 1
                continue
            for piece in (split_sentences(whole) if split else [whole]):
                key = TOKEN_SEP.join(piece)
                if piece and key in withheld:
                    leaks += 1
                    continue
                if not piece or key in seen:
                    repeats += 1
                    continue
                seen.add(key)
                out.append(piece)
                if len(out) >= cap:
                    break
            if len(out) >= cap:
                break
        log(f"unlabeled: {rows} reviews read from {path}" + (" (stopped at --unlabeled-max)" if len(out) >= cap else "")
            + (f", {repeats} {'sentences' if split else 'texts'} already seen left out" if repeats else "")
            + (f", {leaks} text(s) of the validation slice or dev left out" if leaks else "")
            + (f"; {bad.summary()}" if bad.count else ""))
        if len(out) >= cap:
            break
    log(f"unlabeled: {len(out)} {'sentences' if split else 'texts'} for the teacher to label")
    return out


def labelling_estimate(teacher: Teacher, token_lists, cache: Path, batch_size: int, precision: str,
                       sample: int = 2048) -> str:
    """A line saying how long labelling will take, before the hours start: the texts not yet in the
    cache, at the speed the teacher labels a random `sample` of them now. The sample is labelled as
    `label` labels each chunk (sorted by length within it, so padded as little; a few texts' batches
    would be padded far more and read slower) and kept in the cache, so measuring costs no labelling;
    one batch read first, untimed, warms the kernels."""
    store = LabelCache(_label_folder(cache, teacher, precision))
    texts: dict[bytes, str] = {}
    for tokens in token_lists:
        text = teacher.text(tokens)
        key = _text_key(text)
        if key not in store.rows:
            texts.setdefault(key, text)
    if not texts:
        return f"label: all {len(token_lists)} texts are in the cache"
    todo = list(texts)
    rng = np.random.default_rng(0)
    keys = [todo[i] for i in sorted(rng.choice(len(todo), min(sample, len(todo)), replace=False))]
    teacher.logits([texts[k] for k in keys[:batch_size]], batch_size, precision=precision)
    start = time.perf_counter()
    values = teacher.logits([texts[k] for k in keys], batch_size, precision=precision)
    seconds = time.perf_counter() - start
    store.add(keys, values, seconds)
    rate = len(keys) / max(seconds, 1e-9)
    rest = len(todo) - len(keys)
    minutes = rest / rate / 60
    return (f"label: {len(todo)} of {len(token_lists)} texts to label; {len(keys)} labelled in {seconds:.0f} s to "
            f"measure the speed ({rate:.0f} texts/s, {precision}; kept in the cache)"
            + (f", the other {rest} about {minutes:.0f} min" if minutes >= 1 else
               f", the other {rest} under a minute" if rest else ""))


def _label_folder(cache: Path, teacher: Teacher, precision: str) -> Path:
    """Labels live under the teacher's fingerprint; labels in another precision are other labels."""
    return cache / (teacher.fingerprint()[:16] + ("" if precision == "float32" else f"-{precision}"))


def _record(out: Path, cfg: DistillConfig, teacher_dir: Path, n_labelled: int, n_augmented: int, seconds: dict,
            n_unrated: int = 0, check: dict | None = None):
    """The teacher and the recipe in the student's metadata and on its card."""
    teacher = json.loads((teacher_dir / "teacher.json").read_text())
    meta_path = out / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["distillation"] = {
        "teacher": str(teacher_dir), "teacher_source": teacher["source"], "teacher_max_length": teacher["max_length"],
        "teacher_pooling": teacher.get("pooling", "mean"), "teacher_head": teacher.get("head", "linear"),
        "teacher_trained": teacher.get("trained"), "teacher_dev_metrics": teacher.get("dev_metrics"),
        "labelled_texts": n_labelled, "augmented_texts": n_augmented, "augment": cfg.augment,
        "unrated_texts": n_unrated, "unlabeled_files": [str(f) for f in cfg.unlabeled], "teacher_check": check,
        "mask_p": cfg.mask_p, "replace_p": cfg.replace_p, "ngram_p": cfg.ngram_p,
        "alpha": cfg.student.distill_alpha, "temperature": cfg.student.distill_temperature, "seconds": seconds,
        **cfg.extra}
    loaded = artifact.load(out)
    artifact.write_metadata(out, meta, card.model_card(loaded.config, loaded.train_config, meta))

