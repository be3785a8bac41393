"""Training on more than one process: torchrun + DistributedDataParallel, as the field does it.

    torchrun --standalone --nproc_per_node=2 -m reviewlstm train --train reviews.csv --dev dev.csv --out m

torchrun starts the processes and sets RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE and the
rendezvous; `train()` reads them through `setup()` (one process without them, as ever). The rules:

- The global batch stays `batch_size` whatever the number of processes: each global batch (the same
  length-bucketed batches a single process makes, from the same seed) is split into near-equal
  contiguous shards, one per process. Each process's loss is scaled by its share of the batch
  (local examples x processes / global examples), so DDP's gradient average is the single process's
  batch mean exactly, ragged last batch included. A process whose shard is empty (a global batch
  smaller than the number of processes) still runs a step on one example with weight 0, so every
  process takes the same number of steps and no all-reduce waits forever.
- Seeds: the same on every process for the model's initial weights and the batch order (they must
  agree); offset by rank for dropout (each process's examples get their own masks).
- Dev checks are sharded: each process reads its share of the dev pieces, the distributions are
  gathered, and every process computes the same metrics, so all take the same keep/stop decisions.
- Only rank 0 logs, shows the progress bar and writes the model and checkpoints; the others wait at
  a barrier where it writes. `--resume` reads the checkpoint on every process (one machine, or a
  shared filesystem across machines).
- gloo on CPU, NCCL on CUDA. The embedding's gradient is dense (DDP all-reduces it whole; gloo and
  NCCL both take dense tensors). Threads: one process per core share of the machine by default.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_world: int = 1
    backend: str | None = None   # None: a single process, nothing initialized

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def on(self) -> bool:
        return self.world > 1


def setup(device: torch.device) -> Dist:
    """The process group torchrun asks for (WORLD_SIZE > 1), or a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    return Dist(rank=dist.get_rank(), world=dist.get_world_size(),
                local_world=int(os.environ.get("LOCAL_WORLD_SIZE", str(world))), backend=backend)


def device_for(d: Dist, device: torch.device) -> torch.device:
    """CUDA: each process on its own GPU (LOCAL_RANK)."""
    if device.type == "cuda" and d.on:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def default_threads(d: Dist) -> int | None:
    """Processes sharing one machine share its cores: each takes its part (None: torch's default)."""
    if d.local_world <= 1:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // d.local_world)


def shard(batch: list[int], d: Dist) -> list[int]:
    """This process's contiguous part of a global batch (sizes differ by at most one)."""
    n, k = len(batch), d.world
    start = d.rank * (n // k) + min(d.rank, n % k)
    return batch[start:start + n // k + (1 if d.rank < n % k else 0)]


def barrier(d: Dist) -> None:
    if d.on:
        import torch.distributed as dist
        dist.barrier()


def gather(obj, d: Dist) -> list:
    """Every process's `obj`, in rank order, on every process."""
    if not d.on:
        return [obj]
    import torch.distributed as dist
    out = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj, d: Dist):
    """Rank 0's `obj` on every process."""
    if not d.on:
        return obj
    import torch.distributed as dist
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def teardown(d: Dist) -> None:
    """Leave the process group together. A gloo barrier followed at once by destroying the group can
    kill a peer (pytorch/gloo#155: a process that has passed the barrier closes its connections
    while its last barrier message to the other is still queued; the other aborts, SIGABRT). So the
    processes first meet once more on the rendezvous store (TCP, not gloo): none can pass it before
    every one has left the gloo barrier, so no gloo message is in flight when the group is closed."""
    if d.on:
        import torch.distributed as dist
        if dist.is_initialized():
            _store_meet(d, "reviewlstm/teardown")
            dist.destroy_process_group()


def _store_meet(d: Dist, key: str, timeout_s: float = 300.0) -> None:
    import time
    import torch.distributed as dist
    try:
        store = dist.distributed_c10d._get_default_store()
    except (AttributeError, RuntimeError, ValueError):  # no store to meet on: the gloo barrier alone
        dist.barrier()
        return
    store.add(key, 1)
    deadline = time.monotonic() + timeout_s
    while int(store.add(key, 0)) < d.world:
        if time.monotonic() > deadline:
            raise RuntimeError(f"distributed: not every process reached the end within {timeout_s:.0f} s")
        time.sleep(0.01)
