"""Building frames and capture files: IPv4/IPv6 around a protocol-112 payload, link headers,
and pcap / pcapng writers. Used by tests, the demo and the benchmark, and by sniff for the files
it writes (--write, --evidence); never by analysis.
"""
from __future__ import annotations

import hashlib
import hmac
import struct
from ipaddress import ip_address
from socket import AF_INET, AF_INET6, inet_pton

from carpscope.wire import checksum as ck
from carpscope.wire import proto112

MCAST4, MCAST6 = "224.0.0.18", "ff02::12"


def mac_bytes(m: str) -> bytes:
    return bytes.fromhex(m.replace(":", ""))


def vmac(vhid: int, family: int = 4, ucarp: bool = False) -> str:
    """The virtual MAC a speaker of this id sends from (ucarp uses 00:00:5e:00:00:NN)."""
    block = 0 if ucarp else (1 if family == 4 else 2)
    return f"00:00:5e:00:{block:02x}:{vhid:02x}"


def ip4(src: str, dst: str, payload: bytes, ttl: int = 255, proto: int = 112, tos: int = 0xE0,
        ident: int = 0) -> bytes:
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, tos, 20 + len(payload), ident, 0x4000, ttl, proto, 0,
                      inet_pton(AF_INET, src), inet_pton(AF_INET, dst))
    return hdr[:10] + struct.pack("!H", ck.checksum(hdr)) + hdr[12:] + payload


def ip6(src: str, dst: str, payload: bytes, hlim: int = 255, nxt: int = 112, ext: bytes = b"",
        ext_nxt: int | None = None) -> bytes:
    """IPv6 header; ``ext`` (already-encoded extension headers) sits before the payload."""
    first = ext_nxt if ext else nxt
    return struct.pack("!IHBB16s16s", 0x60000000, len(ext) + len(payload), first, hlim,
                       inet_pton(AF_INET6, src), inet_pton(AF_INET6, dst)) + ext + payload


def ether(src: str, dst: str, ethertype: int, payload: bytes, vlans: tuple[int, ...] = (),
          pad_to: int = 60) -> bytes:
    tags = b""
    for i, v in enumerate(vlans):
        tpid = 0x88A8 if (len(vlans) > 1 and i == 0) else 0x8100
        tags += struct.pack("!HH", tpid, v)
    frame = mac_bytes(dst) + mac_bytes(src) + tags + struct.pack("!H", ethertype) + payload
    return frame.ljust(pad_to, b"\0")


def sll(src: str, ethertype: int, payload: bytes, pkttype: int = 0) -> bytes:
    return struct.pack("!HHH8sH", pkttype, 1, 6, mac_bytes(src).ljust(8, b"\0"), ethertype) + payload


def sll2(src: str, ethertype: int, payload: bytes, ifindex: int = 2, pkttype: int = 0) -> bytes:
    return struct.pack("!HHIHBB8s", ethertype, 0, ifindex, 1, pkttype, 6, mac_bytes(src).ljust(8, b"\0")) + payload


def carp_md(key: bytes, vhid: int, vips4: list[str], counter: bytes, vips6: list[str] = ()) -> bytes:
    """Reference CARP HMAC (FreeBSD recipe) for building test traffic: plain stdlib hmac."""
    a4 = b"".join(sorted({inet_pton(AF_INET, a) for a in vips4}))
    a6 = set()
    for a in vips6:
        b = bytearray(inet_pton(AF_INET6, a))
        if ip_address(a).is_link_local:
            b[2:4] = b"\0\0"
        a6.add(bytes(b))
    msg = bytes([2, 1, vhid]) + a4 + b"".join(sorted(a6)) + counter
    return hmac.new(key, msg, hashlib.sha1).digest()


def bsd_key(passphrase: str) -> bytes:
    return passphrase.encode()[:19].ljust(20, b"\0")


def carp_frame(src: str, vhid: int, *, advbase: int = 1, advskew: int = 0, counter: int = 1,
               passphrase: str | None = "", vips: list[str] = (), dst: str | None = None,
               ttl: int = 255, eth_src: str | None = None, vlans: tuple[int, ...] = (),
               demote: int = 0, bad_checksum: bool = False, md: bytes | None = None,
               authlen: int = 7, version: int = 2, type_: int = 1) -> bytes:
    """A complete Ethernet frame carrying a CARP advert signed like a BSD kernel would."""
    family = 6 if ":" in src else 4
    cnt = counter.to_bytes(8, "big")
    if md is None:
        key = bsd_key(passphrase or "")
        v4 = [a for a in vips if ":" not in a]
        v6 = [a for a in vips if ":" in a]
        md = carp_md(key, vhid, v4, cnt, v6)
    payload = proto112.encode_carp(vhid, advbase, advskew, cnt, md, demote=demote,
                                   bad_checksum=bad_checksum, authlen=authlen, version=version, type_=type_)
    if family == 4:
        ip = ip4(src, dst or MCAST4, payload, ttl)
        return ether(eth_src or vmac(vhid), "01:00:5e:00:00:12", 0x0800, ip, vlans)
    ip = ip6(src, dst or MCAST6, payload, ttl)
    return ether(eth_src or vmac(vhid), "33:33:00:00:00:12", 0x86DD, ip, vlans)


