"""Rules judged on each advertisement alone, folded into one finding per rule, group and speaker.

A capture of a misbehaving pair holds thousands of identical problems; the operator wants one
line per cause with a count, the time span and a few packet numbers to open in Wireshark.
"""
from __future__ import annotations

TYPE_CHECKING = False     # typing.TYPE_CHECKING without importing typing at run time (start-up)
if TYPE_CHECKING:
    from typing import Callable, Final

from carpscope.model import CARP, VRRP2, VRRP3, Advert, Finding, Malformed, protocol_name
from carpscope.rules import ERROR, INFO, WARNING, Rule, declare

MALFORMED = declare("malformed", "CS101", WARNING,
                    "Protocol-112 packet that is not a well-formed advertisement", __name__)
BAD_CHECKSUM = declare("bad-checksum", "CS103", ERROR,
                       "Advertisement with a wrong checksum (receivers drop it)", __name__)
BAD_TTL = declare("bad-ttl", "CS104", ERROR,
                  "Advertisement with TTL/hop limit below 255 (receivers drop it)", __name__)
VRRP3_LEGACY_CHECKSUM = declare("vrrp3-legacy-checksum", "CS105", INFO,
                                "VRRPv3/IPv4 checksum computed without the pseudo-header, or with 224.0.0.18", __name__)
NONSTANDARD_FIELD = declare("nonstandard-field", "CS106", WARNING,
                            "A header field outside the values the standard or implementations send", __name__)
UNEXPECTED_SOURCE_MAC = declare("unexpected-source-mac", "CS107", INFO,
                                "Advertisement not sent from the virtual MAC of its group", __name__)
BOW_OUT = declare("bow-out", "CS206", INFO,
                  "A master bowed out (advbase = advskew = 255)", __name__)
DEMOTED = declare("demoted", "CS205", WARNING,
                  "A speaker advertises a demoted skew or demote count", __name__)

SAMPLE = 10
MAX_KEYS = 4096


def _is_multicast(dst: str) -> bool:
    return dst.startswith("224.") or dst.lower().startswith("ff")


def _vmac(block: int, v: int) -> str:
    return f"00:00:5e:00:{block:02x}:{v:02x}"


# the source MACs each kind of advert is expected from, per VHID (built once: this is asked of
# every advert): CARP from the kernels' 00:00:5e:00:01:vhid or ucarp's 00:00:5e:00:00:vhid, VRRP
# from the IPv4 or IPv6 virtual router MAC
_EXPECTED: Final[tuple[tuple[tuple[str, ...], ...], ...]] = (
    tuple((_vmac(1, v), _vmac(0, v)) for v in range(256)),
    tuple((_vmac(1, v),) for v in range(256)),
    tuple((_vmac(2, v),) for v in range(256)),
)


def expected_macs(a: Advert) -> tuple[str, ...]:
    return _EXPECTED[0 if a.protocol == CARP else 1 if a.family == 4 else 2][a.vhid]


def _where(a: Advert) -> dict:
    """Where a finding about ``a`` is located (built only when a rule fires)."""
    return dict(protocol=a.protocol, vhid=a.vhid, segment=a.segment, source=a.source)


def _odd_mac(a: Advert) -> bool:
    """A source MAC worth a note: another id's or family's virtual MAC, or (CARP) a real MAC.

    keepalived sends VRRP from the interface's real MAC unless use_vmac is set (its default), and
    FreeBSD unicast CARP does too: those are normal and not flagged.
    """
    mac = a.eth_src or ""            # the decoder writes MACs in lower case
    if mac in expected_macs(a):
        return False
    if mac.startswith("00:00:5e:00:0"):
        return True
    return a.protocol == CARP


class _Fold:
    __slots__ = ("finding", "count")

    def __init__(self, f: Finding) -> None:
        self.finding, self.count = f, 0


