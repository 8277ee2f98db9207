"""Inferring the VIP set of each (segment, VHID) from ARP/NA hints and the advert stream.

The CARP HMAC covers the sender's VIP set, which is never in the packet (protocol.md §2.6).
Two kinds of evidence reveal it:

1. **Virtual MAC** (authoritative). An ARP reply / gratuitous ARP or IPv6 neighbour
   advertisement whose Ethernet source or claimed link-layer address is 00:00:5e:00:01:NN
   (CARP, VRRP for IPv4, FreeBSD VRRPv3 for both families) announces an address of vhid NN on
   that segment. 00:00:5e:00:02:NN (VRRPv3 IPv6) is recorded too, but belongs to VRRP, which has
   no HMAC, so it is not fed to the keyring.
2. **Master change** (heuristic, for ucarp). ucarp sends its gratuitous ARP from the host's real
   NIC MAC (its adverts come from 00:00:5e:00:00:NN), so an announced address is attributed to
   CARP vhid N when it is not any speaker's own source IP and it was seen within ``window``
   seconds after a speaker of vhid N on that segment started advertising (became master) — and
   only when exactly one group on that segment changed master in that window. Hints are held for
   ``lead`` seconds so a GARP sent just before the first advert still counts. An address that two
   groups would claim this way is dropped as ambiguous. Virtual-MAC evidence always wins.

Inferred sets go to the keyring with ``origin="inferred"`` and the segment. Memory is bounded
by groups, addresses per group and a fixed-size queue of pending hints; nothing grows per packet.
"""
from __future__ import annotations

from collections import deque

from carpscope.model import CARP, AddressHint, Advert

VIA_VMAC = "virtual-mac"
VIA_MASTER = "after-master-change"


def virtual_mac_id(mac: str | None) -> tuple[int, int] | None:
    """(block, id) for 00:00:5e:00:0B:NN with block 1 (IPv4 VRRP / CARP) or 2 (IPv6 VRRP)."""
    if not mac:
        return None
    m = mac.lower().replace("-", ":")
    if len(m) != 17 or not m.startswith("00:00:5e:00:0"):
        return None
    block = m[13]
    if block not in "12" or m[14] != ":":
        return None
    try:
        vid = int(m[15:17], 16)
    except ValueError:
        return None
    return (int(block), vid) if vid else None


def _usable(address: str) -> str | None:
    """Canonical text of a unicast address worth attributing, else None."""
    import ipaddress      # here, not at the top: only a capture with address hints needs it
    try:
        a = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if a.is_unspecified or a.is_multicast or a.is_loopback:
        return None
    if a.version == 4 and a == ipaddress.IPv4Address("255.255.255.255"):
        return None
    return str(a)


ADJACENT = 0.005   # seconds between a GARP and the advert of the master that sent it


class _Last:
    """The last advert of one (protocol, vhid) on a segment: its source and time (updated in
    place; typed, so that comparing times costs no object)."""

    src: str
    ts: float

    def __init__(self, src: str, ts: float) -> None:
        self.src, self.ts = src, ts


class _Segment:
    """What one segment's adverts taught: its speakers' own source IPs, the last advert of each
    group, and the recent master changes (ts, protocol, vhid). One lookup per advert."""

    speakers: set[str]
    last: dict[tuple[str, int], _Last]
    changes: deque[tuple[float, str, int]]

    def __init__(self) -> None:
        self.speakers, self.last, self.changes = set(), {}, deque()


class InferredVips:
    """What is known about one (segment, vhid): address → how it was learned, first frame."""

    __slots__ = ("segment", "vhid", "via", "frames", "block")

    segment: str
    vhid: int
    via: dict[str, str]
    frames: dict[str, int]
    block: dict[str, int]                                 # 1, 2 or 0 (heuristic: CARP)

    def __init__(self, segment: str, vhid: int, via: dict[str, str] | None = None,
                 frames: dict[str, int] | None = None, block: dict[str, int] | None = None) -> None:
        self.segment = segment
        self.vhid = vhid
        self.via = {} if via is None else via
        self.frames = {} if frames is None else frames
        self.block = {} if block is None else block

    @property
    def addrs(self) -> tuple[str, ...]:
        return tuple(self.via)

    def carp_addrs(self) -> tuple[str, ...]:
        """The addresses that may enter a CARP HMAC (not VRRPv3-IPv6 MAC evidence)."""
        return tuple(a for a in self.via if self.block[a] != 2)


