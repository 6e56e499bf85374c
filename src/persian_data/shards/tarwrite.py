"""Plain POSIX tar files, written fast, byte-for-byte reproducible, hashed while written.

Every shard format here (WebDataset, lhotse Shar's recording tars, NeMo's tarred audio) is an
uncompressed tar of regular files read in order. Why not `webdataset.TarWriter` or lhotse's
`TarWriter`: importing webdataset (or lhotse) imports torch when it is installed (3.3 s here,
measured with -X importtime), both copy every member through a BytesIO and tarfile's stream
mode in 10 KB records, and neither tells a shard's size before it is written. The planner needs
that size (shards cut to the requested size), so headers are built here:

- members of at most 100 bytes of name: a ustar header from a fixed template (name, size and
  checksum filled in), byte-identical to `tarfile.TarInfo.tobuf(USTAR_FORMAT)` for the same
  fields (tests/test_shards.py checks that property); longer names go through tarfile's own PAX
  header;
- fixed mode (0444, as webdataset writes), owner and mtime, so the same inputs give the same bytes;
- the end of the archive as tarfile writes it: two zero blocks, padded to 20 blocks.

`TarFileWriter` sends headers, data and padding to the file with `os.writev` (a few MB at a time),
hashes them on the way and starts the kernel's writeback early (atomic.EarlyWriteback).
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from typing import Callable

from ..atomic import EarlyWriteback

BLOCK = 512
RECORD = 20 * BLOCK  # tarfile.RECORDSIZE: an archive's length is a multiple of it
MTIME = 946_684_800  # 2000-01-01T00:00:00Z: fixed, so the same inputs give byte-identical shards
MODE = 0o444
NUL = b"\0" * (RECORD + 2 * BLOCK)
_BATCH_BYTES = 4 << 20
_BATCH_PARTS = 900  # below IOV_MAX (1024)


def _template() -> tuple[bytes, bytes, int]:
    """(the header bytes between the size field and the checksum field, those after it, and the
    checksum contribution of every byte that is not name or size)."""
    info = tarfile.TarInfo("x")
    info.size, info.mtime, info.mode, info.uname, info.gname = 0, MTIME, MODE, "", ""
    raw = info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")
    between, after = raw[136:148], raw[156:]  # mtime field; typeflag .. end
    fixed = raw[100:124]  # mode, uid, gid
    base = sum(fixed) + sum(between) + sum(after) + 8 * 0x20  # the checksum counts its own field as spaces
    return fixed, between + b"%s" + after, base


_FIXED, _TAIL, _BASE = _template()
_TAIL_BEFORE, _TAIL_AFTER = _TAIL.split(b"%s")


def header(name: str, size: int) -> bytes:
    """The tar header(s) of a regular file `name` holding `size` bytes."""
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) > 100 or b"\0" in raw or size >= 8 ** 11:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode, info.uname, info.gname = size, MTIME, MODE, "", ""
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    size_field = b"%011o\0" % size
    chksum = _BASE + sum(raw) + sum(size_field)
    return b"".join((raw, bytes(100 - len(raw)), _FIXED, size_field, _TAIL_BEFORE, b"%06o\0 " % chksum,
                     _TAIL_AFTER))


def header_size(name: str, size: int) -> int:
    if len(name) <= 100 and name.isascii() and "\0" not in name and size < 8 ** 11:
        return BLOCK  # the common case, without encoding the name
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) <= 100 and b"\0" not in raw and size < 8 ** 11:
        return BLOCK
    return len(header(name, size))


def member_size(name: str, size: int) -> int:
    """Bytes a member takes in the archive: its header(s) and its data padded to a block."""
    return header_size(name, size) + size + (-size) % BLOCK


def archive_size(members_bytes: int) -> int:
    """Length of an archive whose members take `members_bytes`: plus the end blocks and padding."""
    end = members_bytes + 2 * BLOCK
    return end + (-end) % RECORD


class TarFileWriter:
    """Writes tar members to an open file descriptor, hashing every byte (see the module doc)."""

    def __init__(self, fd: int, on_bytes: Callable[[int], None] | None = None) -> None:
        self.fd, self.on_bytes = fd, on_bytes
        self.sha256 = hashlib.sha256()
        self.size = 0
        self._parts: list = []
        self._pending = 0
        self._writeback = EarlyWriteback(fd)

    def add(self, name: str, data: bytes) -> None:
        size = len(data)
        pad = (-size) % BLOCK
        head = header(name, size)
        parts = self._parts
        parts.append(head)
        parts.append(data)
        if pad:
            parts.append(NUL[:pad])
        self._pending += len(head) + size + pad
        if self._pending >= _BATCH_BYTES or len(parts) >= _BATCH_PARTS:
            self._flush()

    def _flush(self) -> None:
        parts, self._parts = self._parts, []
        update = self.sha256.update
        for part in parts:
            update(part)  # hashlib drops the GIL for buffers over 2 KB: other shards' threads go on
        written = os.writev(self.fd, parts)
        if written != self._pending:  # a short write (rare on regular files): write the rest plainly
            rest = memoryview(b"".join(parts))[written:]
            while rest:
                rest = rest[os.write(self.fd, rest):]
        self.size += self._pending
        self._writeback.wrote(self._pending, lambda: None)
        if self.on_bytes is not None:
            self.on_bytes(self._pending)
        self._pending = 0

    def close(self) -> None:
        """End the archive as tarfile does; the caller fsyncs and places the file."""
        end = self.size + self._pending + 2 * BLOCK
        self._parts.append(NUL[:2 * BLOCK + (-end) % RECORD])
        self._pending += len(self._parts[-1])
        self._flush()
