"""What a sensor tells Prometheus, as plain data: metric families computed from the engine's
groups and speakers (track.py), the active findings and the interfaces. exporter.py hands them
to the official client library; nothing here imports it (docs/fleet.md lists the metrics).

Computed on the sniff loop's thread after each update of the findings (once a second): the
exporter's HTTP thread only reads the last list, never the engine's live state.

Per group (labels ``segment``, ``protocol``, ``family``, ``vhid``): speakers advertising as
master now, an info series per such master (address, MAC, host name when an inventory or
config names it), seconds since the group's last advert (backups are silent: the last advert is
the master's), adverts per speaker, CARP HMAC verdicts by result, split brain now (0/1, with its
likely cause as a label), mastership changes, whether each speaker's last advert was demoted;
findings by rule and severity; per interface: frames, adverts, malformed frames, kernel drops,
interface up.

Label cardinality is bounded whatever arrives: at most ``MAX_GROUPS`` groups (those with the
most adverts: a real pair advertises every second, a spoofed one-off does not), at most
``MAX_SPEAKERS_PER_GROUP`` speakers per group and ``MAX_SPEAKERS`` in all (the masters of now
first, then the most adverts), at most ``MAX_FINDING_SERIES`` finding series;
``carpscope_series_dropped{kind}`` says how many were left out (0 when the caps were not hit)
and ``carpscope_series_limit{kind}`` gives each cap.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from carpscope import __version__
from carpscope.model import CARP
from carpscope.rules.splitbrain import diagnose
from carpscope.track import Episode, Group, Speaker

MAX_GROUPS = 1024
MAX_SPEAKERS_PER_GROUP = 8
MAX_SPEAKERS = 2048
MAX_FINDING_SERIES = 2048

GROUP = ("segment", "protocol", "family", "vhid")
SPEAKER = GROUP + ("address", "mac")


@dataclass
class Family:
    """One metric family: ``kind`` is gauge, counter (``name`` without ``_total``), info
    (``name`` without ``_info``) or age (a gauge whose sample values are time stamps: it is
    exposed as the seconds from each to the time of the scrape)."""
    name: str
    kind: str
    doc: str
    labels: tuple[str, ...]
    samples: list[tuple[tuple[str, ...], float]] = field(default_factory=list)

    def add(self, labels: tuple[str, ...], value: float) -> None:
        self.samples.append((labels, value))


def ongoing_episodes(g: Group) -> list[Episode]:
    """The split-brain episodes of a group still going on (both speakers still master)."""
    closed = {id(e) for e in g.episodes}
    return [e for e in g.all_episodes() if id(e) not in closed]


def split_brain_cause(g: Group, ep: Episode) -> str:
    """The likely cause of an episode, as the split-brain rule names it (rules/splitbrain.py)."""
    a = next((s for s in g.speakers.values() if s.ip == ep.a), None)
    b = next((s for s in g.speakers.values() if s.ip == ep.b), None)
    if a is None or b is None:
        return "unknown"
    return diagnose(g, a, b)[0]


def _demoted_now(findings: list) -> dict[tuple, float]:
    """(segment, vhid, speaker) -> time of the last demoted advert, from the demoted rule's
    findings (rules/packet.py decides what is demoted)."""
    out: dict[tuple, float] = {}
    for f in findings:
        if f.rule == "demoted" and f.last_seen is not None:
            k = (f.segment, f.vhid, (f.evidence or {}).get("speaker"))
            out[k] = max(out.get(k, 0.0), f.last_seen)
    return out


class Metrics:
    """The families of one sensor; keeps, between snapshots, the finding series seen (a finding
    that clears goes to 0 instead of vanishing, so alerts and graphs see it end)."""

    def __init__(self, hosts: dict[str, str] | None = None, *, max_groups: int = MAX_GROUPS,
                 max_speakers: int = MAX_SPEAKERS, max_per_group: int = MAX_SPEAKERS_PER_GROUP,
                 max_findings: int = MAX_FINDING_SERIES) -> None:
        self.hosts = hosts or {}
        self.max_groups, self.max_speakers, self.max_per_group = max_groups, max_speakers, max_per_group
        self.max_findings = max_findings
        self._finding_series: dict[tuple[str, ...], None] = {}     # insertion-ordered set

    def sample(self, now: float, groups, findings: list, taps) -> list[Family]:
        fam = {
            "masters": Family("carpscope_masters", "gauge",
                              "Speakers advertising as master now (0: no master, 2 or more: split brain)", GROUP),
            "master": Family("carpscope_master", "info",
                             "The speaker(s) advertising as master now", GROUP + ("address", "mac", "host")),
            "age": Family("carpscope_master_advert_age_seconds", "age",
                          "Seconds since the group's last advert (the master's: backups are silent)", GROUP),
            "speakers": Family("carpscope_speakers", "gauge", "Speakers heard in the group", GROUP),
            "adverts": Family("carpscope_speaker_adverts", "counter", "Adverts of each speaker", SPEAKER),
            "demoted": Family("carpscope_speaker_demoted", "gauge",
                              "1 when the speaker's last advert was demoted (rule demoted, CS205)", SPEAKER),
            "hmac": Family("carpscope_hmac_verdicts", "counter",
                           "CARP adverts by HMAC verdict (ok, fail, unchecked)", GROUP + ("result",)),
            "split": Family("carpscope_split_brain", "gauge",
                            "1 while two speakers are both master (rule split-brain, CS401), with its likely cause",
                            GROUP + ("cause",)),
            "changes": Family("carpscope_mastership_changes", "counter",
                              "Mastership changes after the first master (takeovers, masters after a gap)", GROUP),
        }
        ranked = sorted(groups, key=lambda g: (-sum(s.adverts for s in g.speakers.values()), g.key))
        kept = sorted(ranked[:self.max_groups], key=lambda g: g.key)
        dropped = {"group": len(ranked) - len(kept), "speaker": 0, "finding": 0}
        demoted = _demoted_now(findings)
        budget = self.max_speakers
        for g in kept:
            gl = (g.segment, g.protocol, str(g.family), str(g.vhid))
            sps: list[Speaker] = list(g.speakers.values())
            acting = sorted((s for s in sps if s.run_start is not None), key=lambda s: s.run_start or 0.0)
            fam["masters"].add(gl, len(acting))
            for s in acting:
                fam["master"].add(gl + (s.ip, s.mac or "", self.hosts.get(s.ip, "")), 1)
            if sps:
                fam["age"].add(gl, max(s.last for s in sps))
            fam["speakers"].add(gl, len(sps))
            order = sorted(sps, key=lambda s: (s.run_start is None, -s.adverts, s.ip))
            n = min(len(order), self.max_per_group, budget)
            budget -= n
            dropped["speaker"] += len(order) - n
            for s in order[:n]:
                sl = gl + (s.ip, s.mac or "")
                fam["adverts"].add(sl, s.adverts)
                if g.protocol == CARP:
                    last = demoted.get((g.segment, g.vhid, s.ip))
                    fam["demoted"].add(sl, 1 if last is not None and last >= s.last - 1e-6 else 0)
            if g.protocol == CARP:
                for result, attr in (("ok", "auth_ok"), ("fail", "auth_fail"), ("unchecked", "auth_unchecked_n")):
                    fam["hmac"].add(gl + (result,), sum(getattr(s, attr) for s in sps))
            eps = ongoing_episodes(g)
            fam["split"].add(gl + ((split_brain_cause(g, min(eps, key=lambda e: e.start)),) if eps else ("",)),
                             1 if eps else 0)
            initial = 1 if g.changes and g.changes[0][3] == "initial" else 0
            fam["changes"].add(gl, g.n_changes - initial)
        out = list(fam.values())
        cut = {(g.segment, g.vhid) for g in ranked[self.max_groups:]} - {(g.segment, g.vhid) for g in kept}
        out.append(self._findings(findings, cut, dropped))
        out += self._sensor(taps)
        limits = Family("carpscope_series_limit", "gauge", "The cap on exported series of each kind", ("kind",))
        gone = Family("carpscope_series_dropped", "gauge",
                      "Series left out by the cap of each kind (label cardinality under a flood)", ("kind",))
        for kind, cap in (("group", self.max_groups), ("speaker", self.max_speakers),
                          ("finding", self.max_findings)):
            limits.add((kind,), cap)
            gone.add((kind,), dropped[kind])
        build = Family("carpscope_build", "info", "carpscope version", ("version",), [((__version__,), 1)])
        return out + [limits, gone, build]

    def _findings(self, findings: list, cut: set, dropped: dict) -> Family:
        """Findings counted by (segment, protocol, vhid, rule, code, severity); those of the
        groups left out by the cap are not exported (counted as dropped)."""
        fam = Family("carpscope_findings", "gauge", "Active findings by rule and severity",
                     ("segment", "protocol", "vhid", "rule", "code", "severity"))
        counts: dict[tuple[str, ...], int] = {}
        for f in findings:
            if f.vhid is not None and (f.segment, f.vhid) in cut:
                dropped["finding"] += 1
                continue
            k = (f.segment or "", f.protocol or "", "" if f.vhid is None else str(f.vhid), f.rule, f.code,
                 f.severity.value)
            counts[k] = counts.get(k, 0) + 1
        series = self._finding_series
        for k in counts:
            if k not in series:
                if len(series) >= self.max_findings:
                    zero = next((s for s in series if s not in counts), None)
                    if zero is None:
                        dropped["finding"] += counts[k]
                        continue
                    del series[zero]
                series[k] = None
        for k in series:
            fam.add(k, counts.get(k, 0))
        return fam

    @staticmethod
    def _sensor(taps) -> list[Family]:
        iface = ("interface",)
        frames = Family("carpscope_frames", "counter", "Frames that passed the capture filter", iface)
        adverts = Family("carpscope_adverts", "counter", "CARP/VRRP adverts decoded", iface)
        malformed = Family("carpscope_malformed", "counter", "Malformed protocol-112 frames", iface)
        drops = Family("carpscope_kernel_drops", "counter",
                       "Frames the kernel dropped before carpscope read them (libpcap ps_drop)", iface)
        up = Family("carpscope_interface_up", "gauge", "1 while the interface is up and captured", iface)
        for t in taps:
            frames.add((t.name,), t.info.packets)
            adverts.add((t.name,), t.info.adverts)
            malformed.add((t.name,), t.info.malformed)
            st = t.stats()
            if st is not None:
                drops.add((t.name,), st[1])
            up.add((t.name,), 1 if t.up() else 0)
        return [frames, adverts, malformed, drops, up]
