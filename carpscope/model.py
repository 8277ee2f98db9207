"""Plain records passed between the pipeline stages (decode -> verify -> track -> rules -> report).

Nothing here prints or does I/O. Records are small slotted classes so that a capture of millions
of adverts streams through without building large objects; each has its own ``__init__`` (no
dataclass: building one costs its import at every start).
"""
from __future__ import annotations

from enum import Enum
TYPE_CHECKING = False     # typing.TYPE_CHECKING without importing typing at run time (start-up)
if TYPE_CHECKING:
    from typing import Final

CARP: Final = "carp"
VRRP2: Final = "vrrp2"
VRRP3: Final = "vrrp3"
PROTOCOL_NAMES = {CARP: "CARP", VRRP2: "VRRPv2", VRRP3: "VRRPv3"}


def protocol_name(protocol: str) -> str:
    """How messages and tables name a protocol (carp -> CARP, vrrp2 -> VRRPv2)."""
    return PROTOCOL_NAMES.get(protocol, protocol)


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"error": 3, "warning": 2, "info": 1}[self.value]


class Advert:
    """One decoded CARP/VRRP advertisement with the IP and link facts around it.

    ``frame`` is the 1-based number of the packet in its source (Wireshark's frame.number unless
    the filtered numbering was asked for, see capture/). CARP-only fields are None for VRRP and
    the other way round. The decoder builds it with the frame's facts and fills the rest.
    (A plain class with its own ``__init__``, not a dataclass: one is built per advert, and a
    generated ``__init__`` would run as interpreted code even where this module is compiled.)
    """

    frame: int
    ts: float
    source: str
    segment: str
    family: int                   # 4 | 6
    src: str
    dst: str
    ttl: int
    protocol: str                 # carp | vrrp2 | vrrp3
    vhid: int
    version: int
    type: int
    checksum: int
    checksum_ok: bool
    checksum_variant: str         # plain | pseudo | none | pseudo-224 | bad
    payload_len: int
    trailing: int                 # bytes after the advert inside the IP payload
    eth_src: str | None
    eth_dst: str | None
    vlans: tuple[int, ...]
    point: str                    # capture point and VLANs: the segment without the SLL2 interface
    ifindex: int                  # SLL2: the interface of the capturing host it was recorded on
    packet: bytes                 # the IP packet (how repeats.py recognises a copy; not reported)
    ip_id: int | None             # IPv4 identification (None for IPv6)
    tos: int                      # IPv4 TOS / IPv6 traffic class (DSCP << 2 | ECN)
    df: bool                      # IPv4 don't-fragment flag
    # CARP
    advbase: int | None
    advskew: int | None
    authlen: int | None
    demote: int | None            # byte 4: FreeBSD/ucarp pad, OpenBSD demote count
    counter: bytes | None         # 8 bytes as on the wire
    md: bytes | None              # 20-byte HMAC-SHA1
    # VRRP
    priority: int | None
    count: int | None
    addresses: tuple[str, ...]
    auth_type: int | None         # VRRPv2 only
    auth_data: bytes | None
    interval_cs: int | None       # v2: adver_int*100, v3: the 12-bit field
    reserved: int | None          # VRRPv3 reserved nibble
    flow: object                  # the decoder's wire.frame.Flow it belongs to (None if built by hand)

    def __init__(self, frame: int, ts: float, source: str, segment: str, family: int, src: str, dst: str,
                 ttl: int, protocol: str = "", vhid: int = 0, version: int = 0, type: int = 0,
                 checksum: int = 0, checksum_ok: bool = False, checksum_variant: str = "",
                 payload_len: int = 0, trailing: int = 0, eth_src: str | None = None,
                 eth_dst: str | None = None, vlans: tuple[int, ...] = (), point: str = "",
                 ifindex: int = -1, packet: bytes = b"", ip_id: int | None = None, tos: int = 0,
                 df: bool = False, advbase: int | None = None, advskew: int | None = None,
                 authlen: int | None = None, demote: int | None = None, counter: bytes | None = None,
                 md: bytes | None = None, priority: int | None = None, count: int | None = None,
                 addresses: tuple[str, ...] = (), auth_type: int | None = None,
                 auth_data: bytes | None = None, interval_cs: int | None = None,
                 reserved: int | None = None) -> None:
        self.frame = frame
        self.ts = ts
        self.source = source
        self.segment = segment
        self.family = family
        self.src = src
        self.dst = dst
        self.ttl = ttl
        self.protocol = protocol
        self.vhid = vhid
        self.version = version
        self.type = type
        self.checksum = checksum
        self.checksum_ok = checksum_ok
        self.checksum_variant = checksum_variant
        self.payload_len = payload_len
        self.trailing = trailing
        self.eth_src = eth_src
        self.eth_dst = eth_dst
        self.vlans = vlans
        self.point = point or segment
        self.ifindex = ifindex
        self.packet = packet
        self.ip_id = ip_id
        self.tos = tos
        self.df = df
        self.advbase = advbase
        self.advskew = advskew
        self.authlen = authlen
        self.demote = demote
        self.counter = counter
        self.md = md
        self.priority = priority
        self.count = count
        self.addresses = addresses
        self.auth_type = auth_type
        self.auth_data = auth_data
        self.interval_cs = interval_cs
        self.reserved = reserved
        self.flow = None

    def fields(self) -> tuple:
        """Every field but the decoder's flow: what two equal adverts share."""
        return (self.frame, self.ts, self.source, self.segment, self.family, self.src, self.dst, self.ttl,
                self.protocol, self.vhid, self.version, self.type, self.checksum, self.checksum_ok,
                self.checksum_variant, self.payload_len, self.trailing, self.eth_src, self.eth_dst, self.vlans,
                self.point, self.ifindex, self.packet, self.ip_id, self.tos, self.df, self.advbase, self.advskew,
                self.authlen, self.demote, self.counter, self.md, self.priority, self.count, self.addresses,
                self.auth_type, self.auth_data, self.interval_cs, self.reserved)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Advert) and self.fields() == other.fields()

    def __hash__(self) -> int:
        return hash(self.fields())

    def __repr__(self) -> str:
        return (f"Advert(frame={self.frame}, ts={self.ts}, {self.protocol} {self.vhid} {self.src} > {self.dst}, "
                f"segment={self.segment!r})")

    @property
    def interval_s(self) -> float:
        """Nominal advertisement interval in seconds (CARP: advbase + advskew/256)."""
        if self.protocol == CARP:
            return (self.advbase or 0) + (self.advskew or 0) / 256.0
        return (self.interval_cs or 0) / 100.0


