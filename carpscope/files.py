"""Reading the small text files carpscope is pointed at (configs, passphrase files) safely, and
naming any file safely in a message.

A path can name anything: /dev/zero, a FIFO that never ends, a multi-gigabyte log. Configs and
passphrase files are small regular files: anything else (a FIFO, a device, a directory) is
refused before it is read, and reads are bounded: past the limit the file is refused with a
clear error instead of hanging or filling memory. (Captures are streamed, never read whole.)
"""
from __future__ import annotations

import os
import stat
TYPE_CHECKING = False     # typing.TYPE_CHECKING without importing typing at run time (start-up)
if TYPE_CHECKING:
    from typing import Iterable, TextIO

MAX_TEXT = 4 << 20          # 4 MiB: far above any rc.conf, keepalived.conf or passphrase file


class FileTooLarge(OSError):
    pass


class NotARegularFile(OSError):
    pass


def display_name(path: str | os.PathLike) -> str:
    """A file name as it can be printed whatever its bytes: undecodable bytes of a non-UTF-8
    name appear as \\xNN escapes instead of failing the message that names them."""
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def read_limited(path: str | os.PathLike, limit: int = MAX_TEXT) -> bytes:
    """The bytes of a regular file, at most ``limit``; NotARegularFile for a FIFO, device or
    directory (never opened for reading: a FIFO would block), FileTooLarge (both OSErrors)
    beyond the limit."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)    # a FIFO must not block the open
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
                    else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "a special file")
            raise NotARegularFile(f"{kind}, not a regular file")
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise FileTooLarge(f"larger than {limit >> 20} MiB: not a configuration or passphrase file")
    return data


class NotText(UnicodeDecodeError):
    """A file with a NUL byte: no configuration or passphrase file holds one (a binary file, or
    one damaged on disk). A UnicodeDecodeError, so every reader of text refuses it."""

    def __init__(self, data: bytes, pos: int) -> None:
        super().__init__("utf-8", data[pos:pos + 1], 0, 1, "NUL byte")
        self.line = data.count(b"\n", 0, pos) + 1

    def __str__(self) -> str:
        return f"not a text file: a NUL byte on line {self.line}"


def text_error(e: UnicodeDecodeError) -> str:
    """What is wrong with a file that is no readable text, in one phrase."""
    return str(e) if isinstance(e, NotText) else "not UTF-8 text"


def read_text_limited(path: str | os.PathLike, limit: int = MAX_TEXT) -> str:
    """UTF-8 text of a bounded regular file: ``NotText`` (a UnicodeDecodeError) for a NUL byte,
    UnicodeDecodeError for bytes that are not UTF-8, OSErrors as ``read_limited``."""
    data = read_limited(path, limit)
    nul = data.find(b"\0")
    if nul >= 0:
        raise NotText(data, nul)
    return data.decode("utf-8")


def head(path: str | os.PathLike, n: int) -> bytes:
    """The first ``n`` bytes of a regular file, to tell its kind; b"" for anything else (a FIFO
    must not be opened for reading twice, nor block) or when it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return b""
        return os.read(fd, n)
    except OSError:
        return b""
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------ writing outputs

_BEGUN: "set[Output]" = set()     # outputs begun and not yet committed or aborted


def abort_unfinished() -> None:
    """Remove the temporary files of outputs begun and never put in place (the command failed
    or was interrupted on the way): no partial report is left behind."""
    for out in list(_BEGUN):
        out.abort()


class OutputError(OSError):
    """An output that cannot be written: one line for the user (exit status 2)."""


class Output:
    """A report, baseline or inventory file the user asked for with an option.

    Checked when the command starts (``Output(path, option)``: before any analysis, capture or
    privilege drop), so a mistyped directory fails in a second, not after an hour of reading.
    Written whole or not at all (``write``): into a new temporary file beside the target,
    renamed over it once complete, so a full disk leaves the old file (or none), never half a
    report. The target must not be a symbolic link (carpscope often runs as root: a link planted
    where a report goes must not redirect the write), a directory or unwritable. A target that
    exists and is not a regular file (``/dev/stdout``, a FIFO, a terminal) is written directly.
    """

    def __init__(self, path: str, option: str) -> None:
        self.path, self.option = path, option
        self.name = display_name(path)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        except OSError as e:
            raise self._error(e) from None
        self.special = False
        if st is not None:
            if stat.S_ISLNK(st.st_mode):
                raise OutputError(f"{option} {self.name}: is a symbolic link; give the real path "
                                  "(outputs never follow links)")
            if stat.S_ISDIR(st.st_mode):
                raise OutputError(f"{option} {self.name}: is a directory")
            self.special = not stat.S_ISREG(st.st_mode)
            if not os.access(path, os.W_OK):
                raise OutputError(f"{option} {self.name}: permission denied")
        if not self.special:
            parent = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(parent):
                raise OutputError(f"{option} {self.name}: no such directory {display_name(parent)}")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise OutputError(f"{option} {self.name}: cannot create files in {display_name(parent)} "
                                  "(permission denied or read-only)")

    def _error(self, e: OSError) -> OutputError:
        return OutputError(f"{self.option} {self.name}: {e.strerror or e}")

    def write(self, text: str | Iterable[str]) -> None:
        """The whole file: a string, or its pieces in order; put in place once all are written
        (a write error leaves no part of it: ``OutputError``)."""
        f = self.begin()
        try:
            for piece in [text] if isinstance(text, str) else text:
                f.write(piece)
        except OSError as e:
            self.abort()
            raise self._error(e) from None
        except BaseException:
            self.abort()
            raise
        self.commit()

    def begin(self) -> TextIO:
        """A text stream to write the file into (a temporary file beside the target, or the
        target itself when it is not a regular file); ``commit`` puts it in place."""
        try:
            if self.special:
                fd = os.open(self.path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                self._tmp = None
            else:
                fd, self._tmp = self._temporary()
            self._file = os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape")
        except OSError as e:
            raise self._error(e) from None
        _BEGUN.add(self)
        return self._file

    def commit(self) -> None:
        f, tmp = self._file, self._tmp
        try:
            f.flush()
            if tmp is not None:
                os.fsync(f.fileno())
            f.close()
            if tmp is not None:
                if os.path.islink(self.path):        # planted while we wrote
                    raise OSError(0, "became a symbolic link while the report was written")
                os.replace(tmp, self.path)
        except OSError as e:
            self.abort()
            raise self._error(e) from None
        _BEGUN.discard(self)

    def abort(self) -> None:
        """Drop what was written (the target is left as it was)."""
        _BEGUN.discard(self)
        try:
            self._file.close()
        except (OSError, AttributeError, ValueError):
            pass
        tmp = getattr(self, "_tmp", None)
        if tmp:
            try:
                os.unlink(tmp)
            except OSError:
                pass

    def _temporary(self) -> tuple[int, str]:
        parent = os.path.dirname(os.path.abspath(self.path))
        base = os.path.basename(self.path)
        for i in range(100):
            cand = os.path.join(parent, f".{base}.{os.getpid()}.{i}.tmp")
            try:
                return os.open(cand, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                               0o644), cand
            except FileExistsError:
                continue
        raise OSError(0, "no temporary file name available")


