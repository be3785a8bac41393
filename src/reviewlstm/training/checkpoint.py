"""A training loop's checkpoint, for --resume: weights, optimizer moments and loop state in a
directory (safetensors + JSON, nothing pickled), swapped in whole so a run killed while saving keeps
the previous one. Used by the student's loop (train.py) and the teacher's (teacher.py).

    checkpoint/model.safetensors       the model's state dict
    checkpoint/optimizer.safetensors   the optimizer's tensors, keyed "PARAM_INDEX.NAME"
    checkpoint/state.json              the loop's state, param groups, scalar optimizer state, torch's RNG
    checkpoint/best.safetensors        the kept check's weights so far (the student's loop), when given
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def location(out: str | Path) -> Path:
    """Where a training run into `out` keeps its checkpoint: OUT.work/checkpoint, beside the model and
    not in it (a model directory holds the model; distill's stages share the same work directory).
    A checkpoint found in OUT/checkpoint is resumed from there."""
    out = Path(out)
    earlier = out / "checkpoint"
    return earlier if (earlier / "state.json").exists() else Path(str(out).rstrip("/") + ".work") / "checkpoint"


def save(final: Path, model, optimizer, state: dict, best: dict | None = None) -> None:
    """Weights, optimizer moments and loop state, for --resume; safetensors + JSON, nothing pickled.
    Written beside and swapped in, so a run killed while saving keeps the previous checkpoint.
    best: the kept check's weights (a state dict), so a resumed run keeps what it had chosen."""
    path = final.with_name(f".{final.name}.new-{os.getpid()}")
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(path / "model.safetensors"))
    opt = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, s in opt["state"].items():
        for name, v in s.items():
            if torch.is_tensor(v):
                tensors[f"{idx}.{name}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{name}"] = v
    if tensors:
        save_file(tensors, str(path / "optimizer.safetensors"))
    if best is not None:
        save_file({k: v.detach().cpu().contiguous() for k, v in best.items()}, str(path / "best.safetensors"))
    rng = torch.get_rng_state()
    (path / "state.json").write_text(json.dumps({**state, "param_groups": opt["param_groups"], "scalars": scalars,
                                                 "torch_rng": rng.tolist()}))
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        final.rename(old)
    path.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def load(path: Path, model, optimizer) -> dict:
    state = json.loads((path / "state.json").read_text())
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    opt_state: dict = {}
    if (path / "optimizer.safetensors").exists():
        for key, v in load_file(str(path / "optimizer.safetensors")).items():
            idx, name = key.split(".", 1)
            opt_state.setdefault(int(idx), {})[name] = v
    for key, v in state.get("scalars", {}).items():
        idx, name = key.split(".", 1)
        opt_state.setdefault(int(idx), {})[name] = v
    optimizer.load_state_dict({"state": opt_state, "param_groups": state["param_groups"]})
    torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
    return state


def load_best(path: Path) -> dict | None:
    """The kept check's weights a checkpoint holds (None: it holds none)."""
    return load_file(str(path / "best.safetensors")) if (path / "best.safetensors").exists() else None