class Malformed:
    """A protocol-112 packet that is not a well-formed advertisement, with the reason."""

    __slots__ = ("frame", "ts", "source", "segment", "reason", "family", "src", "dst", "eth_src", "vlans",
                 "vhid", "version")

    frame: int
    ts: float
    source: str
    segment: str
    reason: str
    family: int | None
    src: str | None
    dst: str | None
    eth_src: str | None
    vlans: tuple[int, ...]
    vhid: int | None
    version: int | None

    def __init__(self, frame: int, ts: float, source: str, segment: str, reason: str,
                 family: int | None = None, src: str | None = None, dst: str | None = None,
                 eth_src: str | None = None, vlans: tuple[int, ...] = (), vhid: int | None = None,
                 version: int | None = None) -> None:
        self.frame = frame
        self.ts = ts
        self.source = source
        self.segment = segment
        self.reason = reason
        self.family = family
        self.src = src
        self.dst = dst
        self.eth_src = eth_src
        self.vlans = vlans
        self.vhid = vhid
        self.version = version

    def __repr__(self) -> str:
        return (f"Malformed(frame={self.frame!r}, ts={self.ts!r}, source={self.source!r}, "
                f"segment={self.segment!r}, reason={self.reason!r}, family={self.family!r}, "
                f"src={self.src!r}, dst={self.dst!r}, eth_src={self.eth_src!r}, vlans={self.vlans!r}, "
                f"vhid={self.vhid!r}, version={self.version!r})")


class AddressHint:
    """An ARP reply/gratuitous ARP or IPv6 neighbour advertisement: who claims which address."""

    __slots__ = ("frame", "ts", "source", "segment", "family", "address", "eth_src", "lladdr")

    frame: int
    ts: float
    source: str
    segment: str
    family: int
    address: str                  # the address being announced
    eth_src: str                  # Ethernet source of the frame
    lladdr: str                   # hardware address claimed for it

    def __init__(self, frame: int, ts: float, source: str, segment: str, family: int, address: str,
                 eth_src: str, lladdr: str) -> None:
        self.frame = frame
        self.ts = ts
        self.source = source
        self.segment = segment
        self.family = family
        self.address = address
        self.eth_src = eth_src
        self.lladdr = lladdr


class SourceInfo:
    __slots__ = ("name", "packets", "adverts", "malformed", "linktype", "error", "stopped_frame",
                 "stopped_offset")

    name: str
    packets: int                  # frames read (all frames where the reader counts them)
    adverts: int
    malformed: int
    linktype: str | None
    error: str | None             # why reading stopped early, None when it reached the end
    stopped_frame: int | None
    stopped_offset: int | None

    def __init__(self, name: str, packets: int = 0, adverts: int = 0, malformed: int = 0,
                 linktype: str | None = None, error: str | None = None, stopped_frame: int | None = None,
                 stopped_offset: int | None = None) -> None:
        self.name = name
        self.packets = packets
        self.adverts = adverts
        self.malformed = malformed
        self.linktype = linktype
        self.error = error
        self.stopped_frame = stopped_frame
        self.stopped_offset = stopped_offset


class Finding:
    __slots__ = ("rule", "code", "severity", "message", "protocol", "vhid", "segment", "first_seen",
                 "last_seen", "packets", "evidence", "cause", "source", "line")

    rule: str                     # slug, the stable name
    code: str
    severity: Severity
    message: str
    protocol: str | None
    vhid: int | None
    segment: str | None
    first_seen: float | None
    last_seen: float | None
    packets: list[int]
    evidence: dict
    cause: str | None
    source: str | None            # capture (or config) file the finding is located in
    line: int | None              # config findings: line number

    def __init__(self, rule: str, code: str, severity: Severity, message: str, protocol: str | None = None,
                 vhid: int | None = None, segment: str | None = None, first_seen: float | None = None,
                 last_seen: float | None = None, packets: list[int] | None = None,
                 evidence: dict | None = None, cause: str | None = None, source: str | None = None,
                 line: int | None = None) -> None:
        self.rule = rule
        self.code = code
        self.severity = severity
        self.message = message
        self.protocol = protocol
        self.vhid = vhid
        self.segment = segment
        self.first_seen = first_seen
        self.last_seen = last_seen
        self.packets = [] if packets is None else packets
        self.evidence = {} if evidence is None else evidence
        self.cause = cause
        self.source = source
        self.line = line

    def to_json(self) -> dict:
        return {
            "rule": self.rule,
            "code": self.code,
            "severity": self.severity.value,
            "protocol": self.protocol,
            "vhid": self.vhid,
            "segment": self.segment,
            "message": self.message,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "packets": list(self.packets),
            "evidence": self.evidence,
            "cause": self.cause,
            "source": self.source,
            "line": self.line,
        }
