"""Training's settings, readable without torch: TrainConfig (`train`'s and the student's of
`distill`), PretrainConfig, and the checks they share. The command line builds every flag from these
fields (options.py), and a config file (TOML or YAML) names the same fields."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

from reviewlstm.nn.config import Cell, LongText, ModelConfig, Pooling, check_sizes, parse_labels
from reviewlstm.options import check_fields, option


_MODEL = {f.name: f.default for f in fields(ModelConfig) if f.name != "vocab_size"}


def rate_or_auto(text: str) -> float | str:
    """A dropout rate as written on the command line: a number, or "auto"."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"expected a rate in [0, 1) or auto, got {text!r}") from None


@dataclass
class TrainConfig:
    """Every setting of a training run: its files, the network, the words, the optimization. The
    flags of `reviewlstm train` and `distill` and the config files' checks are read from these
    fields (options.option: help, flag, choices), so each is stated once, here."""
    train: str = option("", "training reviews: CSV, TSV, JSONL, Parquet (.gz too) or SST trees", metavar="FILE",
                        show_default=False)
    dev: str | None = option(None, "reviews to choose the kept checkpoint on (none: the last is kept)", metavar="FILE",
                             show_default=False)
    out: str = option("model", "where the model is written (an existing model there needs --overwrite)", metavar="DIR",
                      show_default=False)
    # the file's reading: flags shared with predict and evaluate (cli._column_args), and --scale
    format: Literal["sst", "csv", "tsv", "jsonl", "parquet"] | None = option(None, cli=False)
    text_column: str | None = option(None, cli=False)
    rating_column: str | None = option(None, cli=False)
    scale_min: int = option(_MODEL["scale_min"], cli=False)
    scale_max: int = option(_MODEL["scale_max"], cli=False)
    # the rating column holds these words, lowest rating first ("negative,neutral,positive"): the
    # model rates them 1..K and shows the words back (the scale follows from them)
    labels: str | None = option(None, "the rating column holds words: their order, lowest first (e.g. "
                                "negative,neutral,positive); rated 1..K, the words shown back", flag="--ratings",
                                metavar="WORDS")
    phrases: bool = option(True, "SST trees: train on every labelled phrase, or sentences only")
    skip_bad_rows: bool = option(False, cli=False)  # --skip-bad-rows (cli._column_args, shared with predict)
    max_examples: int | None = option(None, "use only the first N training examples", metavar="N", positive=True)
    holdout: float = option(0.1, "share of training reviews set aside as an untouched validation slice, scored once "
                                 "at the end (0: none)")
    long_text: Literal["auto", LongText] = option(
        "auto", "how the model reads texts over 60 tokens, in training and ever after (auto: whole when a fifth of "
                "the training reviews are that long)")
    # start from a trained model: "bundled", a model directory, None (from scratch), or "auto": the
    # shipped start model (start_model/, an SST-5 model trained with this recipe's one dropout) for
    # reviews read whole when the shapes agree, on any rating scale (on another scale than its 1-5
    # the head starts new). It knows which words carry sentiment: measured on the Amazon reviews and
    # IMDB's 1-10 (docs/experiments/own-files.md); else from scratch. Never for data read
    # sentence by sentence: that is SST's own kind, which both SST-5 models have seen.
    init_from: str | None = option(
        "auto", "start from a trained model: 'bundled', a model directory (its layer, head and shared words), 'none', "
                "or 'auto' (the shipped start model, an SST-5 model, for reviews read whole)",
        metavar="MODEL")
    # model: the network's settings are ModelConfig's fields of the same names, their defaults read
    # from it (one source), kept flat here so a TOML/YAML file or the command line sets them directly;
    # `model_config` builds the ModelConfig from them once the vocabulary is known
    cell: Cell = option(_MODEL["cell"], "lstm is the four-gate cell")
    hidden: int = option(_MODEL["hidden"], "units per direction", positive=True)
    num_layers: int = option(_MODEL["num_layers"], "stacked recurrent layers", flag="--layers", positive=True)
    bidirectional: bool = option(_MODEL["bidirectional"], "read each text both ways")
    dropout: float = option(_MODEL["dropout"], "on the word vectors, between layers and before the head")
    # on the embeddings alone: a rate, None (the same as dropout) or "auto": SENTENCE_EVENT_DROPOUT
    # for texts read sentence by sentence, the shared dropout for reviews read whole (and none at all
    # when dropout is 0)
    event_dropout: float | str | None = option(
        "auto", "dropout on the word vectors alone; auto: 0.5 for texts read sentence by sentence, else (and with "
                "--dropout 0) --dropout", metavar="RATE|auto", parse=rate_or_auto)
    pooling: Literal["auto", Pooling] = option(
        "auto", "auto: final for sentences, the mean over all steps when long texts are read whole")
    max_length: int = option(_MODEL["max_length"], "tokens read in one pass; longer passes are cut", positive=True)
    # words
    embeddings: Literal["glove", "random"] = option("glove", "word vectors to start from")
    embed_dim: int = option(_MODEL["embed_dim"], cli=False)  # fixed at 50 by GloVe
    freeze_embeddings: bool = option(False, "keep the word vectors fixed")
    extra_glove_words: int = option(20000, "also know the N most frequent GloVe words unseen in training", metavar="N")
    min_freq: int = option(1, "a word must occur this often in training to be known", positive=True)
    lowercase: bool = option(_MODEL["lowercase"], cli=False)
    # optimization
    epochs: int = option(20, "at most: training stops once dev stops improving", positive=True)
    batch_size: int = option(64, "texts per step", positive=True)
    lr: float = option(1e-3, "AdamW learning rate", positive=True)
    weight_decay: float = option(1e-4, "AdamW weight decay")
    clip: float = option(5.0, "gradient norm clipping", positive=True)
    loss: Literal["ce", "ordinal"] = option("ce", "cross-entropy, or with an order-aware term")
    class_weights: bool = option(False, "weight ratings by the inverse of their frequency")
    # dev accuracy and NLL both checked: phrase-level training can peak mid-epoch, on either
    patience: int = option(3, "epochs with neither a better dev accuracy nor NLL before stopping", positive=True)
    evals_per_epoch: int = option(4, "dev checks per epoch", positive=True)
    # >1: the kept model is the average of the weights of the K best dev checks (fewer, smoother
    # choices than one best check out of many; bench/recipe.py measures it against the single best,
    # which the metadata keeps as "single_best"); not carried across --resume
    average_best: int = option(0, "keep the average of the K best dev checks' weights instead of the single best "
                                  "(0: the single best)", metavar="K")
    # at the end, with a dev set: fit the softmax temperature on dev (calibration.py) and keep it in
    # the model; no rating moves, the probabilities stop being overconfident
    calibrate: bool = option(True, "with --dev: fit a softmax temperature on dev at the end and keep it in the model "
                                   "(no rating moves)")
    # at the end, with a dev set: fit the n-gram path (ngrams.py: TF-IDF word 1-2-grams + logistic
    # regression on the training reviews) and mix it in at the share dev chooses; a share of 1 keeps
    # the recurrent path alone. The two err differently: on long reviews the mixture is the better
    # reader (docs/experiments/own-files.md, "`train`'s defaults with the n-gram path")
    ngram_path: Literal["auto", "off"] = option(
        "auto", "with --dev: beside the recurrent path, TF-IDF word 1-2-grams + logistic regression fitted on the "
                "training reviews, mixed in at the share chosen on dev (auto: kept when dev says the mixture is "
                "better; off: the recurrent path alone)")
    # where the n-gram path's share and the temperature are chosen. Early stopping keeps the best of
    # ~60 dev checks, so the dev it read flatters the recurrent path (a maximum over noise).
    # "cross-fit" reads each half of dev by the check the other half chose (loop.CrossFit), so no
    # review's reading was chosen on it, and early stopping still reads all of dev; "held-half"
    # chooses on half of dev that no check reads, at the cost of early stopping on the other half
    # alone. Both take the share by the mixture's lowest NLL; dev under MIXING_HALF_MIN reviews is
    # neither halved nor cross-fitted. Measured in BENCHMARKS.md ("Where the n-gram share is chosen").
    mixture_on: Literal["dev", "cross-fit", "held-half"] = option(
        "dev", "with --dev: where the n-gram share and the temperature are chosen (dev: all of dev as the kept "
               "check reads it, the share by the early-stopping rule; cross-fit: each half of dev as read by the check "
               "the other half chose, the share by lowest NLL; held-half: half of dev, by text hash, that early "
               "stopping never reads, the share by lowest NLL)")
    # distillation (reviewlstm distill writes the transfer set): the teacher's logits for every
    # training review plus augmented texts; the loss is distill_alpha x cross-entropy on the gold
    # rating + (1 - distill_alpha) x T^2 x KL(teacher || student) at temperature T (Hinton et al.);
    # augmented texts have no gold rating and learn from the teacher alone
    transfer: str | None = option(None, cli=False)
    # the words a student meets only in the transfer texts (unrated reviews, augmented texts) are
    # <unk> to it unless known: with N, those seen at least N times there join the vocabulary and
    # learn their vectors (GloVe's where it has them) from the teacher's labels
    transfer_words: int = option(0, "also know the words of the teacher-labelled transfer texts seen at least N times "
                                    "there (0: none)", only="distill", metavar="N")
    distill_alpha: float = option(0.5, "weight of the gold ratings' cross-entropy; 1 - alpha on the teacher's",
                                  flag="--alpha", only="distill")
    distill_temperature: float = option(1.0, "the distributions' softmax temperature in the distillation loss",
                                        flag="--temperature", only="distill", positive=True)
    use_init: Literal["uniform", "identity"] = option(
        "uniform", "four-gate cell: start W_u uniform or as the identity (U = tanh(forget))")
    seed: int = option(0, "the same seed, data and settings give the same model")
    device: Literal["auto", "cpu", "cuda"] = option("auto", "auto: CUDA when there is one")
    threads: int | None = option(None, "CPU threads (none: torch's default, one per core)", positive=True)
    # the run itself: --resume, --overwrite, --no-progress (cli._train_args)
    resume: bool = option(False, cli=False)
    overwrite: bool = option(False, cli=False)  # replace a model already in `out` (swapped in whole, never half-written)
    progress: bool = option(True, cli=False)

    def model_config(self, **decided) -> ModelConfig:
        """The ModelConfig this run trains: its fields from this config's fields of the same names, and
        what training decided from the data (`decided`: vocab_size, and pooling, long_text and
        event_dropout when they were "auto")."""
        shared = {f.name: getattr(self, f.name) for f in fields(ModelConfig) if hasattr(self, f.name)}
        return ModelConfig(**{**shared, **decided})

    def check_types(self) -> None:
        """Every field of the type it is declared with (options.check_fields), so a config file's
        `seed = "abc"` or `batch_size = true` is one line naming the field."""
        check_fields(self)

    def validate(self) -> None:
        self.check_types()
        if self.labels is not None:
            k = len(parse_labels(self.labels))
            if (self.scale_min, self.scale_max) not in ((_MODEL["scale_min"], _MODEL["scale_max"]), (1, k)):
                raise ValueError(f"--ratings names {k} labels, rated 1..{k}: leave --scale out")
            self.scale_min, self.scale_max = 1, k
        if not self.train:
            raise ValueError("no training file: pass --train FILE")
        for name in ("epochs", "batch_size", "hidden", "num_layers", "min_freq", "max_length", "evals_per_epoch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("dropout", "event_dropout"):
            value = getattr(self, name)
            if name == "event_dropout" and value in (None, "auto"):
                continue
            if isinstance(value, str) or not 0 <= value < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        for name in ("extra_glove_words", "average_best", "transfer_words"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("max_examples", "threads", "patience"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("weight_decay", "clip"):
            if not math.isfinite(getattr(self, name)) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {getattr(self, name)}")
        if not 0 <= self.distill_alpha <= 1:
            raise ValueError(f"distill_alpha must be in [0, 1], got {self.distill_alpha}")
        if self.distill_temperature <= 0:
            raise ValueError(f"distill_temperature must be > 0, got {self.distill_temperature}")
        if self.average_best < 0:
            raise ValueError(f"average_best must be >= 0, got {self.average_best}")
        if not 0 <= self.holdout < 1:
            raise ValueError(f"holdout must be in [0, 1), got {self.holdout}")
        if not math.isfinite(self.lr) or self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.scale_max <= self.scale_min:
            raise ValueError(f"the rating scale {self.scale_min}..{self.scale_max} is empty: the highest rating must be "
                             "above the lowest")
        if self.embeddings == "glove" and self.embed_dim != 50:
            raise ValueError("GloVe vectors are 50-d: use embed_dim 50 or --embeddings random")
        check_sizes(ratings=self.scale_max - self.scale_min + 1, num_layers=self.num_layers, hidden=self.hidden,
                    embed_dim=self.embed_dim, max_length=self.max_length)
        check_threads(self.threads, "threads")
        check_device(self.device)

    @classmethod
    def from_file(cls, path: str | Path, **overrides) -> "TrainConfig":
        """A TOML (.toml) or YAML (.yaml/.yml) file of the same fields; overrides win."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ValueError(f"{path}: cannot read the config ({e.strerror})") from None
        if path.suffix == ".toml":
            import tomllib
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as e:
                raise ValueError(f"{path}: not valid TOML ({e})") from None
        elif path.suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise ValueError(f"{path}: YAML configs need PyYAML (pip install pyyaml), or use TOML") from None
            try:
                data = yaml.safe_load(text) or {}
            except yaml.YAMLError as e:
                raise ValueError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
        else:
            raise ValueError(f"{path}: a config file must be .toml, .yaml or .yml")
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a table of settings")
        data = {k.replace("-", "_"): v for k, v in data.items()}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{path}: unknown setting(s) {', '.join(unknown)}")
        config = cls(**{**data, **overrides})
        try:
            config.check_types()
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        return config


def check_threads(n: int | None, name: str = "--threads") -> None:
    """More threads (or worker processes) than this machine has CPUs is refused: each thread is
    memory and scheduling, and past some thousands the process dies rather than runs."""
    cpus = os.cpu_count() or 1
    if n is not None and n > cpus:
        raise ValueError(f"{name} {n}: this machine has {cpus} CPU(s); ask for at most {cpus}")


def check_device(device: str) -> None:
    """`cuda` asked where torch has no CUDA device is refused before any data is read."""
    import torch
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: this torch has no CUDA device here "
                         f"(torch {torch.__version__}); use --device cpu or auto")


@dataclass
class PretrainConfig:
    """One pretraining run's settings (the command's flags are generated from these fields)."""
    texts: list[str] = option(factory=list, help="review files to read (CSV, TSV, JSONL, Parquet, SST; .gz too)",
                         metavar="FILE")
    out: str | None = option(None, "where to write the language model (a model directory)", metavar="DIR")
    vocab_size: int = option(60_000, "the most frequent words known (the rest are <unk>)", positive=True)
    min_freq: int = option(3, "a word must be seen this often to be known", positive=True)
    embeddings: Literal["glove", "random"] = option("glove", "word vectors to start from (GloVe: 50-d)")
    embed_dim: int = option(50, "word vector size (50 with GloVe)", positive=True)
    hidden: int = option(150, "units per direction (the rating model's default layer)", positive=True)
    seq_len: int = option(70, "tokens a window holds", positive=True)
    batch_size: int = option(64, "windows a step", positive=True)
    epochs: float = option(1.0, "passes over the texts (a fraction reads part of them)", positive=True)
    max_tokens: int | None = option(None, "read at most this many tokens of the texts", positive=True)
    lr: float = option(2e-3, "Adam's learning rate (a linear warm-up over the first twentieth of the steps, then a linear decay)",
                       positive=True)
    dropout: float = option(0.2, "dropout on the word vectors and the layer's outputs")
    held_out: float = option(0.01, "share of the windows held out to measure perplexity")
    cutoffs: str = option("2000,10000", "the adaptive softmax's cluster boundaries, by word frequency rank")
    lowercase: bool = option(True, "lower-case the texts, as train does")
    seed: int = option(0, "the same seed and texts give the same model")
    threads: int | None = option(None, "CPU threads (none: torch's default)", positive=True)
    progress: bool = option(True, cli=False)

    def validate(self) -> None:
        check_fields(self)
        if not self.texts:
            raise ValueError("no texts: pass --texts FILE [FILE ...]")
        for path in self.texts:
            if not Path(path).is_file():
                raise ValueError(f"{path}: no such file (--texts)")
        if not self.out:
            raise ValueError("no output directory: pass --out DIR")
        if not 0 <= self.dropout < 1 or not 0 < self.held_out < 0.5:
            raise ValueError(f"dropout must be in [0, 1) and held_out in (0, 0.5), got {self.dropout}, {self.held_out}")
        if self.embeddings == "glove" and self.embed_dim != 50:
            raise ValueError("GloVe vectors are 50-d: use --embed-dim 50 or --embeddings random")
        cuts = self.cutoff_list()
        if not cuts or cuts != sorted(set(cuts)) or cuts[0] < 1:
            raise ValueError(f"cutoffs must be increasing positive integers, got {self.cutoffs!r}")
        check_sizes(hidden=self.hidden, embed_dim=self.embed_dim, vocab_size=self.vocab_size)
        check_threads(self.threads, "threads")

    def cutoff_list(self) -> list[int]:
        try:
            return [int(c) for c in str(self.cutoffs).split(",") if c.strip()]
        except ValueError:
            raise ValueError(f"cutoffs must be comma-separated integers, got {self.cutoffs!r}") from None
