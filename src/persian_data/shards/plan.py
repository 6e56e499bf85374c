"""Which sample goes into which shard: a seeded shuffle, duration buckets, shards cut by size.

Everything is decided before a byte is written, from the manifest and the audio files' sizes, so
the same inputs always give the same plan (and, written, the same bytes):

1. the split's samples in manifest order are shuffled with `random.Random(seed)`;
2. with --buckets N the duration range [shortest, longest] is cut into N equal-width buckets, as
   NeMo's convert_to_tarred_audio_dataset.py does (bucket1 the shortest); each bucket keeps the
   shuffled order and is sharded on its own, in its own `bucketK/` folder;
3. a bucket of T bytes (in the tar) becomes n = ceil(T / shard size) shards of nearly equal size:
   a sample goes to the shard its midpoint falls in, so no shard is more than one sample above
   T / n <= the requested size, and the last one is not a leftover.
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass

from ..compiled import SPEEDUPS
from .formats import PlannedFile, bucket_files, shard_files
from .samples import Sample


@dataclass
class PlannedShard:
    bucket: int | None  # 1..N with --buckets N > 1, else None
    number: int  # within its bucket
    samples: list[Sample]
    files: list[PlannedFile]  # the tar first, then the shard's own sidecars

    @property
    def seconds(self) -> float:
        return sum(s.duration for s in self.samples)


@dataclass
class Plan:
    shards: list[PlannedShard]
    extra: list[PlannedFile]  # files covering a whole bucket (NeMo's tarred_audio_manifest.json)
    buckets: list[dict]  # with --buckets: each bucket's folder, duration range and counts

    def files(self) -> list[PlannedFile]:
        return [f for shard in self.shards for f in shard.files] + self.extra


def make_plan(fmt: str, split: str, samples: list[Sample], shard_size: int, buckets: int, seed: int) -> Plan:
    order = list(samples)
    shuffle(order, seed)
    groups, ranges = _bucketed(order, buckets)
    plan = Plan([], [], [])
    for index, group in enumerate(groups):
        bucket = index + 1 if buckets > 1 else None
        folder = f"bucket{bucket}/" if bucket else ""
        shards = []
        for number, (start, end) in enumerate(cut_by_size([s.tar_bytes for s in group], shard_size)):
            files = shard_files(fmt, split, folder, number, group[start:end])
            shards.append(PlannedShard(bucket, number, group[start:end], files))
        plan.shards.extend(shards)
        plan.extra.extend(bucket_files(fmt, folder, [s.files for s in shards]))
        if bucket:
            low, high = ranges[index]
            plan.buckets.append({"bucket": bucket, "folder": folder.rstrip("/"), "min_duration": low,
                                 "max_duration": high, "samples": len(group), "shards": len(shards)})
    return plan


def _bucketed(order: list[Sample], buckets: int) -> tuple[list[list[Sample]], list[tuple[float, float]]]:
    if buckets <= 1 or not order:
        return [order], [(0.0, 0.0)]
    low = min(s.duration for s in order)
    high = max(s.duration for s in order)
    width = (high - low) / buckets
    groups: list[list[Sample]] = [[] for _ in range(buckets)]
    for sample in order:
        index = min(buckets - 1, int((sample.duration - low) / width)) if width > 0 else 0
        groups[index].append(sample)
    ranges = [(round(low + i * width, 6), round(low + (i + 1) * width if i < buckets - 1 else high, 6))
              for i in range(buckets)]
    return groups, ranges


def cut_by_size(sizes: list[int], target: int) -> list[tuple[int, int]]:
    """(start, end) of each shard over samples of `sizes` bytes: ceil(total / target) shards of
    nearly equal size (a sample joins the shard its midpoint falls in). No samples: no shard."""
    cut = SPEEDUPS.cut_points(sizes, target) if SPEEDUPS is not None and type(sizes) is list else None
    return cut if cut is not None else cut_by_size_python(sizes, target)


def cut_by_size_python(sizes: list[int], target: int) -> list[tuple[int, int]]:
    """cut_by_size's Python form, the reference of _speedups.cut_points (~15x slower)."""
    total = sum(sizes)
    if not sizes:
        return []
    count = max(1, math.ceil(total / target))
    bounds: list[tuple[int, int]] = []
    start, done = 0, 0
    for i, size in enumerate(sizes):
        shard = min(count - 1, (2 * done + size) * count // (2 * total))  # exact: the midpoint's shard
        if shard > len(bounds) and i > start:
            bounds.append((start, i))
            start = i
        done += size
    bounds.append((start, len(sizes)))
    return bounds


def shuffle(order: list, seed: int) -> None:
    """random.Random(seed).shuffle(order), in C where the C form draws exactly what Random does
    (checked once, below: ~5x faster on 28k samples)."""
    rng = random.Random(seed)
    if _c_shuffle_agrees():
        SPEEDUPS.shuffle(rng.getrandbits, order)
    else:
        rng.shuffle(order)


@functools.cache
def _c_shuffle_agrees() -> bool:
    """The C shuffle reproduces this Python's Random.shuffle (its algorithm is CPython's, not a
    promise of the language: a Python that draws otherwise gets its own shuffle, and the same plans)."""
    if SPEEDUPS is None:
        return False
    for seed in (0, 7, 2**40 + 3):
        for length in (0, 1, 2, 3, 5, 64, 300):
            ours, theirs = list(range(length)), list(range(length))
            SPEEDUPS.shuffle(random.Random(seed).getrandbits, ours)
            random.Random(seed).shuffle(theirs)
            if ours != theirs:
                return False
    return True
