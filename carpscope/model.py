"""Plain records passed between the pipeline stages (decode -> verify -> track -> rules -> report).

Nothing here prints or does I/O. Records are small slotted dataclasses so that a capture of
millions of adverts streams through without building large objects.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

CARP = "carp"
VRRP2 = "vrrp2"
VRRP3 = "vrrp3"
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


@dataclass(slots=True)
class Advert:
    """One decoded CARP/VRRP advertisement with the IP and link facts around it.

    ``frame`` is the 1-based number of the packet in its source (Wireshark's frame.number when
    the source counts every frame, see capture.py). CARP-only fields are None for VRRP and the
    other way round.
    """

    frame: int
    ts: float
    source: str
    segment: str
    protocol: str                 # carp | vrrp2 | vrrp3
    family: int                   # 4 | 6
    src: str
    dst: str
    ttl: int
    vhid: int
    version: int
    type: int
    checksum: int
    checksum_ok: bool
    checksum_variant: str         # plain | pseudo | none | pseudo-224 | bad
    payload_len: int
    trailing: int = 0             # bytes after the advert inside the IP payload
    eth_src: str | None = None
    eth_dst: str | None = None
    vlans: tuple[int, ...] = ()
    # CARP
    advbase: int | None = None
    advskew: int | None = None
    authlen: int | None = None
    demote: int | None = None     # byte 4: FreeBSD/ucarp pad, OpenBSD demote count
    counter: bytes | None = None  # 8 bytes as on the wire
    md: bytes | None = None       # 20-byte HMAC-SHA1
    # VRRP
    priority: int | None = None
    count: int | None = None
    addresses: tuple[str, ...] = ()
    auth_type: int | None = None  # VRRPv2 only
    auth_data: bytes | None = None
    interval_cs: int | None = None  # v2: adver_int*100, v3: the 12-bit field
    reserved: int | None = None     # VRRPv3 reserved nibble

    @property
    def interval_s(self) -> float:
        """Nominal advertisement interval in seconds (CARP: advbase + advskew/256)."""
        if self.protocol == CARP:
            return (self.advbase or 0) + (self.advskew or 0) / 256.0
        return (self.interval_cs or 0) / 100.0


@dataclass(slots=True)
class Malformed:
    """A protocol-112 packet that is not a well-formed advertisement, with the reason."""

    frame: int
    ts: float
    source: str
    segment: str
    reason: str
    family: int | None = None
    src: str | None = None
    dst: str | None = None
    eth_src: str | None = None
    vlans: tuple[int, ...] = ()
    vhid: int | None = None
    version: int | None = None


@dataclass(slots=True)
class AddressHint:
    """An ARP reply/gratuitous ARP or IPv6 neighbour advertisement: who claims which address."""

    frame: int
    ts: float
    source: str
    segment: str
    family: int
    address: str                  # the address being announced
    eth_src: str                  # Ethernet source of the frame
    lladdr: str                   # hardware address claimed for it


@dataclass(slots=True)
class SourceInfo:
    name: str
    packets: int = 0              # frames read (all frames where the reader counts them)
    adverts: int = 0
    malformed: int = 0
    linktype: str | None = None
    error: str | None = None      # why reading stopped early, None when it reached the end
    stopped_frame: int | None = None
    stopped_offset: int | None = None


@dataclass(slots=True)
class Finding:
    rule: str                     # slug, the stable name
    code: str
    severity: Severity
    message: str
    protocol: str | None = None
    vhid: int | None = None
    segment: str | None = None
    first_seen: float | None = None
    last_seen: float | None = None
    packets: list[int] = field(default_factory=list)
    evidence: dict = field(default_factory=dict)
    cause: str | None = None
    source: str | None = None     # capture (or config) file the finding is located in
    line: int | None = None       # config findings: line number

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
