"""Reading the small text files carpscope is pointed at (configs, passphrase files) safely.

A path can name anything: /dev/zero, a FIFO that never ends, a multi-gigabyte log. Configs and
passphrase files are small, so reads are bounded: past the limit the file is refused with a
clear error instead of hanging or filling memory. (Captures are streamed, never read whole.)
"""
from __future__ import annotations

import os

MAX_TEXT = 4 << 20          # 4 MiB: far above any rc.conf, keepalived.conf or passphrase file


class FileTooLarge(OSError):
    pass


def read_limited(path: str | os.PathLike, limit: int = MAX_TEXT) -> bytes:
    """The file's bytes, at most ``limit``; FileTooLarge (an OSError) beyond that."""
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise FileTooLarge(f"larger than {limit >> 20} MiB: not a configuration or passphrase file")
    return data


def read_text_limited(path: str | os.PathLike, limit: int = MAX_TEXT) -> str:
    """UTF-8 text of a bounded file (UnicodeDecodeError as from read_text)."""
    return read_limited(path, limit).decode("utf-8")
