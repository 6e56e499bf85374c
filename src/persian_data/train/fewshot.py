"""`--minutes N`: a seeded subset of about N minutes, balanced by gender and, within a gender, by
speaker (FLEURS few-shot; a small Common Voice adaptation set).

Round robin: genders take turns; within a gender its speakers take turns, each giving its next clip;
the order of speakers and of each speaker's clips is shuffled by the seed. It stops once the total
reaches N minutes, so the subset is at least N minutes (or everything, when there is less) and at
most one clip longer. A clip without a speaker id (FLEURS publishes none) counts as its own speaker;
an empty gender is its own group ("unknown"). The result depends only on the clips and the seed,
not on their order.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Sequence


def balanced_subset(ids: Sequence[str], durations: Sequence[float], speakers: Sequence[str],
                    genders: Sequence[str], minutes: float, seed: int) -> list[int]:
    """Indices (in increasing order) of the clips picked."""
    rng = random.Random(seed)
    by_gender: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for k in sorted(range(len(ids)), key=lambda k: ids[k]):
        gender = (genders[k] or "unknown").lower()
        by_gender[gender][speakers[k] or f"clip:{ids[k]}"].append(k)
    queues = []  # per gender: a list of per-speaker clip lists, consumed round robin
    for gender in sorted(by_gender):
        names = sorted(by_gender[gender])
        rng.shuffle(names)
        per_speaker = []
        for name in names:
            clips = by_gender[gender][name]
            rng.shuffle(clips)
            per_speaker.append(clips)
        queues.append(per_speaker)
    rng.shuffle(queues)

    target = minutes * 60.0
    total = 0.0
    picked: list[int] = []
    turn = [0] * len(queues)  # next speaker position per gender
    while total < target and any(queues):
        for g, speakers_left in enumerate(queues):
            if not speakers_left or total >= target:
                continue
            i = turn[g] % len(speakers_left)
            clips = speakers_left[i]
            k = clips.pop()
            picked.append(k)
            total += durations[k]
            if clips:
                turn[g] = i + 1
            else:
                speakers_left.pop(i)
                turn[g] = i
    return sorted(picked)
