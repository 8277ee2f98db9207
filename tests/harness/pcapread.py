"""Read a lab recording back: the protocol-112 adverts on an Ethernet pcap.

Independent of carpscope on purpose (the harness checks its own ground truth): dpkt reads
the file, the headers are parsed here with struct. Classification follows protocol.md §3.2.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import struct
from collections import defaultdict
from dataclasses import dataclass, field

import dpkt

ETH_IPV4, ETH_IPV6, ETH_VLAN = 0x0800, 0x86DD, 0x8100
PROTO_CARP_VRRP = 112
DLT_LINUX_SLL2 = 276      # tcpdump -i any: 20-byte cooked header, then the network layer


@dataclass(frozen=True)
class Advert:
    index: int            # 1-based frame number
    ts: float
    src_mac: str
    dst_mac: str
    family: int
    src: str
    dst: str
    ttl: int
    kind: str             # carp | vrrp2 | vrrp3 | unknown
    vhid: int
    advbase: int | None = None      # CARP
    advskew: int | None = None      # CARP
    priority: int | None = None     # VRRP
    interval_cs: int | None = None  # VRRP (v2 seconds * 100)
    checksum_ok: bool | None = None
    checksum_form: str | None = None  # VRRPv3: pseudo | no-pseudo
    auth_type: int | None = None    # VRRPv2
    payload: bytes = field(default=b"", repr=False, compare=False)
    ifindex: int | None = None      # Linux cooked v2: the interface it was recorded on

    @property
    def ident(self) -> str:
        return f"{'carp' if self.kind == 'carp' else 'vrrp'}:{self.vhid}"


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def inet_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def classify(payload: bytes, family: int) -> str:
    if len(payload) < 8:
        return "unknown"
    version = payload[0] >> 4
    if version == 3:
        return "vrrp3"
    if version == 2 and family == 6:
        return "carp"
    if version == 2 and len(payload) == 36 and payload[3] == 7:
        return "carp"
    if version == 2 and len(payload) == 16 + 4 * payload[3]:
        return "vrrp2"
    return "unknown"


def _pseudo(src: bytes, dst: bytes, length: int) -> bytes:
    if len(src) == 4:
        return src + dst + struct.pack("!BBH", 0, PROTO_CARP_VRRP, length)
    return src + dst + struct.pack("!IxxxB", length, PROTO_CARP_VRRP)


def _fields(payload: bytes, kind: str, src: bytes, dst: bytes) -> dict:
    f: dict = {"vhid": payload[1]}
    if kind == "carp":
        f.update(advskew=payload[2], advbase=payload[5], checksum_ok=inet_checksum(payload) == 0)
    elif kind == "vrrp2":
        f.update(priority=payload[2], interval_cs=payload[5] * 100, checksum_ok=inet_checksum(payload) == 0,
                 auth_type=payload[4])
    elif kind == "vrrp3":
        f.update(priority=payload[2], interval_cs=struct.unpack("!H", payload[4:6])[0] & 0x0FFF)
        if inet_checksum(_pseudo(src, dst, len(payload)) + payload) == 0:
            f.update(checksum_ok=True, checksum_form="pseudo")
        elif inet_checksum(payload) == 0:
            f.update(checksum_ok=True, checksum_form="no-pseudo")
        else:
            f.update(checksum_ok=False)
    return f


def _ip_payload(frame: bytes, off: int = 14, etype: int | None = None
                ) -> tuple[int, bytes, bytes, int, bytes] | None:
    """(family, src, dst, ttl, proto-112 payload) of an Ethernet frame (or of the network layer
    at `off` with ether type `etype`), or None."""
    if etype is None:
        etype = struct.unpack("!H", frame[12:14])[0] if len(frame) >= 14 else 0
    while etype == ETH_VLAN and len(frame) >= off + 4:
        etype, off = struct.unpack("!H", frame[off + 2:off + 4])[0], off + 4
    ip = frame[off:]
    if etype == ETH_IPV4 and len(ip) >= 20 and ip[9] == PROTO_CARP_VRRP:
        ihl, total = (ip[0] & 0x0F) * 4, struct.unpack("!H", ip[2:4])[0]
        return 4, ip[12:16], ip[16:20], ip[8], ip[ihl:total]
    if etype == ETH_IPV6 and len(ip) >= 40 and ip[6] == PROTO_CARP_VRRP:
        plen = struct.unpack("!H", ip[4:6])[0]
        return 6, ip[8:24], ip[24:40], ip[7], ip[40:40 + plen]
    return None


def _link(frame: bytes, dlt: int) -> tuple[int, int | None, str, str, int | None]:
    """(network offset, ether type, source MAC, destination MAC, ifindex) of a frame."""
    if dlt == DLT_LINUX_SLL2:
        if len(frame) < 20:
            return 0, 0, "", "", None
        etype, ifindex = struct.unpack("!H2xI", frame[0:8])
        return 20, etype, _mac(frame[12:12 + min(frame[11], 6)]), "", ifindex
    return 14, None, _mac(frame[6:12]), _mac(frame[0:6]), None


def read_adverts(path) -> list[Advert]:
    """Every protocol-112 packet of an Ethernet or Linux-cooked-v2 pcap, decoded."""
    out = []
    with open(path, "rb") as fh:
        reader = dpkt.pcap.Reader(fh)
        dlt = reader.datalink()
        if dlt not in (dpkt.pcap.DLT_EN10MB, DLT_LINUX_SLL2):
            raise ValueError(f"{path}: link type {dlt}, expected Ethernet or Linux cooked v2")
        for index, (ts, frame) in enumerate(reader, start=1):
            off, etype, src_mac, dst_mac, ifindex = _link(frame, dlt)
            parsed = _ip_payload(frame, off, etype)
            if parsed is None:
                continue
            family, src, dst, ttl, payload = parsed
            kind = classify(payload, family)
            fields = _fields(payload, kind, src, dst) if kind != "unknown" else {"vhid": -1}
            out.append(Advert(index=index, ts=float(ts), src_mac=src_mac, dst_mac=dst_mac,
                              family=family, src=str(ipaddress.ip_address(src)),
                              dst=str(ipaddress.ip_address(dst)), ttl=ttl, kind=kind, payload=payload,
                              ifindex=ifindex, **fields))
    return out


def ucarp_hmac_ok(a: Advert, passphrase: str, vip: str) -> bool:
    """ucarp's CARP HMAC (lab README, verified recipe): HMAC-SHA1(key=passphrase,
    version 2 | type 1 | vhid | VIP (4 bytes) | counter (8 bytes as on the wire)) == bytes 16..35."""
    p = a.payload
    msg = bytes([2, 1, p[1]]) + ipaddress.IPv4Address(vip).packed + p[8:16]
    return hmac.compare_digest(hmac.new(passphrase.encode(), msg, hashlib.sha1).digest(), p[16:36])


def vrrp2_password(a: Advert) -> str | None:
    """The simple-text password of a VRRPv2 advert (auth type 1), without NUL padding."""
    if a.kind != "vrrp2" or a.auth_type != 1:
        return None
    return a.payload[-8:].rstrip(b"\0").decode(errors="replace")


def count_frames(path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for _ in dpkt.pcap.Reader(fh))


def summarize(adverts: list[Advert], t0: float, end: float, window: float) -> dict:
    """Per group (carp:7 / vrrp:51): speakers with counts, timing, TTL, MACs; the advertisers
    in the final `window` seconds before `end` (epoch)."""
    groups: dict[str, dict] = defaultdict(lambda: {"speakers": {}, "final_advertisers": []})
    for a in adverts:
        if a.kind == "unknown":
            continue
        sp = groups[a.ident]["speakers"].setdefault(a.src, {
            "kind": a.kind, "adverts": 0, "first_t_s": round(a.ts - t0, 3), "ttl": [], "src_mac": [],
            "params": [], "checksum_ok": True, "checksum_form": []})
        sp["adverts"] += 1
        sp["last_t_s"] = round(a.ts - t0, 3)
        _add(sp["ttl"], a.ttl)
        _add(sp["src_mac"], a.src_mac)
        _add(sp["params"], _params(a))
        sp["checksum_ok"] = sp["checksum_ok"] and bool(a.checksum_ok)
        if a.checksum_form:
            _add(sp["checksum_form"], a.checksum_form)
        if a.ts >= end - window and a.src not in groups[a.ident]["final_advertisers"]:
            groups[a.ident]["final_advertisers"].append(a.src)
    for g in groups.values():
        for sp in g["speakers"].values():
            if not sp["checksum_form"]:
                del sp["checksum_form"]
        g["final_advertisers"].sort(key=_ip_key)
    return dict(sorted(groups.items()))


def _params(a: Advert) -> dict:
    if a.kind == "carp":
        return {"advbase": a.advbase, "advskew": a.advskew}
    if a.kind == "vrrp2":
        return {"priority": a.priority, "interval_cs": a.interval_cs, "auth_type": a.auth_type}
    return {"priority": a.priority, "interval_cs": a.interval_cs}


def _add(seq: list, item) -> None:
    if item not in seq:
        seq.append(item)


def _ip_key(ip: str):
    a = ipaddress.ip_address(ip)
    return (a.version, int(a))


@dataclass(frozen=True)
class Arp:
    index: int
    ts: float
    src_mac: str          # link-layer source
    op: int               # 1 request, 2 reply
    sender_mac: str
    sender_ip: str
    target_ip: str
    ifindex: int | None = None

    @property
    def gratuitous(self) -> bool:
        """An announcement: the sender's address is also the target (request or reply)."""
        return self.sender_ip == self.target_ip


def read_arps(path) -> list[Arp]:
    """Every Ethernet/IPv4 ARP packet of an Ethernet or Linux-cooked-v2 pcap."""
    out = []
    with open(path, "rb") as fh:
        reader = dpkt.pcap.Reader(fh)
        dlt = reader.datalink()
        for index, (ts, frame) in enumerate(reader, start=1):
            off, etype, src_mac, _dst, ifindex = _link(frame, dlt)
            if etype is None:
                etype = struct.unpack("!H", frame[12:14])[0] if len(frame) >= 14 else 0
            arp = frame[off:off + 28]
            if etype != 0x0806 or len(arp) < 28 or arp[0:6] != b"\x00\x01\x08\x00\x06\x04":
                continue
            out.append(Arp(index=index, ts=float(ts), src_mac=src_mac, op=arp[7],
                           sender_mac=_mac(arp[8:14]), sender_ip=str(ipaddress.IPv4Address(arp[14:18])),
                           target_ip=str(ipaddress.IPv4Address(arp[24:28])), ifindex=ifindex))
    return out
