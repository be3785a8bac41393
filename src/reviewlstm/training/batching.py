"""Batches for training loops (the student's and the teacher's): indices of examples grouped by length."""
from __future__ import annotations

import random


def length_buckets(id_lists, batch_size: int, seed: int) -> list[list[int]]:
    """Batches of similar length: shuffle, sort within pools of 100 batches, shuffle the batches.
    Little padding (fast) while every epoch still sees a different order."""
    rng = random.Random(seed)
    order = list(range(len(id_lists)))
    rng.shuffle(order)
    pool = batch_size * 100
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lambda i: len(id_lists[i]))
        batches += [chunk[k:k + batch_size] for k in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches
