"""Rules judged on a group's (or a segment's) speakers as a whole, and over its timeline."""
from __future__ import annotations

from collections import defaultdict
TYPE_CHECKING = False     # typing.TYPE_CHECKING without importing typing at run time (start-up)
if TYPE_CHECKING:
    from typing import Any

from carpscope.model import CARP, VRRP2, VRRP3, Finding
from carpscope.rules import ERROR, WARNING, declare
from carpscope.track import MAX_PAIRS, MAX_SPEAKERS_TOTAL, Group, Speaker, Tracker

VHID_CONFLICT = declare("vhid-conflict", "CS201", ERROR,
                        "One VHID/VRID on one segment used by unrelated groups", __name__)
SKEW_TIE = declare("skew-tie", "CS202", WARNING,
                   "Speakers of a group advertise identical timing/priority", __name__)
ADVBASE_MISMATCH = declare("advbase-mismatch", "CS204", WARNING,
                           "Speakers of a group use different advertisement intervals", __name__)
VRRP_ADDRESS_MISMATCH = declare("vrrp-address-mismatch", "CS207", ERROR,
                                "VRRP speakers of one VRID advertise different address lists", __name__)
VRRP_VERSION_MIX = declare("vrrp-version-mix", "CS208", WARNING,
                           "VRRPv2 and VRRPv3 advertised for the same VRID", __name__)
PRIORITY_OWNER_CONFLICT = declare("priority-owner-conflict", "CS209", ERROR,
                                  "Two VRRP speakers claim to own the addresses (priority 255)", __name__)
SPEAKER_LIMIT = declare("speaker-limit", "CS210", WARNING,
                        "Too many distinct speakers or groups: tracking capped", __name__)
MASTER_GAP = declare("master-gap", "CS402", WARNING,
                     "No master advertised for longer than the master-down interval", __name__)
FLAPPING = declare("flapping", "CS403", WARNING,
                   "Mastership changes too often", __name__)

FLAP_CHANGES = 4          # mastership changes within track.FLAP_WINDOW


def _where(g: Group) -> dict:
    return dict(protocol=g.protocol, vhid=g.vhid, segment=g.segment)


def _name(g: Group) -> str:
    return g.name


def _timing(sp: Speaker, g: Group) -> str:
    if g.protocol == CARP:
        return f"advbase {sp.advbase} advskew {sp.advskew}"
    return f"priority {sp.priority} interval {(sp.interval_cs or 0) / 100:g}s"


def _frames(*sps: Speaker) -> list[int]:
    return sorted({f for s in sps for f in s.frames})[:10]


def _span(*sps: Speaker) -> dict:
    return dict(first_seen=min(s.first for s in sps), last_seen=max(s.last for s in sps))


def group_findings(groups: list[Group]) -> list[Finding]:
    out: list[Finding] = []
    for g in groups:
        out += _consistency(g)
        out += _timeline(g)
    out += _segment_conflicts(groups)
    return out


def limit_findings(tracker: Tracker) -> list[Finding]:
    """speaker-limit for the caps of the whole analysis: groups (MAX_GROUPS) and speakers in all
    (MAX_SPEAKERS_TOTAL); those of one group are judged with the group."""
    out = []
    if tracker.groups_capped:
        out.append(SPEAKER_LIMIT.finding(f"more than {len(tracker.groups)} groups: "
                                         f"{tracker.groups_capped} adverts of further groups not tracked",
                                         evidence={"dropped_adverts": tracker.groups_capped}))
    if tracker.speakers_capped:
        out.append(SPEAKER_LIMIT.finding(
            f"more than {MAX_SPEAKERS_TOTAL} speakers in all groups: {tracker.speakers_capped} adverts of "
            "further speakers (and of the groups they alone would have formed) not tracked "
            "(spoofed sources or a flood?)",
            evidence={"dropped_adverts": tracker.speakers_capped, "max_speakers": MAX_SPEAKERS_TOTAL}))
    return out


