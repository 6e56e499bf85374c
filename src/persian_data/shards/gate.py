"""The `shards` gate: every shard set on disk matches its index, and its index its manifest.

Scoped to the speech sources of the run, and to the sets that exist: a root without shards is not
judged. `verify` re-hashes every shard file; a run trusts the hash cache for files unchanged since
they were hashed. An index whose manifest sha256 is no longer the manifest's is stale: the set
was made from other data (the check lives in index.check_set, shared with the command).
"""

from __future__ import annotations

from ..catalog import SPEECH_BUCKET
from ..gates import GateContext, GateFailure, gate
from .index import check_set, existing_sets


@gate("shards", bucket=SPEECH_BUCKET)
def shards_gate(ctx: GateContext) -> list[GateFailure]:
    out = []
    for source in ctx.sources:
        if source.bucket != SPEECH_BUCKET:
            continue
        for paths in existing_sets(ctx.layout, source.key):
            out.extend(GateFailure("shards", where, reason) for where, reason in check_set(paths, ctx.sha256))
    return out