class VipInference:
    """Feed ``AddressHint``s and ``Advert``s in time order; read ``vips()`` / ``groups()``.

    With a keyring, every change of a group's CARP-relevant set is written to it as
    ``add_vips(vhid, addrs, origin="inferred", segment=...)``.
    """

    MAX_GROUPS = 1024
    MAX_ADDRS = 64
    MAX_PENDING = 4096
    MAX_SPEAKERS = 4096

    def __init__(self, keyring=None, window: float = 3.0, lead: float = 0.5):
        self.keyring = keyring
        self.window = window
        self.lead = lead
        self._groups: dict[tuple[str, int], InferredVips] = {}
        self._segments: dict[str, _Segment] = {}
        self._n_masters = 0
        self._pending: deque[tuple[AddressHint, set]] = deque()   # (hint, groups adjacent to it)
        self._ambiguous: set[tuple[str, str]] = set()
        self._now = float("-inf")
        self._next_trim = float("-inf")
        # an advert at a time t with adj_until < t < due changes nothing but its group's cell
        # (no hint near it, nothing to resolve, nothing to trim)
        self.adj_until = float("-inf")
        self.due = float("-inf")
        self.dropped = 0

    # feeding
    def add(self, item) -> None:
        """Dispatch an AddressHint or Advert (anything else is ignored)."""
        if isinstance(item, AddressHint):
            self.add_hint(item)
        elif isinstance(item, Advert):
            self.add_advert(item)

    def add_advert(self, advert: Advert) -> None:
        ts = advert.ts
        self._advance(ts)
        seg = advert.segment
        sg = self._segments.get(seg)
        if sg is None:     # (not setdefault: a record per advert)
            sg = self._segments[seg] = _Segment()
        src = advert.src
        if len(sg.speakers) < self.MAX_SPEAKERS:
            sg.speakers.add(src)
        gk = (advert.protocol, advert.vhid)
        if ts <= self.adj_until:
            # a hint waits for the adverts sent within ADJACENT after it
            for hint, adjacent in self._pending:
                if hint.segment == seg and abs(ts - hint.ts) <= ADJACENT:
                    adjacent.add(gk)
        cell = sg.last.get(gk)
        if cell is None or cell.src != src or ts - cell.ts > self.change_gap(advert.interval_s):
            sg.changes.append((ts, advert.protocol, advert.vhid))
        if cell is not None:
            cell.src, cell.ts = src, ts
        elif self._n_masters < self.MAX_GROUPS * 4:
            sg.last[gk] = _Last(src, ts)
            self._n_masters += 1

    @staticmethod
    def change_gap(interval_s: float) -> float:
        """Silence after which the same source advertising again counts as a master change."""
        return max(3.0 * interval_s, 1.0) + 0.5

    def add_hint(self, hint: AddressHint) -> None:
        self._advance(hint.ts)
        addr = _usable(hint.address)
        if addr is None:
            return
        vm = virtual_mac_id(hint.eth_src) or virtual_mac_id(hint.lladdr)
        if vm is not None:
            block, vhid = vm
            self._attribute(hint.segment, vhid, addr, VIA_VMAC, hint.frame, block)
            return
        if len(self._pending) >= self.MAX_PENDING:
            self._pending.popleft()
            self.dropped += 1
        # the groups that advertised within ADJACENT before it (their last advert); those
        # within ADJACENT after it are added by add_advert while adj_until covers them
        sg = self._segments.get(hint.segment)
        adjacent = {gk for gk, last in sg.last.items() if abs(last.ts - hint.ts) <= ADJACENT} if sg else set()
        self._pending.append((hint, adjacent))
        self.adj_until = max(self.adj_until, hint.ts + ADJACENT)
        self._set_due()

    def finish(self) -> None:
        """Resolve hints still waiting for their look-ahead (end of capture)."""
        self._advance(float("inf"))

    # reading
    def vips(self, segment: str, vhid: int) -> tuple[str, ...]:
        g = self._groups.get((segment, vhid))
        return g.addrs if g else ()

    def groups(self) -> list[InferredVips]:
        return list(self._groups.values())

    # internals
    def _advance(self, now: float) -> None:
        """Resolve hints whose look-ahead has passed, then forget changes nobody can use."""
        if now < self._now:
            now = self._now       # tolerate slightly unordered input
        self._now = now
        if now < self.due:
            return
        while self._pending and self._pending[0][0].ts + self.lead <= now:
            self._resolve(*self._pending.popleft())
        if now >= self._next_trim:
            # at most once per second of capture: what is trimmed can no longer fall in the
            # window of any pending or future hint, so when it is trimmed changes nothing
            self._next_trim = now + 1.0
            horizon = (self._pending[0][0].ts if self._pending else now) - self.window - self.lead
            for sg in self._segments.values():
                ch = sg.changes
                while ch and ch[0][0] < horizon:
                    ch.popleft()
        self._set_due()

    def _set_due(self) -> None:
        due = self._next_trim
        if self._pending:
            due = min(due, self._pending[0][0].ts + self.lead)
        # a hint from the past (unordered input) is due at once: the next advert resolves it
        self.due = due if due > self._now else float("-inf")

    def _resolve(self, hint: AddressHint, adjacent: set) -> None:
        addr = _usable(hint.address)
        seg = hint.segment
        sg = self._segments.get(seg)
        if addr is None or sg is None or addr in sg.speakers:
            return
        # ucarp sends its gratuitous ARP and its advert back to back (microseconds apart): a
        # single group advertising within ADJACENT of the hint settles it
        groups = adjacent
        if len(groups) != 1:
            lo, hi = hint.ts - self.window, hint.ts + self.lead
            groups = {(p, v) for (t, p, v) in sg.changes if lo <= t <= hi}
        if len(groups) != 1:
            return
        proto, vhid = next(iter(groups))
        if proto != CARP:
            return
        if (seg, addr) in self._ambiguous:
            return
        for (gseg, gvhid), g in list(self._groups.items()):
            if gseg == seg and gvhid != vhid and g.via.get(addr) == VIA_MASTER:
                self._ambiguous.add((seg, addr))   # claimed by two groups: trust neither
                self._forget(g, addr)
                return
            if gseg == seg and gvhid != vhid and g.via.get(addr) == VIA_VMAC:
                return                             # virtual-MAC evidence says another group
        self._attribute(seg, vhid, addr, VIA_MASTER, hint.frame, 0)

    def _attribute(self, seg: str, vhid: int, addr: str, via: str, frame: int, block: int) -> None:
        g = self._groups.get((seg, vhid))
        if g is None:
            if len(self._groups) >= self.MAX_GROUPS:
                self.dropped += 1
                return
            g = self._groups[(seg, vhid)] = InferredVips(seg, vhid)
        if addr in g.via:
            if via == VIA_VMAC and g.via[addr] != VIA_VMAC:
                g.via[addr] = VIA_VMAC             # upgrade the evidence, set unchanged
                g.block[addr] = block
                self._publish(g)                   # block may now exclude it from CARP
            return
        if len(g.via) >= self.MAX_ADDRS:
            self.dropped += 1
            return
        if via == VIA_VMAC:
            # authoritative: drop a heuristic claim of the same address by another group
            for (gseg, gvhid), other in list(self._groups.items()):
                if gseg == seg and gvhid != vhid and other.via.get(addr) == VIA_MASTER:
                    self._forget(other, addr)
        g.via[addr] = via
        g.frames[addr] = frame
        g.block[addr] = block
        self._publish(g)

    def _forget(self, g: InferredVips, addr: str) -> None:
        g.via.pop(addr, None)
        g.frames.pop(addr, None)
        g.block.pop(addr, None)
        self._publish(g)

    def _publish(self, g: InferredVips) -> None:
        if self.keyring is None:
            return
        addrs = g.carp_addrs()
        if addrs:
            # the union (kernel CARP hashes every VIP of the vhid), then each IPv4 address alone
            # (ucarp hashes exactly one): two speakers announcing different VIPs of one vhid is
            # precisely the VIP-set mismatch the verifier must be able to show
            sets = [addrs]
            if len(addrs) > 1:
                sets += [(a,) for a in addrs if ":" not in a]
            self.keyring.set_inferred(g.vhid, sets, g.segment)
        else:
            self.keyring.remove_inferred(g.vhid, g.segment)
