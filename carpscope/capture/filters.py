"""Capture filters (BPF, compiled by libpcap): what a live capture asks the kernel to keep, and
the filtered frame numbering a user may ask for offline.

The filter keeps protocol-112 frames (IPv4, IPv6 through extension headers, VLAN and QinQ
tagged where the link type allows) plus ARP and IPv6 neighbour advertisements, which reveal
virtual addresses. It says in BPF what ``wire.frame.relevant`` says in Python for the offline
reader; live, the kernel applies it before a frame is copied to carpscope at all.

Filtered numbering (``--numbering filtered``): frame N is the N-th record that passes the
filter, what ``tcpdump -r FILE -w OUT FILTER`` writes, so Wireshark shows the same number on OUT.
"""
from __future__ import annotations

import socket
import sys
TYPE_CHECKING = False     # typing.TYPE_CHECKING without importing typing at run time (start-up)
if TYPE_CHECKING:
    from typing import Callable

import pcapy

from carpscope.wire.link import check_linktype, linktype_name

_P112 = "ip proto 112 or ip6 protochain 112"
_HINTS = "arp or (icmp6 and ip6[40] == 136)"
FILTERS = (
    f"{_P112} or {_HINTS} or (vlan and ({_P112} or arp or (vlan and ({_P112} or arp))))",
    f"{_P112} or {_HINTS}",
    _P112,
)
# libpcap has no "vlan" for Linux cooked captures, yet it re-inserts the 802.1Q tag of frames
# seen on a trunk (tcpdump -i any): match one tag by offset (protocol field 0x8100/0x88a8, then
# TCI, inner ethertype, IP header), or tagged adverts would be filtered out
_SLL_VLAN = ("((link[{p}:2] = 0x8100 or link[{p}:2] = 0x88a8) and ((link[{t}:2] = 0x0800 and link[{ip} + 9] = 112)"
             " or (link[{t}:2] = 0x86dd and link[{ip} + 6] = 112) or link[{t}:2] = 0x0806))")
LINK_FILTERS = {
    113: _SLL_VLAN.format(p=14, t=18, ip=20),   # LINUX_SLL: protocol at 14, header 16 bytes
    276: _SLL_VLAN.format(p=0, t=22, ip=24),    # LINUX_SLL2: protocol at 0, header 20 bytes
}
# The same for a live handle: `ip6 protochain 112` is a loop, which the kernel refuses (libpcap
# then filters every frame in user space and prints a warning) and which does not compile after
# `vlan`; it is replaced by a loop-free test: protocol 112 right after the IPv6 header or after
# one hop-by-hop, routing or destination options header.
_P6_LIVE = "(ip6 proto 112 or (ip6 and (ip6[6] == 0 or ip6[6] == 43 or ip6[6] == 60) and ip6[40] == 112))"
SNAPLEN = 262144

# pcap/pcapng files store LINKTYPE_ values; pcapy.compile wants the DLT_ value libpcap uses
# for it on this system (they differ for raw IP: LINKTYPE_RAW 101 is DLT_RAW 12 on Linux)
_LINKTYPE_TO_DLT = {101: 12}
# link types whose libpcap filter would miss adverts, so every frame is kept: Frame Relay
# filters assume RFC 2427 (Q.922 + 0x03 + NLPID) and drop Cisco-encapsulated frames; pflog
# filters assume the header length of the system libpcap was built for (FreeBSD's and
# OpenBSD's differ); libpcap has no filter for NFLOG at all. A firewall log holds only what a
# rule chose to log.
NO_BPF = {107, 117, 239}


class FilterError(Exception):
    """No filter compiles for a link type."""


def filter_texts(linktype: int) -> list[str]:
    """Candidate filters for a link type, widest first."""
    extra = LINK_FILTERS.get(linktype)
    return ([f"{t} or {extra}" for t in FILTERS] if extra else []) + list(FILTERS)


def live_filter_texts(linktype: int = 1) -> list[str]:
    """Candidate filters for a live handle of this link type, widest first."""
    base = filter_texts(linktype)
    out = [f.replace("ip6 protochain 112", _P6_LIVE) for f in base] + base
    return list(dict.fromkeys(out))


def compile_filter(linktype: int) -> tuple[str, object]:
    """The widest filter libpcap accepts for this link type, as (text, BPFProgram)."""
    last = None
    dlt = _LINKTYPE_TO_DLT.get(linktype, linktype)
    for text in filter_texts(dlt):
        try:
            return text, pcapy.compile(dlt, SNAPLEN, text, 1, 0)
        except pcapy.PcapError as e:
            last = e
    raise FilterError(f"cannot build a capture filter for link type {linktype_name(linktype)}: {last}")


# DLT_NULL / DLT_LOOP: a 32-bit address family, then IP. libpcap compiles "ip" / "ip6" for a
# savefile as AF 2 / any BSD AF_INET6 (24, 28, 30), read in the file's byte order (LOOP: network
# order); pcapy.compile, with no file, as this host's AF_INET / AF_INET6 (2 / 10 on Linux) in
# host order (LOOP: network order). The filter runs on a copy whose family word is rewritten
# to what the compiled program expects, so it passes the frames libpcap passes.
_AF_LINKTYPES = {0, 108}
_AF_AS_COMPILED = {2: socket.AF_INET, 24: socket.AF_INET6, 28: socket.AF_INET6, 30: socket.AF_INET6}


def _as_compiled(linktype: int, data: bytes, little: bool) -> bytes:
    if len(data) < 4:
        return data
    word_in = int.from_bytes(data[:4], "big") if linktype == 108 or not little else int.from_bytes(data[:4], "little")
    af = _AF_AS_COMPILED.get(word_in, 0xFFFFFFFF)
    word = af.to_bytes(4, "big" if linktype == 108 else sys.byteorder)
    return word + data[4:]


class Numbering:
    """The filtered numbering's test of one record: ``keep(linktype, data, little)``.

    Records of a link type carpscope cannot decode are never kept; a link type without a usable
    filter keeps every record. ``text`` is the filter of the last link type compiled.
    """

    def __init__(self) -> None:
        self.text: str | None = None
        self._programs: dict[int, object] = {}

    def _program(self, lt: int) -> object:
        """False: not decodable; None: no filter (every frame); else the BPFProgram."""
        if lt in self._programs:
            return self._programs[lt]
        prog: object
        try:
            check_linktype(lt)
        except ValueError:
            prog = False
        else:
            prog = None
            if lt not in NO_BPF:
                try:
                    self.text, prog = compile_filter(lt)
                except FilterError:
                    prog = None
        self._programs[lt] = prog
        return prog

    def keep(self, lt: int, data: bytes, little: bool) -> bool:
        prog = self._program(lt)
        if prog is False:
            return False
        if prog is None:
            return True
        frame = _as_compiled(lt, data, little) if lt in _AF_LINKTYPES else data
        return prog.filter(frame) != 0     # type: ignore[attr-defined]


def keep_function() -> tuple[Numbering, Callable[[int, bytes, bool], bool]]:
    n = Numbering()
    return n, n.keep
