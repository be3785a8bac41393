"""Distillation's settings, readable without torch: DistillConfig (the teacher, its labels, the
transfer set; the student's recipe is a TrainConfig) and the teacher's choices. The `distill`
command's flags are built from these fields."""
from __future__ import annotations

import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from reviewlstm.nn.config import LongText
from reviewlstm.options import check_fields, option
from reviewlstm.training.config import TrainConfig

Precision = Literal["auto", "float32", "bfloat16"]
PRECISIONS = typing.get_args(Precision)
TeacherPooling = Literal["mean", "cls"]  # the encoder's states -> one vector (the student's pooling: nn.model.Pooling)
TEACHER_POOLINGS = typing.get_args(TeacherPooling)
Head = Literal["linear", "mlp"]
HEADS = typing.get_args(Head)

# augmented texts a training review at most: each is labelled by the teacher and trained on, and
# past some tens the texts repeat one another (the measured recipes use 4-8)
MAX_AUGMENT = 64


@dataclass
class DistillConfig:
    """The teacher, its labels and the transfer set; the student's recipe is `student` (a TrainConfig).
    The `distill` flags are read from these fields (options.option), beside the student's."""
    student: TrainConfig = option(cli=False)  # the training file, dev file, output and the student's recipe
    work: str | None = option(None, "stage outputs: the teacher, its labels (default OUT.work)", metavar="DIR",
                              show_default=False)
    teacher: str = option("minilm", "'minilm', a local Hugging Face encoder directory to fine-tune, or an already "
                                    "fine-tuned teacher directory")
    # at most (with a dev file the best epoch is kept): more than one epoch made the better teacher on
    # both data sets measured, and on long product reviews the only one whose students beat the peers
    teacher_epochs: float = option(3.0, "at most: with --dev the teacher is checked every epoch and keeps its best",
                                   positive=True)
    teacher_lr: float = option(5e-5, "the teacher's AdamW learning rate", positive=True)
    # 16: on a few thousand reviews twice the steps of 32 made the better teacher on both data sets
    # measured (product reviews and long movie reviews), and its students the better students
    teacher_batch_size: int = option(16, "texts per teacher step", positive=True)
    teacher_max_length: int = option(256, "wordpieces the teacher reads at once; longer texts are cut (and counted)",
                                     positive=True)
    teacher_pooling: TeacherPooling = option("mean", "the encoder's states to one vector for the head: their mean over the "
                                      "wordpieces (as MiniLM was trained) or the [CLS] state")
    teacher_head: Head = option("linear", "that vector to the scale's logits: one linear map, or mlp (dense + tanh + "
                                          "linear, RoBERTa's classification head)")
    teacher_max_examples: int | None = option(None, "fine-tune the teacher on the first N training examples only",
                                              positive=True, metavar="N")
    # one teacher for several students: fix it
    teacher_seed: int | None = option(None, "the teacher's seed (none: --seed)")
    # the encoder's forward in fine-tuning, labelling and its dev checks (teacher.resolve_precision)
    teacher_precision: Precision = option(
        "auto", "the teacher's matrix products: auto is bfloat16 on a CPU with bfloat16 units (AMX, AVX-512 BF16), "
                "float32 elsewhere")
    augment: int = option(4, "augmented texts per training review (0: none)")
    mask_p: float = option(0.1, "per word: masked (the student reads <unk>, the teacher [MASK])")
    replace_p: float = option(0.1, "per word: swapped for one of its GloVe nearest neighbours")
    ngram_p: float = option(0.25, "per text: cut to a random n-gram, n in 1..5")
    label_batch_size: int = option(64, cli=False)
    # unrated reviews (any format the readers take, a text column only): labelled by the teacher as
    # transfer text beside the augmented texts (Mukherjee & Awadallah 2019); read in file order
    unlabeled: list[str] = option(help="unrated reviews (any format read, a text column) for the teacher to label as "
                                       "more transfer text beside the augmented texts", factory=list, metavar="FILE",
                                  show_default=False)
    unlabeled_max: int | None = option(None, "at most N unrated texts (after any sentence split)", positive=True,
                                       metavar="N")
    # "auto": split unrated reviews into sentences when the student reads long texts sentence by
    # sentence (train's reading rule, from the training data: SST-5's kind), else keep each whole
    unlabeled_split: Literal["auto", LongText] = option(
        "auto", "split unrated reviews into sentences (auto: when the student reads long texts sentence by sentence, "
                "as train decides from the training data) or keep them whole")
    # the teacher's distributions averaged with TF-IDF + LR's (fitted on the same training texts; for
    # the training texts themselves, out of fold), the weight chosen on dev: the two err differently,
    # and on long reviews cut at teacher_max_length the n-grams see the whole text
    ensemble: Literal["auto", "off"] = option(
        "auto", "average the teacher's distributions with TF-IDF + logistic regression's, the weight chosen on dev "
                "(auto: the teacher alone when that is best on dev; off: the teacher alone)")
    until: Literal["teacher", "label"] | None = option(None, "stop after this stage (--resume goes on)",
                                                       show_default=False)
    extra: dict = option(factory=dict, cli=False)  # recorded on the card

    def validate(self) -> None:
        self.student.validate()
        check_fields(self)
        if not self.student.out:
            raise ValueError("no output directory: pass --out DIR")
        for name in ("mask_p", "replace_p", "ngram_p"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.mask_p + self.replace_p > 1:
            raise ValueError("mask_p + replace_p must be at most 1")
        if not 0 <= self.augment <= MAX_AUGMENT:
            raise ValueError(f"augment must be in 0..{MAX_AUGMENT} texts a review, got {self.augment}")
        for name in ("teacher_batch_size", "teacher_max_length", "label_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.teacher_epochs <= 0 or self.teacher_lr <= 0:
            raise ValueError("teacher_epochs and teacher_lr must be > 0")
        if self.unlabeled_max is not None and self.unlabeled_max < 1:
            raise ValueError(f"unlabeled_max must be >= 1, got {self.unlabeled_max}")
        for path in self.unlabeled:
            if not Path(path).is_file():
                raise ValueError(f"{path}: no such file (--unlabeled)")

    @property
    def work_dir(self) -> Path:
        return Path(self.work) if self.work else Path(str(self.student.out).rstrip("/") + ".work")