class PacketRules:
    """Per-advert rules, folded into one finding per (rule, speaker, detail): bounded by
    MAX_KEYS whatever the capture holds (a flood of spoofed sources or ids)."""

    def __init__(self) -> None:
        self._folds: dict[tuple, _Fold] = {}
        self.dropped = 0
        self.hits = 0

    def _hit(self, rule: Rule, key: tuple, ts: float, frame: int, build: Callable[[], Finding]) -> None:
        self.hits += 1
        k = (rule.slug,) + key
        fold = self._folds.get(k)
        if fold is None:
            if len(self._folds) >= MAX_KEYS:
                self.dropped += 1
                return
            fold = self._folds[k] = _Fold(build())
            fold.finding.first_seen = ts
        fold.count += 1
        f = fold.finding
        f.last_seen = ts
        if len(f.packets) < SAMPLE:
            f.packets.append(frame)

    def advert(self, a: Advert) -> bool:
        """Judge one advert; True when no rule fired on it. (The checks are inline and each
        finding is built in a method of its own: this runs for every advert, and a nested
        function here would cost an allocation per advert.)"""
        before = self.hits
        if not a.checksum_ok:
            self._bad_checksum(a)
        if a.ttl != 255:
            self._bad_ttl(a)
        if a.protocol == VRRP3 and a.family == 4 and a.checksum_variant in ("none", "pseudo-224"):
            self._legacy_checksum(a)
        odd = self._odd_fields(a)
        if odd:
            self._nonstandard(a, odd)
        if a.eth_src and _is_multicast(a.dst) and _odd_mac(a):
            self._source_mac(a)
        if a.protocol == CARP and ((a.advbase == 255 and a.advskew == 255) or a.advskew == 240 or (a.demote or 0) > 0):
            self._carp(a, (a.segment, a.protocol, a.vhid, a.src))
        return self.hits == before

    def _bad_checksum(self, a: Advert) -> None:
        self._hit(BAD_CHECKSUM, (a.segment, a.protocol, a.vhid, a.src), a.ts, a.frame, lambda: BAD_CHECKSUM.finding(
            f"{protocol_name(a.protocol)} {a.vhid} from {a.src}: checksum 0x{a.checksum:04x} does not "
            "verify; every receiver drops these adverts", evidence={"speaker": a.src, "checksum": f"0x{a.checksum:04x}"},
            cause="corruption", **_where(a)))

    def _bad_ttl(self, a: Advert) -> None:
        uni = not _is_multicast(a.dst)
        note = (" Sent unicast: FreeBSD skips the TTL check for unicast peers, OpenBSD, ucarp and "
                "VRRP multicast receivers do not." if uni else
                " Receivers (FreeBSD, OpenBSD, ucarp, keepalived, RFC 3768/5798) drop it: the sender "
                "will not be heard and may be elected master beside the real one.")
        self._hit(BAD_TTL, (a.segment, a.protocol, a.vhid, a.src, a.ttl), a.ts, a.frame, lambda: BAD_TTL.finding(
            f"{protocol_name(a.protocol)} {a.vhid} from {a.src} arrives with "
            f"{'TTL' if a.family == 4 else 'hop limit'} {a.ttl}, not 255.{note} Likely a routed hop, "
            "a relay or a NAT/firewall rewriting TTL.",
            evidence={"speaker": a.src, "ttl": a.ttl, "destination": a.dst}, cause="ttl", **_where(a)))

    def _legacy_checksum(self, a: Advert) -> None:
        how = ("without the IPv4 pseudo-header (RFC 9568 / Cisco / Juniper style)" if a.checksum_variant == "none"
               else "with 224.0.0.18 in the pseudo-header although sent unicast (keepalived <= 1.3.6)")
        self._hit(VRRP3_LEGACY_CHECKSUM, (a.segment, a.protocol, a.vhid, a.src, a.checksum_variant), a.ts, a.frame,
                  lambda: VRRP3_LEGACY_CHECKSUM.finding(
                      f"VRRPv3 {a.vhid} from {a.src}: checksum computed {how}; peers using "
                      "the other convention drop these adverts (keepalived: v3_checksum_as_v2)",
                      evidence={"speaker": a.src, "variant": a.checksum_variant}, **_where(a)))

    def _nonstandard(self, a: Advert, odd: list[tuple[str, object, str]]) -> None:
        for field_, value, why in odd:
            self._hit(NONSTANDARD_FIELD, (a.segment, a.protocol, a.vhid, a.src, field_, value), a.ts, a.frame,
                      lambda: NONSTANDARD_FIELD.finding(
                          f"{protocol_name(a.protocol)} {a.vhid} from {a.src}: {field_} = {value}: {why}",
                          evidence={"speaker": a.src, "field": field_, "value": value}, **_where(a)))

    def _source_mac(self, a: Advert) -> None:
        exp = expected_macs(a)[0]
        self._hit(UNEXPECTED_SOURCE_MAC, (a.segment, a.protocol, a.vhid, a.src, a.eth_src), a.ts, a.frame,
                  lambda: UNEXPECTED_SOURCE_MAC.finding(
                      f"{protocol_name(a.protocol)} {a.vhid} from {a.src} sent from MAC {a.eth_src}, not "
                      f"the virtual MAC {exp}" + self._mac_hint(a),
                      evidence={"speaker": a.src, "mac": a.eth_src, "expected": exp}, **_where(a)))

    @staticmethod
    def _mac_hint(a: Advert) -> str:
        if a.protocol != CARP and a.family == 6 and a.eth_src == f"00:00:5e:00:01:{a.vhid:02x}":
            return " (the IPv4 block: FreeBSD carpver 3 does this; RFC 5798 §7.3 says 00:00:5e:00:02:NN for IPv6)"
        return (": switches learn the virtual address from adverts; a real MAC here means the virtual MAC "
                "is not in use (unicast mode, use_vmac off) or the frame was rewritten on the way")

    @staticmethod
    def _odd_fields(a: Advert) -> list[tuple[str, object, str]]:
        out: list[tuple[str, object, str]] = []
        if a.type != 1:
            out.append(("type", a.type, "only 1 (advertisement) is defined; RFC 3768/5798 receivers discard other types"))
        if a.vhid == 0:
            out.append(("vhid", 0, "0 is not a valid VHID/VRID (FreeBSD uses it only for loop detection)"))
        if a.trailing > 0:
            out.append(("trailing bytes", a.trailing, "the payload is longer than the header and addresses"))
        if a.protocol == CARP:
            if a.authlen != 7:
                out.append(("authlen", a.authlen, "CARP senders always put 7; receivers ignore it"))
            if a.advbase == 0 and a.advskew == 0:
                out.append(("advbase/advskew", "0/0", "OpenBSD then advertises every 1/256 s"))
        elif a.protocol == VRRP2:
            if a.auth_type not in (0, 1, 2):
                out.append(("auth type", a.auth_type, "RFC 3768 knows 0 (and 1, 2 from RFC 2338)"))
            if a.count == 0:
                out.append(("address count", 0, "an advert without addresses"))
            if a.interval_cs == 0:
                out.append(("advertisement interval", 0, "0 s interval"))
        else:
            if a.reserved:
                out.append(("reserved bits", a.reserved, "must be zero on transmit (RFC 5798 §5.2.5)"))
            if a.interval_cs == 0:
                out.append(("max advertisement interval", 0, "must be non-zero (RFC 9568 erratum 8301)"))
            if a.count == 0:
                out.append(("address count", 0, "an advert without addresses (RFC 9568 erratum 8299: ignored)"))
            if a.family == 6 and a.addresses and not a.addresses[0].lower().startswith("fe80"):
                out.append(("first address", a.addresses[0], "RFC 5798 §5.2.9: for IPv6 the first address must be the link-local"))
        return out

    def _carp(self, a: Advert, spk: tuple) -> None:
        if a.advbase == 255 and a.advskew == 255:
            self._hit(BOW_OUT, spk, a.ts, a.frame, lambda: BOW_OUT.finding(
                f"CARP {a.vhid}: {a.src} bowed out (advbase = advskew = 255): an OpenBSD (or FreeBSD <= 9) "
                "master whose carp interface went down; a backup takes over at once",
                evidence={"speaker": a.src}, **_where(a)))
        elif a.advskew == 240 or (a.demote or 0) > 0:
            what = (f"OpenBSD demote count {a.demote}" if (a.demote or 0) > 0 else
                    "advskew 240, the FreeBSD demotion cap")
            self._hit(DEMOTED, spk, a.ts, a.frame, lambda: DEMOTED.finding(
                f"CARP {a.vhid}: {a.src} advertises {what}: it is demoted (net.inet.carp.demotion > 0, "
                "an interface or pfsync problem, or maintenance mode) and will lose the election to any peer",
                evidence={"speaker": a.src, "advskew": a.advskew, "demote": a.demote}, cause="demotion", **_where(a)))

    def malformed(self, m: Malformed) -> None:
        key = (m.segment, m.src, m.reason.split(":")[0].split("(")[0])
        self._hit(MALFORMED, key, m.ts, m.frame, lambda: MALFORMED.finding(
            f"protocol 112 from {m.src or '?'}: {m.reason}", segment=m.segment, source=m.source,
            vhid=m.vhid, evidence={"speaker": m.src, "reason": m.reason, "version": m.version}))

    def findings(self) -> list[Finding]:
        out = []
        for fold in self._folds.values():
            f = fold.finding
            f.evidence["count"] = fold.count
            out.append(f)
        return out