def vrrp_frame(src: str, vrid: int, priority: int, addresses: list[str], *, version: int = 2,
               interval_cs: int = 100, auth_type: int = 0, auth_data: bytes = b"", ttl: int = 255,
               dst: str | None = None, eth_src: str | None = None, vlans: tuple[int, ...] = (),
               variant: str = "pseudo") -> bytes:
    family = 6 if ":" in src else 4
    dst = dst or (MCAST4 if family == 4 else MCAST6)
    if version == 2:
        payload = proto112.encode_vrrp2(vrid, priority, addresses, interval_cs // 100, auth_type, auth_data,
                                        bad_checksum=(variant == "bad"))
    else:
        af = AF_INET if family == 4 else AF_INET6
        payload = proto112.encode_vrrp3(vrid, priority, addresses, interval_cs, family=family,
                                        src=inet_pton(af, src), dst=inet_pton(af, dst), variant=variant)
    if family == 4:
        return ether(eth_src or vmac(vrid), "01:00:5e:00:00:12", 0x0800, ip4(src, dst, payload, ttl, tos=0xC0), vlans)
    return ether(eth_src or vmac(vrid, 6), "33:33:00:00:00:12", 0x86DD, ip6(src, dst, payload, ttl), vlans)


def garp_frame(eth_src: str, address: str, lladdr: str | None = None) -> bytes:
    """A gratuitous ARP request announcing ``address`` at ``lladdr`` (default: the frame source)."""
    ha = mac_bytes(lladdr or eth_src)
    pa = inet_pton(AF_INET, address)
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, ha, pa, b"\0" * 6, pa)
    return ether(eth_src, "ff:ff:ff:ff:ff:ff", 0x0806, arp)


def other_frame(size: int = 590, proto: int = 6) -> bytes:
    """Background traffic (TCP by default) that the protocol-112 filter must skip."""
    ip = ip4("10.9.8.7", "10.9.8.6", bytes(max(0, size - 34)), ttl=64, proto=proto, tos=0)
    return ether("02:00:00:00:00:01", "02:00:00:00:00:02", 0x0800, ip)


class PcapWriter:
    """Classic pcap (microsecond) writer; streams records, never holds the file in memory."""

    def __init__(self, f, linktype: int = 1, snaplen: int = 262144, nanosecond: bool = False):
        self.f, self.nano = f, nanosecond
        magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
        f.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))

    def write(self, ts: float, data: bytes, orig_len: int | None = None) -> None:
        sec = int(ts)
        frac = round((ts - sec) * (1e9 if self.nano else 1e6))
        self.f.write(struct.pack("<IIII", sec, frac, len(data), orig_len or len(data)) + data)


class PcapngWriter:
    """Minimal pcapng writer: one section, any number of interfaces, enhanced packet blocks
    (microsecond time stamps, the format's default resolution); optional comment on the
    section and name on each interface (what capinfos and Wireshark show)."""

    def __init__(self, f, comment: str | None = None):
        self.f = f
        self.ifaces = 0
        self._offsets: list[int] = []
        self._block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + _options({1: comment}))

    def _block(self, btype: int, body: bytes) -> None:
        body = body + b"\0" * (-len(body) % 4)
        n = len(body) + 12
        self.f.write(struct.pack("<II", btype, n) + body + struct.pack("<I", n))

    def add_interface(self, linktype: int = 1, snaplen: int = 262144, name: str | None = None,
                      tsoffset: int = 0) -> int:
        """A new interface; ``tsoffset`` (if_tsoffset): seconds the reader adds to its packets'
        time stamps, which ``write`` takes off the times it is given."""
        opts = _options({2: name})
        if tsoffset:
            opts = opts[:-4] if opts else b""
            opts += struct.pack("<HHq", 14, 8, tsoffset) + b"\0\0\0\0"
        self._block(1, struct.pack("<HHI", linktype, 0, snaplen) + opts)
        self._offsets.append(tsoffset)
        self.ifaces += 1
        return self.ifaces - 1

    def write(self, ts: float, data: bytes, iface: int = 0, orig_len: int | None = None) -> None:
        t = round((ts - self._offsets[iface]) * 1e6)
        body = struct.pack("<IIIII", iface, t >> 32, t & 0xFFFFFFFF, len(data), orig_len or len(data)) + data
        self._block(6, body)


def _options(opts: dict[int, str | None]) -> bytes:
    """pcapng options (UTF-8 strings), each padded to 32 bits, then opt_endofopt; b"" for none."""
    out = b""
    for code, text in opts.items():
        if text:
            v = text.encode("utf-8")[:0xFFFF]
            out += struct.pack("<HH", code, len(v)) + v + b"\0" * (-len(v) % 4)
    return out + b"\0\0\0\0" if out else b""
