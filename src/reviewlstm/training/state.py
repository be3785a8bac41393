"""What a training run works on, in one place: where it runs (`Run`) and, once built, everything the
loop and the end of the run read (`TrainState`: Flax's TrainState in spirit, the settings beside)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from reviewlstm.io.text import Vocab
from reviewlstm.nn.model import ModelConfig, RatingModel
from reviewlstm.training import distributed
from reviewlstm.training.config import TrainConfig
from reviewlstm.training.examples import Data
from reviewlstm.training.recipe import Recipe, Targets


@dataclass
class Run:
    """Where a run trains: its device, its processes (one, or those torchrun started), its log."""
    device: torch.device
    d: distributed.Dist
    log: Callable[[str], None]


@dataclass
class TrainState:
    """A run's parts once built: its settings, place and log, its reviews (and their ids as dev is
    read), what it learns, the network with its vocabulary and optimizer, and when it started."""
    cfg: TrainConfig
    run: Run
    data: Data
    recipe: Recipe
    targets: Targets
    dev_ids: list
    model: RatingModel
    vocab: Vocab
    model_cfg: ModelConfig
    optimizer: torch.optim.Optimizer
    coverage: object  # the word vectors' coverage of the vocabulary (embeddings.Coverage), or None
    started: float
    log: Callable[[str], None]
