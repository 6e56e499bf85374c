"""Near-identical questions, found with MinHash/LSH (datasketch) and confirmed exactly.

Parameters, and why:
- **Shingles**: word 3-grams of the normalized text with ZWNJ, punctuation and digits' script
  folded away (questions are short, ~60 words: 3-grams make a changed word cost 3 of ~58
  shingles, so a couple of edited words stay above 0.8 while a different question does not share
  runs of three words). A text of fewer than 3 words is one shingle of all its words.
- **Threshold**: Jaccard ≥ 0.8 on those shingle sets, as the issue suggests: typo fixes, an added
  greeting or a repeated posting, not two questions on the same topic.
- **MinHash**: 64 permutations of datasketch's ``affine32`` scheme (its seeded permutations and
  its MurmurHash3 pre-mix), in **12 bands of 5 rows** (60 of the 64 values). LSH only proposes
  candidates; every candidate pair is **confirmed by the exact Jaccard** of the two shingle sets
  (kept as 32-bit hashes, ~240 bytes a question), so the threshold is exact and a false positive
  costs one check, never a wrong drop. So the banding is chosen for recall: a pair at J is proposed
  with probability 1 − (1 − J⁵)¹² = 0.992 at J = 0.8, 0.998 at 0.85, 0.99998 at 0.9 (a true pair
  missed stays in the output: < 1 % right at the threshold). datasketch's own optimum for 0.8
  (equal weights: 5 bands of 11 rows) would miss 64 % of the pairs at J = 0.8 and 15 % at 0.9.
  The price is candidates to check: 0.32 of the pairs at J = 0.5, 0.029 at 0.3, 1.2e-4 at 0.1 and
  4e-6 at 0.05 (two unrelated questions that share a greeting); the benchmark counts them.
- **Identical questions** (the same user turn with other answers) have identical signatures, so
  they would all fall into one bucket per band (k² pairs); rows with the same 64 values are grouped
  first and each is confirmed against the group's first member (k − 1 checks); only one row per
  group goes through the bands.
- **Which one stays**: near-duplicates are grouped transitively (union-find over confirmed pairs);
  each group keeps the member with the smallest `key` (the caller passes a stable digest of the
  conversation), so the output does not depend on input order, file order or the machine.

Why not datasketch's objects directly: a `MinHash` object filled per question plus a `MinHashLSH`
insert and query cost ~0.5 ms a question, i.e. ~2 minutes for the corpus's 281k questions
(bench/bench_textclean.py). The same arithmetic over a whole batch in numpy (`signatures`: the
shingles × permutations matrix, then a min per question along its contiguous axis; `collapse`:
one sort per band) does them in ~10 s in one process, ~13× faster, and a test checks that the
values are exactly datasketch's `MinHash.update_batch` results (its permutations, its hash mix).
The permutations and the hash mix are computed here, not imported: importing datasketch pulls
scipy in, ~60 MB in each worker and in the parent (datasketch is imported only for a threshold
other than the default, for its band optimum).

`signatures(texts)` runs in the workers (compact numpy arrays); `collapse(...)` in the parent.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from hashlib import blake2b
from itertools import chain

import numpy as np

from ..compiled import SPEEDUPS

NUM_PERM = 64
THRESHOLD = 0.8
SHINGLE_WORDS = 3
SCHEME = "affine32"  # datasketch 2.x's default scheme; fixed, so signatures mean the same everywhere
SEED = 1
BANDS, ROWS = 12, 5  # see the module docstring: recall first, candidates are confirmed exactly

_WORD_BREAKS = ".,;:!?؟،؛«»\"'()[]{}-–—/\\"  # besides whitespace
_WORD = re.compile("[^\\s" + re.escape(_WORD_BREAKS) + "]+")
# The same words found with numpy over a whole batch: ZWNJ deleted, every break character made a
# space, then `str.split()` (whose whitespace is `re`'s \s: both are `str.isspace`).
_WORD_LUT = np.arange(0x10000, dtype=np.uint16)
_WORD_LUT[[ord(c) for c in _WORD_BREAKS]] = ord(" ")


def _words_many(texts: list[str]) -> list[list[str]]:
    """`[_WORD.findall(t.replace(ZWNJ, "")) for t in texts]`, one numpy pass over the batch."""
    joined = "\x00".join(texts)
    b = joined.encode("utf-16-le", "surrogatepass")
    if len(b) != 2 * len(joined) or joined.count("\x00") != len(texts) - 1:
        return [_WORD.findall(t.replace("\u200c", "")) for t in texts]  # astral characters or a NUL in a text
    codes = np.frombuffer(b, dtype=np.uint16)
    if ((codes >= 0xD800) & (codes < 0xE000)).any():  # surrogate code points: decoding could pair them
        return [_WORD.findall(t.replace("\u200c", "")) for t in texts]
    codes = _WORD_LUT.take(codes)
    codes = codes[codes != 0x200C]
    return [t.split() for t in codes.tobytes().decode("utf-16-le", "surrogatepass").split("\x00")]


_WORD_HASHES: dict[str, int] = {}  # per process: the corpus's vocabulary repeats a lot
# Its bound: ~120 bytes an entry, so ~25 MB. Legal text is full of one-off tokens (dates, case and
# tracking numbers, amounts): at 2 million entries the cache held ~250 MB in each worker (the
# memory spike of issue 23); emptied when full, the common words are back after a few pieces.
_WORD_CACHE_MAX = 200_000
_C1, _C2 = np.uint32(0x9E3779B1), np.uint32(0x85EBCA77)


def _blake_word(word: str) -> int:
    """A word's 32-bit hash: blake2b of its UTF-8 (stable across machines and runs)."""
    return int.from_bytes(blake2b(word.encode("utf-8"), digest_size=4).digest(), "little")


