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

`TarFileWriter` reads each clip straight into a small buffer beside its header and padding, hashes
and writes the buffer when it is full, and starts the kernel's writeback early
(atomic.EarlyWriteback) so the final fsync finds little left to write.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from typing import Callable

from ..atomic import EarlyWriteback
from ..compiled import SPEEDUPS

BLOCK = 512
RECORD = 20 * BLOCK  # tarfile.RECORDSIZE: an archive's length is a multiple of it
MTIME = 946_684_800  # 2000-01-01T00:00:00Z: fixed, so the same inputs give byte-identical shards
MODE = 0o444
NUL = b"\0" * (RECORD + 2 * BLOCK)


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
_EMPTY = bytes(100) + _FIXED + bytes(12) + _TAIL_BEFORE + bytes(8) + _TAIL_AFTER  # no name, size or checksum yet


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


def members_size(members: tuple, audio_size: int) -> int:
    """member_size summed over a sample's members ((name, bytes, or None for its audio of
    `audio_size` bytes))."""
    return sum(member_size(name, audio_size if data is None else len(data)) for name, data in members)


def archive_size(members_bytes: int) -> int:
    """Length of an archive whose members take `members_bytes`: plus the end blocks and padding."""
    end = members_bytes + 2 * BLOCK
    return end + (-end) % RECORD


class TarFileWriter:
    """Writes tar members to an open file descriptor, hashing every byte (see the module doc).

    Headers, padding and the clips themselves go into one 256 KB buffer, which is hashed and
    written whenever it is full: a clip is read straight into it (`add_from`), so a clip costs no
    allocation and its bytes are still in the CPU's cache when they are hashed and written.
    Measured on the 28,024 train clips: 8 MB buffers cost ~35 % more CPU (the bytes are read back
    from memory), and handing full buffers to a helper thread more again (the bytes move between
    cores); a 256 KB buffer costs what per-clip bytes objects and os.writev did, and never holds
    a whole clip.
    """

    def __init__(self, fd: int, on_bytes: Callable[[int], None] | None = None, capacity: int = 256 << 10) -> None:
        self.fd, self.on_bytes = fd, on_bytes
        self.sha256 = hashlib.sha256()
        self.size = 0  # bytes written so far; after close(), the archive's length
        self._buf = memoryview(bytearray(capacity))
        self._used = 0
        self._writeback = EarlyWriteback(fd)

    def _flush(self) -> None:
        chunk = self._buf[:self._used]
        self.sha256.update(chunk)
        while chunk:
            chunk = chunk[os.write(self.fd, chunk):]
        self._writeback.wrote(self._used, _nothing)
        if self.on_bytes is not None:
            self.on_bytes(self._used)
        self.size += self._used
        self._used = 0

    def _put(self, data) -> None:
        view = memoryview(data)
        while view:
            room = len(self._buf) - self._used
            if not room:
                self._flush()
                continue
            n = min(room, len(view))
            self._buf[self._used:self._used + n] = view[:n]
            self._used += n
            view = view[n:]

    def _header(self, name: str, size: int) -> None:
        """`header(name, size)` written straight into the buffer: the template, then the name, size
        and checksum fields over it (~3x faster per member than building the bytes and copying them)."""
        raw = name.encode("utf-8", "surrogateescape")
        at = self._used
        if len(raw) > 100 or size >= 8 ** 11 or len(self._buf) - at < BLOCK or b"\0" in raw:
            self._put(header(name, size))
            return
        buf = self._buf
        buf[at:at + BLOCK] = _EMPTY
        buf[at:at + len(raw)] = raw
        size_field = b"%011o\0" % size
        buf[at + 124:at + 136] = size_field
        buf[at + 148:at + 156] = b"%06o\0 " % (_BASE + sum(raw) + sum(size_field))
        self._used = at + BLOCK

    def _pad(self, size: int) -> None:
        if pad := (-size) % BLOCK:
            if len(self._buf) - self._used >= pad:
                self._buf[self._used:self._used + pad] = NUL[:pad]
                self._used += pad
            else:
                self._put(NUL[:pad])

    def add(self, name: str, data: bytes) -> None:
        """A member whose bytes are in memory (JSON)."""
        self._header(name, len(data))
        if len(self._buf) - self._used >= len(data):
            self._buf[self._used:self._used + len(data)] = data
            self._used += len(data)
        else:
            self._put(data)
        self._pad(len(data))

    def add_from(self, name: str, fd: int, size: int, check=None) -> int:
        """A member of `size` bytes read from `fd` straight into the buffer (`check`, a hashlib
        object, sees them too). Returns the bytes read: fewer when the file is shorter, and then
        the archive is broken and must be thrown away."""
        self._header(name, size)
        buf, capacity, readv = self._buf, len(self._buf), os.readv
        left = size
        while left:
            used = self._used
            if used == capacity:
                self._flush()
                continue
            view = buf[used:used + min(capacity - used, left)]
            n = readv(fd, (view,))
            if not n:
                return size - left
            if check is not None:
                check.update(view[:n])
            self._used = used + n
            left -= n
        self._pad(size)
        return size

    def add_samples(self, samples: list, start: int, stop: int) -> int:
        """The members of samples[start:stop] (shards.samples.Sample: `members`, and for the clip
        `path`, `size`, `stat`, `trusted`) written in C, as `add` and `add_from` would write them.
        Returns the index of the first sample not written (`stop` when all were; `start` without the
        C extension), which the caller writes itself: a clip the hash cache does not vouch for with
        this very stat (hashed on the way), a missing one, a name over 100 bytes. Returns -1 - index
        when that sample's clip ended before its size (the archive must be thrown away)."""
        if SPEEDUPS is None:
            return start
        return SPEEDUPS.tar_samples(self, samples, start, stop, _EMPTY, _BASE)

    def close(self) -> None:
        """End the archive as tarfile does; the caller fsyncs and places the file."""
        end = self.size + self._used + 2 * BLOCK
        self._put(NUL[:2 * BLOCK + (-end) % RECORD])
        self._flush()


def _nothing() -> None:
    pass
