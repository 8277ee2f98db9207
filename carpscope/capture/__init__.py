"""Capture sources: one reader abstraction over files, standard input and live interfaces.

Every source hands the engine the same thing: chunks of frames, each frame a tuple
(number, timestamp, link type, bytes, byte offset, record length) (``reader.Frame``).

- Offline (``open_source``): a regular file, a pipe, a FIFO, a process substitution or ``-``
  (standard input) is opened once and read once by the capture reader (reader.py), which
  numbers frames as Wireshark does, hands over only the frames the decoder can use, and says
  at which record and byte offset a damaged input stops — everything before it is analysed.
- Live (live.py): libpcap through pcapy-ng with a BPF filter, in batches.
"""
from __future__ import annotations

import os
import stat
import sys
TYPE_CHECKING = False     # typing.TYPE_CHECKING without importing typing at run time (start-up)
if TYPE_CHECKING:
    from typing import BinaryIO, Iterator

from carpscope.capture.reader import CHUNK, CaptureFormatError, Frame, Reader
from carpscope.files import display_name
from carpscope.model import SourceInfo
from carpscope.wire.link import check_linktype, linktype_name

NUMBERINGS = ("all", "filtered")      # Wireshark's frame numbers; the n-th frame passing the filter


class CaptureError(Exception):
    """A source that cannot be read at all: one clear line for the user (exit status 2)."""


def _open_error(path: str, e: OSError) -> CaptureError:
    name = display_name(path)
    if isinstance(e, FileNotFoundError):
        return CaptureError(f"{name}: no such file")
    if isinstance(e, IsADirectoryError):
        return CaptureError(f"{name}: is a directory, not a capture file")
    if isinstance(e, PermissionError):
        return CaptureError(f"{name}: permission denied")
    return CaptureError(f"{name}: {e.strerror or e}")


class FileSource:
    """A capture read from a file, a pipe or standard input (``-``)."""

    def __init__(self, path: str, numbering: str = "all"):
        if numbering not in NUMBERINGS:
            raise ValueError(f"numbering must be one of {NUMBERINGS}")
        self.path = path
        self.name = "stdin" if path == "-" else display_name(path)
        self.info = SourceInfo(self.name)
        self.numbering = numbering
        self.filter: str | None = None
        self.on_chunk = None            # called with the bytes read so far (progress display)
        self._numbering = None
        self._raw: BinaryIO
        if path == "-":
            if sys.stdin is None or sys.stdin.isatty():
                raise CaptureError("standard input is a terminal: pipe a capture into it (… | carpscope analyze -)")
            try:      # its own unbuffered handle: reads return what the pipe holds
                self._raw = os.fdopen(os.dup(sys.stdin.fileno()), "rb", buffering=0)
            except (AttributeError, OSError, ValueError):     # a stand-in for stdin (embedding, tests)
                self._raw = sys.stdin.buffer
        else:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)   # a FIFO: waits for its writer, as tcpdump -r does
            except OSError as e:
                raise _open_error(path, e) from None
            try:
                if stat.S_ISDIR(os.fstat(fd).st_mode):
                    raise IsADirectoryError(path)
            except OSError as e:
                os.close(fd)
                raise _open_error(path, e) from None
            self._raw = os.fdopen(fd, "rb", buffering=0)
        try:
            st = os.fstat(self._raw.fileno())
            self._regular, self._size0 = stat.S_ISREG(st.st_mode), st.st_size
        except (AttributeError, OSError, ValueError):
            self._regular, self._size0 = False, 0
        self.reader = Reader(self._raw)
        try:
            self.reader.start()
        except CaptureFormatError as e:
            self.close()
            if path == "-" and str(e).startswith("a gzip"):
                raise CaptureError("stdin: gzip-compressed data: decompress it on the way in "
                                   "(zcat FILE | carpscope analyze -)") from None
            raise CaptureError(f"{self.name}: {e}") from None
        except OSError as e:
            self.close()
            raise _open_error(path, e) from None
        lt = self.reader.linktype
        if lt >= 0:
            self.linktype = lt
            self.info.linktype = linktype_name(lt)
            try:
                check_linktype(lt)
            except ValueError as e:
                self.close()
                raise CaptureError(f"{self.name}: {e}") from None
        if numbering == "filtered":
            from carpscope.capture.filters import NO_BPF, keep_function
            if lt in NO_BPF:      # no usable filter for the link type: every frame counts
                self.numbering = "all"
            else:
                self._numbering, self.reader.bpf = keep_function()

    def chunks(self) -> Iterator[list[Frame]]:
        """The frames the decoder can use, one list per read (see reader.Reader.chunks)."""
        r, info = self.reader, self.info
        try:
            for chunk in r.chunks():
                if info.linktype is None and r.linktype >= 0:
                    info.linktype = linktype_name(r.linktype)
                if self.on_chunk is not None:
                    self.on_chunk(r.offset)
                yield chunk
        except OSError as e:          # the disk or pipe failed under us: keep what was read
            r.damage = None
            info.error = f"reading stopped at byte offset {r.offset}: {e.strerror or e}"
            info.stopped_offset = r.offset
        finally:
            info.packets = r.numbered if self._numbering is not None else r.records
            if self._numbering is not None:
                self.filter = self._numbering.text
        shrank = self._shrank() if r.eof else None
        if r.damage is not None:
            d = r.damage
            info.error = f"reading stopped at record {d.number} (byte offset {d.offset}): {d.reason}"
            info.stopped_frame, info.stopped_offset = d.number, d.offset
            if shrank:
                info.error += f" ({shrank})"
        elif shrank:       # cut between two records: the end looks clean, but is not the file's
            info.error = f"reading stopped at record {r.records + 1} (byte offset {r.offset}): {shrank}"
            info.stopped_frame, info.stopped_offset = r.records + 1, r.offset
        if info.linktype is None and r.linktype >= 0:
            info.linktype = linktype_name(r.linktype)

    def _shrank(self) -> str | None:
        """Why a regular file ended before its size when opened: it was cut (or rewritten)
        while carpscope read it."""
        if not self._regular or self.reader.offset >= self._size0:
            return None
        try:
            now = os.fstat(self._raw.fileno()).st_size
        except (OSError, ValueError):
            return None
        if now >= self._size0:
            return None          # the same size: cut where it was written, not while read
        return f"the file shrank from {self._size0} to {now} bytes while it was read"

    def frames(self) -> Iterator[Frame]:
        for chunk in self.chunks():
            yield from chunk

    def stop(self) -> None:
        """End the read after the current chunk (a signal handler may call this)."""
        self.reader.stop = True

    def position(self) -> int:
        return self.reader.offset

    def size(self) -> int | None:
        if not self._regular:
            return None
        try:
            return os.fstat(self._raw.fileno()).st_size
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        try:
            self._raw.close()
        except OSError:
            pass


def open_source(path: str, numbering: str = "all") -> FileSource:
    return FileSource(path, numbering)


__all__ = ["CHUNK", "CaptureError", "FileSource", "Frame", "NUMBERINGS", "open_source"]