def _word_hash(word: str) -> int:
    h = _WORD_HASHES.get(word)
    if h is None:
        if len(_WORD_HASHES) > _WORD_CACHE_MAX:
            _WORD_HASHES.clear()
        h = _WORD_HASHES[word] = _blake_word(word)
    return h


def _install_compiled_words():
    """`_speedups.word_hashes` told the word rule (None without the C extension)."""
    if SPEEDUPS is None:
        return None
    SPEEDUPS.set_word_rules(_WORD_BREAKS, _blake_word)
    return SPEEDUPS.word_hashes


_compiled_words = _install_compiled_words()


def word_hashes(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The hash of every word of every text, text after text (uint32), and each text's word count:
    in C where the extension is built (`word_hashes_python` is the reference: tests/test_speedups.py)."""
    if _compiled_words is not None:
        flat, lengths = _compiled_words(texts)
        return np.frombuffer(flat, dtype=np.uint32), np.frombuffer(lengths, dtype=np.int64)
    return word_hashes_python(texts)


def word_hashes_python(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """`word_hashes` in Python (a dict lookup per word of the whole batch, in C through `map`)."""
    per_text = _words_many(texts) if texts else []
    lengths = np.fromiter(map(len, per_text), dtype=np.int64, count=len(per_text))
    flat_words = list(chain.from_iterable(per_text))
    hashes = list(map(_WORD_HASHES.get, flat_words))
    miss = -1
    try:
        while True:  # the words not hashed yet (a C scan for each)
            miss = hashes.index(None, miss + 1)
            hashes[miss] = _word_hash(flat_words[miss])
    except ValueError:
        pass
    return np.fromiter(hashes, dtype=np.uint32, count=len(hashes)), lengths


def _gram_hashes(words: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of the word 3-grams of each text (texts' words concatenated in `words`); a text of
    fewer than 3 words gives one gram of all its words. Returns (hashes, per-text counts)."""
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    k = SHINGLE_WORDS
    counts = np.where(lengths >= k, lengths - k + 1, np.minimum(lengths, 1)).astype(np.int64)
    with np.errstate(over="ignore"):
        padded = np.concatenate([words, np.zeros(k, np.uint32)])
        idx = np.arange(len(words))
        full = _fmix(padded[idx] * _C1 ^ padded[idx + 1] * _C2 ^ padded[idx + 2], 32)
        # position p of text t is a gram start when p < start_t + counts_t (for short texts the
        # "gram" is the text's words, padded with zeros: still a stable function of its words)
        owner = np.repeat(np.arange(len(lengths)), lengths)
        pos = idx - starts[owner] if len(idx) else idx
        short = lengths[owner] < k if len(idx) else np.zeros(0, bool)
        if short.any():  # mask the words that follow a short text (they belong to the next one)
            tail = np.where(pos + 1 < lengths[owner], padded[idx + 1], 0)
            tail2 = np.where(pos + 2 < lengths[owner], padded[idx + 2], 0)
            full = np.where(short, _fmix(padded[idx] * _C1 ^ tail * _C2 ^ tail2, 32), full)
        keep = pos < counts[owner] if len(idx) else np.zeros(0, bool)
    return full[keep].astype(np.uint32), counts


def shingles(text: str) -> np.ndarray:
    """Sorted unique 32-bit hashes of the word 3-grams of `text` (stable across machines)."""
    words = [_word_hash(w) for w in _WORD.findall(text.replace("\u200c", ""))]
    hashes, _ = _gram_hashes(np.array(words, dtype=np.uint32), np.array([len(words)], dtype=np.int64))
    return np.unique(hashes)


@functools.lru_cache(maxsize=4)
def _permutations(num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch 2.x's affine32 permutations for SEED (`MinHash._init_permutations`): odd `a`,
    any `b`, drawn from numpy's seeded legacy generator in that order. Computed here rather than
    imported: importing datasketch pulls scipy in (~60 MB in every process that needs only this);
    a test checks the values against datasketch's own."""
    gen = np.random.RandomState(SEED)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


_FMIX = (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35), np.uint32(16))


def _fmix(hv: np.ndarray, width: int = 32) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer, element-wise (datasketch's `_fmix(hv, 32)`; uint32 wraps)."""
    s1, m1, s2, m2, s3 = _FMIX
    hv = hv ^ (hv >> s1)
    hv = hv * m1
    hv = hv ^ (hv >> s2)
    hv = hv * m2
    return hv ^ (hv >> s3)


def minhash_values(hashes: np.ndarray, num_perm: int = NUM_PERM) -> np.ndarray:
    """datasketch's affine32 MinHash of these (already hashed) shingles: what
    `MinHash(num_perm, seed=1, scheme="affine32").update_batch(hashes)` holds."""
    a, b = _permutations(num_perm)
    if not len(hashes):
        return np.full(num_perm, np.iinfo(np.uint32).max, dtype=np.uint32)
    with np.errstate(over="ignore"):
        mixed = _fmix(hashes.astype(np.uint32).reshape(-1, 1), 32)
        return (mixed * a + b).min(axis=0).astype(np.uint32)


@dataclass
class Signatures:
    """Shingles and MinHash values of a batch of texts, compact (picklable numpy arrays)."""

    shingles: np.ndarray  # all shingle hashes, text after text (uint32)
    offsets: np.ndarray  # text i's shingles are shingles[offsets[i]:offsets[i + 1]]
    values: np.ndarray  # (texts, num_perm) uint32

    def __len__(self) -> int:
        return len(self.values)

    def shingles_of(self, i: int) -> np.ndarray:
        return self.shingles[self.offsets[i]:self.offsets[i + 1]]

    @classmethod
    def concat(cls, parts: list["Signatures"], num_perm: int = NUM_PERM) -> "Signatures":
        if not parts:
            return cls(np.zeros(0, np.uint32), np.zeros(1, np.int64), np.zeros((0, num_perm), np.uint32))
        sizes = np.concatenate([np.diff(p.offsets) for p in parts])
        return cls(np.concatenate([p.shingles for p in parts]), np.concatenate([[0], np.cumsum(sizes)]),
                   np.concatenate([p.values for p in parts]))

    def take(self, keep: list[int]) -> "Signatures":
        """These texts' signatures (one gather, no Python step per text)."""
        idx = np.asarray(keep, dtype=np.int64)
        starts = self.offsets[idx]
        sizes = self.offsets[idx + 1] - starts
        ends = np.cumsum(sizes)
        picks = np.arange(int(ends[-1]) if len(ends) else 0) + np.repeat(starts - (ends - sizes), sizes)
        return Signatures(self.shingles[picks].astype(np.uint32, copy=False),
                          np.concatenate([[0], ends]).astype(np.int64), self.values[idx])


def signatures(texts: list[str], num_perm: int = NUM_PERM) -> Signatures:
    """Shingles and MinHash values of many texts at once (vectorized over the whole batch).
    `shingles_of(i)` may repeat a hash (a repeated 3-gram); `jaccard` works on the sets."""
    words, lengths = word_hashes(texts)
    flat, sizes = _gram_hashes(words, lengths)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    values = np.full((len(texts), num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
    if len(flat):
        a, b = _permutations(num_perm)
        with np.errstate(over="ignore"):  # (num_perm, shingles), mod 2**32, in place
            permuted = np.empty((num_perm, len(flat)), dtype=np.uint32)
            np.multiply(a.reshape(-1, 1), _fmix(flat.copy(), 32), out=permuted)
            np.add(permuted, b.reshape(-1, 1), out=permuted)
        nonempty = sizes > 0
        # the min along the contiguous axis (10x faster than along axis 0 of the transpose)
        values[nonempty] = np.minimum.reduceat(permuted, offsets[:-1][nonempty], axis=1).T
    return Signatures(flat, offsets, values)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    if not len(a) and not len(b):
        return 1.0
    # Python sets: a question's few dozen shingles are cheaper as a set than through numpy's sorts
    sa, sb = set(a.tolist()), set(b.tolist())
    inter = len(sa & sb)
    return inter / (len(sa) + len(sb) - inter)


@dataclass
class Collapse:
    drop: set[int] = field(default_factory=set)  # indices to leave out
    pairs: list[tuple[int, int, float]] = field(default_factory=list)  # (partner, dropped, jaccard), one per dropped
    candidates: int = 0  # pairs LSH proposed


def bands(threshold: float = THRESHOLD, num_perm: int = NUM_PERM) -> tuple[int, int]:
    """(bands, rows) of the LSH: ``BANDS x ROWS`` for the default threshold and 64 permutations;
    otherwise datasketch's optimum weighted 1:9 towards recall (candidates are confirmed anyway)."""
    if threshold == THRESHOLD and num_perm == NUM_PERM:
        return BANDS, ROWS
    from datasketch.lsh import _optimal_param

    return _optimal_param(threshold, num_perm, 0.1, 0.9)


def _key_order(keys: list[bytes]) -> np.ndarray:
    """Indices that sort `keys` (bytes, compared as Python compares them). Keys of one length
    that is a multiple of 8 (the stage's 16-byte digests) are sorted as big-endian words by numpy,
    without a Python list of the whole order."""
    size = len(keys[0]) if keys else 0
    if size and size % 8 == 0 and all(len(k) == size for k in keys):
        words = np.frombuffer(b"".join(keys), dtype=">u8").reshape(len(keys), size // 8)
        return np.lexsort(words.T[::-1])
    return np.array(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.int64)


def band_pairs(block: np.ndarray, members: np.ndarray, member_rank: np.ndarray, n: int) -> np.ndarray:
    """The LSH candidate pairs of one band: `block` holds the band's MinHash values of `members`
    (one row each); two members whose values hash to one bucket pair up, as sorted unique codes
    ``i * n + j`` with `i` before `j` in key order (`member_rank`). A pure function of its inputs:
    it may run anywhere (a Ray task with the `ray` engine)."""
    with np.errstate(over="ignore"):  # one 64-bit bucket key per band (a collision only adds a candidate)
        bucket = np.zeros(len(members), dtype=np.uint64)
        for r in range(block.shape[1]):
            bucket = bucket * np.uint64(0x100000001B3) ^ block[:, r].astype(np.uint64)
    order = np.lexsort((member_rank, bucket))  # by bucket, then key order
    ids = bucket[order]
    same = np.flatnonzero(ids[1:] == ids[:-1])  # row at `same` and the next share a bucket
    seq = members[order].astype(np.int64)
    found: list[np.ndarray] = []
    # a run of k rows in one bucket gives its k (k - 1) / 2 pairs; pairs of neighbours first
    # (most runs are two rows), then pairs d apart while runs are that long
    d = 1
    while len(same):
        found.append(seq[same] * n + seq[same + d])
        # starts x with x + d + 1 still in the same run: x and x + d share a bucket (x in
        # `same` at distance d), and x + d + 1 shares it with x + d (x + d in the neighbour list)
        nxt = same + d + 1
        ok = nxt < len(ids)
        same = same[ok]
        same = same[ids[same] == ids[nxt[ok]]]
        d += 1
    if not found:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.concatenate(found))


CONFIRM_CHUNK = 20_000  # candidate pairs per confirmation task


def _map_here(fn, items, *shared):
    return (fn(item, *shared) for item in items)


def confirm_pairs(pairs: np.ndarray, shingles: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The exact Jaccard of each candidate pair's shingle sets (`Signatures.shingles` and `offsets`)."""
    return np.array([jaccard(shingles[offsets[i]:offsets[i + 1]], shingles[offsets[j]:offsets[j + 1]])
                     for i, j in pairs.tolist()], dtype=np.float64)


def collapse(sigs: Signatures, keys: list[bytes], threshold: float = THRESHOLD, *, map_=None) -> Collapse:
    """Indices to drop so that no two kept texts are near-duplicates (J ≥ threshold, exact), each
    group keeping its smallest key. Independent of the order of the inputs.

    `map_(fn, items, *shared)` runs the two costly steps, each band's candidate pairs
    (`band_pairs`) and the exact confirmation of chunks of pairs (`confirm_pairs`), and yields
    `fn(item, *shared)` in the order of `items`: here by default, as Ray tasks with the `ray` engine
    (`persian_data.engine`). Both are pure functions of their inputs, so the result is the same."""
    n = len(keys)
    num_perm = sigs.values.shape[1] if n else NUM_PERM
    n_bands, rows = bands(threshold, num_perm)
    rank = np.empty(n, dtype=np.int64)
    rank[_key_order(keys)] = np.arange(n)  # canonical order by key
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        a, b = find(i), find(j)
        if a != b:
            if rank[a] < rank[b]:
                parent[b] = a
            else:
                parent[a] = b

    def runs(group_ids: np.ndarray, members: np.ndarray):
        """The members sharing a group id, in key order, for the groups of two or more."""
        order = np.lexsort((rank[members], group_ids))
        ids = group_ids[order]
        bounds = np.flatnonzero(np.concatenate([[True], ids[1:] != ids[:-1], [True]]))
        for at in np.flatnonzero(np.diff(bounds) > 1):
            yield members[order[bounds[at]:bounds[at + 1]]]

    confirmed: list[tuple[int, int, float]] = []
    checked = 0
    reps = np.ones(n, dtype=bool)  # rows that go through the bands
    if n:  # identical signatures: confirm against the group's first member, linear in the group
        values = sigs.values
        # rows grouped by a 64-bit digest of their values (no sorted copy of every signature),
        # then split into exactly equal rows: a digest collision only makes two classes of a group
        digest = np.zeros(n, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for c in range(num_perm):
                digest = digest * np.uint64(0x100000001B3) ^ values[:, c].astype(np.uint64)
        for group in runs(digest, np.arange(n)):
            rest = [int(g) for g in group]  # in key order
            while len(rest) > 1:
                lead, row = rest[0], values[rest[0]]
                alike = [m for m in rest[1:] if np.array_equal(values[m], row)]
                rest = [m for m in rest[1:] if not np.array_equal(values[m], row)]
                for m in alike:
                    checked += 1
                    score = jaccard(sigs.shingles_of(lead), sigs.shingles_of(m))
                    if score >= threshold:
                        confirmed.append((lead, m, score))
                        union(lead, m)
                        reps[m] = False
    members = np.flatnonzero(reps)
    run_map = map_ or _map_here
    blocks = (sigs.values[members, band * rows:(band + 1) * rows] for band in range(n_bands))
    parts = list(run_map(band_pairs, blocks, members, rank[members], n))
    codes = np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)  # i * n + j, i before j
    result = Collapse(candidates=checked + len(codes))
    if len(codes):
        first, second = np.divmod(codes, n)
        order = np.lexsort((rank[second], rank[first]))  # confirmed in key order
        pairs = np.stack([first[order], second[order]], axis=1)
        chunks = (pairs[at:at + CONFIRM_CHUNK] for at in range(0, len(pairs), CONFIRM_CHUNK))
        scores = (s for part in run_map(confirm_pairs, chunks, sigs.shingles, sigs.offsets) for s in part.tolist())
        for (i, j), score in zip(pairs.tolist(), scores):
            if score >= threshold:
                confirmed.append((i, j, score))
                union(i, j)
    result.drop = {x for a, b, _ in confirmed for x in (a, b) if find(x) != x}  # only joined rows can have moved
    # one pair per dropped row, with its exact Jaccard: its partner is a kept row where one was
    # confirmed with it, else a dropped row of its group it was confirmed with
    best: dict[int, tuple[int, int, float]] = {}
    for i, j, score in confirmed:
        for dropped, partner in ((j, i), (i, j)):
            if dropped not in result.drop:
                continue
            prev = best.get(dropped)
            mine = (partner not in result.drop, score, -rank[partner])
            if prev is None or mine > (prev[0] not in result.drop, prev[2], -rank[prev[0]]):
                best[dropped] = (partner, dropped, score)
    result.pairs = sorted(best.values(), key=lambda p: rank[p[1]])
    return result