def _consistency(g: Group) -> list[Finding]:
    out = []
    sps = list(g.speakers.values())
    if g.speakers_capped:
        out.append(SPEAKER_LIMIT.finding(f"{_name(g)}: more than {len(sps)} distinct speakers; "
                           f"{g.speakers_capped} adverts from further speakers were not tracked (spoofed "
                           "sources or a flood?)", evidence={"dropped_adverts": g.speakers_capped}, **_where(g)))
    if g.pairs_capped:
        out.append(SPEAKER_LIMIT.finding(
            f"{_name(g)}: more than {MAX_PAIRS} pairs of speakers advertised as masters at once; split "
            f"brain is followed for {MAX_PAIRS} pairs at a time, {g.pairs_capped} overlaps of further pairs "
            "were not followed (spoofed sources or a flood?)",
            evidence={"dropped_pair_checks": g.pairs_capped, "max_pairs": MAX_PAIRS}, **_where(g)))
    if len(sps) < 2:
        return out
    # equal timing: the election then rests on a tie-break (CARP timing races, VRRP address).
    # Resignations (priority 0, bow-out) are never a speaker's timing (track.resigns).
    by_timing: defaultdict[Any, list[Speaker]] = defaultdict(list)
    for s in sps:
        if g.protocol == CARP and s.advbase is not None:
            by_timing[(s.advbase, s.advskew)].append(s)
        elif g.protocol != CARP and s.priority is not None:
            by_timing[s.priority].append(s)
    for t, same in by_timing.items():
        if g.protocol != CARP and t == 254:
            # keepalived lowers an owner that hears another owner to 254 (vrrp.c, recorded in
            # ka-owner-pair): owners meeting there is priority-owner-conflict, not a tie of theirs
            same = [s for s in same if not any(tt[0] == 255 for tt in s.timings)]
        if len(same) > 1:
            ips = sorted(s.ip for s in same)
            decided = ("the first to time out wins, and a master hearing an equal advert yields (FreeBSD) or "
                       "compares addresses (ucarp)" if g.protocol == CARP else
                       "the higher primary address wins (RFC 5798 §6.4.3)")
            out.append(SKEW_TIE.finding(f"{_name(g)}: {', '.join(ips)} advertise the same "
                               f"{'advbase/advskew ' + str(t[0]) + '/' + str(t[1]) if g.protocol == CARP else 'priority ' + str(t)}: "
                               f"{decided}; give the intended backup a larger advskew / lower priority",
                               evidence={"speakers": ips, "timing": list(t) if isinstance(t, tuple) else t},
                               packets=_frames(*same), **_span(*same), **_where(g)))
    # different intervals
    timed = [s for s in sps if (s.advbase if g.protocol == CARP else s.interval_cs) is not None]
    if g.protocol == CARP:
        bases = {s.advbase for s in timed}
        label = "advbase"
    else:
        bases = {s.interval_cs for s in timed}
        label = "advertisement interval (cs)"
    versions = {s.protocol for s in timed}
    if len(bases) > 1:
        per = {s.ip: (s.advbase if g.protocol == CARP else s.interval_cs) for s in timed}
        if g.protocol == CARP:
            effect = ("master-down timers differ: the slower side takes longer to notice a failure, and the "
                      "election compares whole intervals, so the base dominates the skew")
        elif versions == {VRRP2}:
            effect = ("VRRPv2 receivers discard adverts whose interval differs from theirs (RFC 3768 §7.1): "
                      "each side ignores the other")
        elif versions == {VRRP3}:
            effect = ("VRRPv3 backups adopt the master's interval (RFC 5798 §6.4.2), so the group still "
                      "elects one master, but how fast a failure is noticed depends on which speaker is master")
        else:
            effect = "VRRPv2 and VRRPv3 speakers ignore each other's adverts whatever the interval (vrrp-version-mix)"
        out.append(ADVBASE_MISMATCH.finding(f"{_name(g)}: speakers use different {label}: "
                           + ", ".join(f"{ip} {v}" for ip, v in sorted(per.items())) + f". {effect}",
                           evidence={"values": per}, cause="advbase", packets=_frames(*timed), **_span(*timed),
                           **_where(g)))
    if {VRRP2, VRRP3} <= set(g.protocols):
        both = {p: sorted(s.ip for s in sps if s.protocol == p) for p in (VRRP2, VRRP3)}
        out.append(VRRP_VERSION_MIX.finding(
            f"{_name(g)}: {', '.join(both[VRRP2])} advertise{'s' if len(both[VRRP2]) == 1 else ''} VRRPv2 and "
            f"{', '.join(both[VRRP3])} VRRPv3 for the same VRID: each version discards the other's adverts "
            "(RFC 5798 §8.4; keepalived logs 'wrong version'), so each side acts as master unless a v3 router "
            "runs the interop mode and also sends v2",
            evidence=both, cause="version", packets=_frames(*sps), **_span(*sps), **_where(g)))
    if g.protocol != CARP:
        lists = {s.ip: sorted({a for al in s.addresses for a in al}) for s in sps}
        distinct = {tuple(v) for v in lists.values()}
        if len(distinct) > 1:
            sets = [set(v) for v in distinct]
            disjoint = all(a.isdisjoint(b) for i, a in enumerate(sets) for b in sets[i + 1:])
            if not disjoint:
                out.append(VRRP_ADDRESS_MISMATCH.finding(f"{_name(g)}: speakers advertise different address "
                                   "lists; receivers that check them drop the adverts (keepalived before 2.3.3: 'ip "
                                   "address associated with VRID not present in MASTER advert'; from 2.3.3 "
                                   "it logs the mismatch and keeps the advert)",
                                   evidence={"addresses": lists}, cause="vip-set", packets=_frames(*sps),
                                   **_span(*sps), **_where(g)))
        # an owner's claim stands even after it lowered its priority (keepalived drops to 254
        # when it hears another owner) or resigned: any advert at 255 is the claim
        owners = [s for s in sps if any(t[0] == 255 for t in s.timings)]
        if len(owners) > 1:
            out.append(PRIORITY_OWNER_CONFLICT.finding(f"{_name(g)}: {', '.join(sorted(s.ip for s in owners))} "
                               "all claim to own the addresses (priority 255); only one router can be the owner",
                               evidence={"speakers": sorted(s.ip for s in owners)}, packets=_frames(*owners),
                               **_span(*owners), **_where(g)))
    return out


