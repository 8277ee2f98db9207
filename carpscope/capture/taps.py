"""The interfaces one sensor watches, each a ``Tap``: its live source, its ``SourceInfo`` (the
segment is named after the interface), whether it is lost, and its counts across reopenings.

``carpscope sniff em0 em1 vlan20`` reads every tap with one select(); an interface that goes
down or disappears is *lost*: its handle is closed and, when the sensor keeps going without it
(an exporter, see commands/sniff.py), reopened once it is back up. Frame numbers and kernel drop
counts go on across reopenings, so a segment's packet numbers never repeat and the drop counter
never goes back.
"""
from __future__ import annotations

TYPE_CHECKING = False     # typing.TYPE_CHECKING without importing typing at run time (start-up)
if TYPE_CHECKING:
    from typing import Callable

from carpscope.capture.live import LiveError
from carpscope.model import SourceInfo


class Tap:
    def __init__(self, source, opener: Callable[[str], object] | None = None) -> None:
        self.source = source
        self.name: str = source.name
        self.info = SourceInfo(source.name, linktype=getattr(source, "linktype_name", None))
        self.opener = opener              # name -> a new source (None: never reopened)
        self.lost: str | None = None      # why the interface is lost, while it is
        self.losses = 0
        self._received = self._dropped = self._ifdropped = 0     # of the handles closed so far

    @property
    def fd(self) -> int | None:
        return None if self.lost else self.source.fd

    def chunk(self) -> list:
        """The frames the interface holds now ([] while it is lost); InterfaceLost on a loss."""
        if self.lost:
            return []
        return self.source.chunk()

    def check(self) -> None:
        if not self.lost:
            self.source.check()

    def stats(self) -> tuple[int, int, int] | None:
        """libpcap's (received, dropped, dropped by the interface), summed over every handle."""
        now = None if self.lost else self.source.stats()
        if now is None and not self.losses:
            return None
        r, d, i = now or (0, 0, 0)
        return (self._received + r, self._dropped + d, self._ifdropped + i)

    def lose(self, why: str) -> None:
        """The interface went away: keep the counts, close the handle."""
        st = self.source.stats()
        if st:
            self._received += st[0]
            self._dropped += st[1]
            self._ifdropped += st[2]
        close = getattr(self.source, "close", None)
        if close is not None:
            close()
        self.lost = why
        self.losses += 1

    def up(self) -> bool:
        """Captured now, and the interface up (what the exporter's interface-up gauge says)."""
        if self.lost:
            return False
        up = getattr(self.source, "up", None)
        return True if up is None else bool(up())

    def reopen(self) -> bool:
        """Open the interface again (True when it is captured again; the opener refuses an
        interface that is still down or gone)."""
        if not self.lost or self.opener is None:
            return False
        try:
            src = self.opener(self.name)
        except (LiveError, OSError):
            return False
        go_on = getattr(src, "number_after", None)
        if go_on is not None:
            go_on(self.info.packets)              # numbering goes on where it stopped
        self.source, self.lost = src, None
        return True