def _timeline(g: Group) -> list[Finding]:
    out = []
    for gap_from, gap_to, secs, prev_ip, next_ip in g.gaps:
        # the backup that took over waited its *own* master-down interval after the last advert
        # it heard; allow two of its intervals more for timer ticks and late reception (ucarp
        # reads its socket up to 1 s late): beyond that, nobody held the address
        nxt = next((s for s in g.speakers.values() if s.ip == next_ip), None)
        md = nxt.md if nxt else 3.0
        allowed = md + 2 * (nxt.interval if nxt else 1.0)
        if secs > allowed:
            out.append(MASTER_GAP.finding(f"{_name(g)}: no master advertised for {secs:.2f} s "
                               f"(a takeover needs {md:.2f} s, the master-down interval of {next_ip}) between "
                               f"{prev_ip} and {next_ip}: an outage of the virtual address",
                               evidence={"seconds": round(secs, 3), "previous": prev_ip, "next": next_ip,
                                         "master_down": round(md, 3), "allowed": round(allowed, 3)},
                               first_seen=gap_from, last_seen=gap_to, **_where(g)))
    best, n = g.flap_window(), g.flap_best_n
    if best and n >= FLAP_CHANGES:
        out.append(FLAPPING.finding(f"{_name(g)}: mastership changed {n} times within "
                           f"{best[-1][0] - best[0][0]:.1f} s ({g.n_changes} changes in all)",
                           evidence={"changes": [{"ts": c[0], "from": c[1], "to": c[2]} for c in best[:20]]},
                           first_seen=best[0][0], last_seen=best[-1][0], packets=[c[4] for c in best[:10]],
                           **_where(g)))
    return out


def _segment_conflicts(groups: list[Group]) -> list[Finding]:
    """CARP and VRRP on one id of one segment (two VRRP versions are one group: _consistency)."""
    out = []
    by_id = defaultdict(list)
    for g in groups:
        by_id[(g.segment, g.vhid)].append(g)
    for (seg, vid), gs in by_id.items():
        # CARP and VRRP meet only within one address family: IPv4 adverts go to 224.0.0.18 and
        # share 00:00:5e:00:01:NN, IPv6 ones go to ff02::12; an IPv4-only CARP vhid and an
        # IPv6 VRRPv3 VRID with the same number never see each other's adverts
        for fam in sorted({g.family for g in gs}):
            fgs = [g for g in gs if g.family == fam]
            kinds = {g.kind for g in fgs}
            if kinds != {"carp", "vrrp"}:
                continue
            sps = [s for g in fgs for s in g.speakers.values()]
            who: dict[str, list[str]] = {}
            for s in sorted(sps, key=lambda s: s.ip):
                if s.ip not in who.setdefault(s.protocol, []):
                    who[s.protocol].append(s.ip)
            shared = (f"224.0.0.18 and the virtual MAC 00:00:5e:00:01:{vid:02x}" if fam == 4 else "ff02::12")
            vrrp = sorted({ip for p, ips in who.items() if p != CARP for ip in ips})
            out.append(VHID_CONFLICT.finding(f"id {vid} is used by CARP ({', '.join(who[CARP])}) and VRRP "
                               f"({', '.join(vrrp)}) on one segment: "
                               f"they share protocol 112, {shared}; each rejects the other's adverts and "
                               "both act as master; renumber one of them",
                               protocol=None, vhid=vid, segment=seg, evidence={"speakers": who},
                               cause="vhid-conflict", packets=_frames(*sps), **_span(*sps)))
        for g in gs:
            if g.protocol == CARP:
                continue
            lists = [set(a for al in s.addresses for a in al) for s in g.speakers.values()]
            lists = [x for x in lists if x]
            if len(lists) > 1 and all(a.isdisjoint(b) for i, a in enumerate(lists) for b in lists[i + 1:]):
                sps = list(g.speakers.values())
                out.append(VHID_CONFLICT.finding(f"{_name(g)}: speakers advertise disjoint address lists: "
                                   "two different VRRP groups share this VRID on one segment; renumber one",
                                   evidence={"addresses": {s.ip: sorted({a for al in s.addresses for a in al})
                                                           for s in sps}},
                                   cause="vhid-conflict", packets=_frames(*sps), **_span(*sps), **_where(g)))
    return out
