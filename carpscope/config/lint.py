"""Static checks of the operator's configuration: what will go wrong before a packet is sent.

`lint(paths)` reads every file (carpscope.config), merges them into one inventory and checks each
group (segment, protocol, id) for what makes CARP/VRRP fail in the field (field-cases.md):
different passphrases or VIP sets between peers (HMAC failures, then split brain), an intended
backup that is not strictly slower than the primary, one id reused on a segment, values the
kernel silently changes (advskew 241-254, passphrases over 19 characters), a missing passphrase,
and preemption being off. Files that cannot be read as written give ``config-parse-error``
findings with file and line; everything else that could be read is still checked.

No finding ever contains a passphrase: keys are named by label (``hosta:vhid1``), and as a last
guard every known secret value is scrubbed from messages and evidence.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, replace

from carpscope.auth import derive_key, describe_weak, weak_index_of
from carpscope.config import lint_address, lint_syncgroup, lint_unicast, merge, read_configs
from carpscope.config.inventory import (
    BSD_PASS_MAX, CARP, VRRP2, VRRP3, VRRP_PASS_MAX, ConfigError, Group, Inventory, Member, Origin,
    Secret, bsd_key,
)
from carpscope.model import Finding, Severity
from carpscope.rules import ERROR, INFO, WARNING, Rule, declare

CONFIG_PARSE_ERROR = declare("config-parse-error", "CS501", ERROR,
                             "A configuration file cannot be parsed", __name__)
CONFIG_PASS_MISMATCH = declare("config-pass-mismatch", "CS502", ERROR,
                               "Hosts of one group are configured with different passphrases", __name__)
CONFIG_VIP_MISMATCH = declare("config-vip-mismatch", "CS503", ERROR,
                              "Hosts of one group are configured with different VIP sets", __name__)
CONFIG_SKEW_ORDER = declare("config-skew-order", "CS504", WARNING,
                            "Backup advskew/priority not strictly ordered behind the primary", __name__)
CONFIG_VHID_REUSE = declare("config-vhid-reuse", "CS505", ERROR,
                            "One VHID/VRID used for different groups on one segment", __name__)
CONFIG_ADVSKEW_CLAMPED = declare("config-advskew-clamped", "CS506", WARNING,
                                 "advskew 241-254 is advertised as 240 by FreeBSD", __name__)
CONFIG_PASS_TRUNCATED = declare("config-pass-truncated", "CS507", WARNING,
                                "Passphrase longer than 19 characters (BSD truncates, ucarp refuses)", __name__)
CONFIG_MISSING_PASS = declare("config-missing-pass", "CS508", WARNING,
                              "CARP group configured without a passphrase", __name__)
CONFIG_PREEMPT = declare("config-preempt", "CS509", INFO,
                         "Preemption off: the primary will not take back its VIP after returning", __name__)
CONFIG_WEAK_PASSPHRASE = declare("config-weak-passphrase", "CS510", WARNING,
                                 "Configured passphrase is a well-known default or documentation example",
                                 __name__)

CARP_MAXSKEW = 240


@dataclass
class LintResult:
    """``findings`` (sorted by file and line), the merged ``inventory``, and ``errors``: every
    ConfigError met while reading (each is also a config-parse-error finding). ``notes`` are
    remarks that are not findings: a passphrase file or variable that cannot be read here (so
    that key was not compared), a setting keepalived ignores, a loader.conf without carp."""

    findings: list[Finding]
    inventory: Inventory | None
    errors: list[ConfigError]
    notes: list[str] = field(default_factory=list)

    @property
    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings), key=lambda s: s.rank, default=None)


def lint(paths) -> LintResult:
    """Read and check configuration files (rc.conf, sysctl.conf, loader.conf, keepalived.conf,
    ucarp command lines/units, interfaces files, inventory TOML). Never raises ConfigError."""
    problems: list[ConfigError] = []
    hosts, inventories = read_configs(list(paths), problems)
    inv = merge(hosts, inventories)
    ctx = _Ctx(inv)
    findings = [_parse_error(e) for e in problems]
    for g in inv.groups:
        for sub in _split_reused(g, ctx):
            _check_group(sub, ctx)
    _check_cross_groups(inv, ctx)
    lint_address.check(hosts, inv, ctx)
    lint_unicast.check(hosts, inv, ctx)
    lint_syncgroup.check(hosts, inv, ctx)
    _note_ha_peers(hosts, inv, ctx)
    findings += ctx.findings
    # a secret that cannot be read here (a file or variable that lives on the real host, or in
    # CI's secret store) is not an error in the configuration: say what was not checked
    ctx.notes += [f"{e}; its key was not compared" for e in ctx.secret_errors]
    findings = _scrub(findings, ctx)
    for e in problems:
        _scrub_error(e, ctx)
    ctx.notes = [_scrub_text(n, ctx) for n in ctx.notes]
    findings.sort(key=lambda f: (f.source or "", f.line or 0, f.code, f.message))
    return LintResult(findings=findings, inventory=inv, errors=problems, notes=list(inv.notes) + ctx.notes)


# -------------------------------------------------------------------------------------------------
# helpers
# -------------------------------------------------------------------------------------------------

class _Ctx:
    def __init__(self, inv: Inventory):
        self.inv = inv
        self.findings: list[Finding] = []
        self.secret_errors: list[ConfigError] = []
        self.notes: list[str] = []
        self._values: dict[int, str | None] = {}

    def value(self, s: Secret | None) -> str | None:
        """The secret's value, or None when it cannot be read (reported once)."""
        if s is None:
            return None
        if id(s) not in self._values:
            try:
                self._values[id(s)] = s.reveal()
            except ConfigError as exc:
                self._values[id(s)] = None
                self.secret_errors.append(exc)
        return self._values[id(s)]

    def seen_values(self) -> list[str]:
        return [v for v in self._values.values() if v is not None]

    def add(self, rule: Rule, message: str, g: Group | None, origin: Origin | None, evidence=None,
            severity: Severity | None = None, cause: str | None = None) -> None:
        f = rule.finding(
            message, source=origin.path if origin else None, line=origin.line if origin else None,
            protocol=g.protocol if g else None, vhid=g.id if g else None,
            segment=g.segment if g else None, evidence=evidence or {}, cause=cause)
        if severity is not None:      # e.g. ucarp refuses what FreeBSD only truncates
            f.severity = severity
        self.findings.append(f)


def _parse_error(e: ConfigError) -> Finding:
    return CONFIG_PARSE_ERROR.finding(e.message, source=e.path, line=e.line)


def _label(g: Group, m: Member) -> str:
    s = g.passphrase_of(m)
    return s.label if s is not None else f"{m.host}:{g.id_word.lower()}{g.id}"


def _timing(g: Group, m: Member, ctx: _Ctx) -> tuple[int, int, str]:
    """(advbase, advertised advskew, note) — FreeBSD adds net.inet.carp.demotion and caps at 240."""
    base, skew = g.advbase_of(m), g.advskew_of(m)
    if m.implementation in ("ucarp", "openbsd"):      # neither caps nor adds a demotion counter
        return base, skew, ""
    host = ctx.inv.host(m.host)
    demotion = (host.demotion or 0) if host else 0
    sent = max(0, min(skew + demotion, CARP_MAXSKEW))
    note = ""
    if demotion and sent != skew:
        note = f" (advskew {skew} + net.inet.carp.demotion {demotion}, advertised as {sent})"
    elif sent != skew:
        note = f" (advskew {skew} is advertised as {sent})"
    return base, sent, note


def _preempt(g: Group, m: Member, ctx: _Ctx) -> tuple[bool, Origin | None, str]:
    """Effective preemption of a member, where it was set, and how it is spelled for that host."""
    host = ctx.inv.host(m.host)
    if m.implementation == "keepalived" or (m.implementation is None and g.protocol != CARP):
        default, how = True, "nopreempt"
    elif m.implementation == "ucarp":
        default, how = False, "--preempt (-P)"
    else:
        default, how = False, "net.inet.carp.preempt"
    if m.preempt is not None:
        return m.preempt, m.origin("preempt"), how
    if host is not None and host.preempt is not None:
        return host.preempt, host.where.get("preempt") or m.origin(), how
    return default, m.origin("preempt"), how


def _fmt_vips(v) -> str:
    return "{" + ", ".join(v) + "}" if v else "{}"


# -------------------------------------------------------------------------------------------------
# one id, two groups (vhid-reuse inside what the keys put together)
# -------------------------------------------------------------------------------------------------

def _split_reused(g: Group, ctx: _Ctx) -> list[Group]:
    """When the members of one (segment, protocol, id) fall into two or more teams, each of at
    least two hosts, with disjoint VIP sets, they are unrelated clusters sharing an id
    (field-cases.md #2) — report vhid-reuse and check each team on its own."""
    if g.vips is not None:
        return [g]
    teams: dict[frozenset, list[Member]] = {}
    for m in g.members:
        v = g.vips_of(m)
        if v:
            teams.setdefault(frozenset(v), []).append(m)
    sets = list(teams)
    disjoint = all(not (a & b) for i, a in enumerate(sets) for b in sets[i + 1:])
    if len(teams) < 2 or not disjoint or any(len(ms) < 2 for ms in teams.values()):
        return [g]
    subs = []
    desc = "; ".join(f"{', '.join(m.host for m in ms)} with {_fmt_vips(sorted(k))}" for k, ms in teams.items())
    for n, (k, ms) in enumerate(teams.items()):
        primary = g.primary if g.primary in [m.host for m in ms] else None
        subs.append(replace(g, members=list(ms), primary=primary))
        if n:
            ctx.add(CONFIG_VHID_REUSE,
                    f"{g.describe()} is used by {len(teams)} unrelated groups ({desc}): they share the "
                    f"virtual MAC and reject each other's adverts; give each its own {g.id_word}",
                    g, ms[0].origin("member"), {"groups": {h: sorted(k2) for k2, mm in teams.items()
                                                         for h in [", ".join(x.host for x in mm)]}},
                    cause="vhid-conflict")
    return subs


def _check_cross_groups(inv: Inventory, ctx: _Ctx) -> None:
    """One id on one segment used by CARP and VRRP (or by VRRPv2 and VRRPv3), or declared twice.
    Each group involved gets a finding at its own place, naming the others."""
    seen: dict[tuple[str, int], list[Group]] = {}
    for g in inv.groups:
        seen.setdefault((g.segment, g.id), []).append(g)
    for (seg, gid), groups in seen.items():
        if len(groups) < 2:
            continue
        protos = {g.protocol for g in groups}
        if len(protos) == 1:
            why = "declared twice"
        elif protos == {VRRP2, VRRP3}:
            why = ("used by VRRPv2 and VRRPv3: the versions do not understand each other's adverts "
                   "(keepalived: set the same vrrp_version on every host)")
        else:
            why = (f"used by CARP and VRRP: both send protocol 112 to 224.0.0.18 from the virtual MAC "
                   f"00:00:5e:00:01:{gid:02x}, so each side drops the other's adverts and the MAC clashes")
        for g in groups:
            origin = g.members[0].origin("member") if g.members else g.where.get("group")
            others = "; ".join(f"{o.describe()}: {', '.join(m.host for m in o.members) or 'no hosts'}"
                               for o in groups if o is not g)
            ctx.add(CONFIG_VHID_REUSE,
                    f"id {gid} on {seg} is {why} ({g.describe()}: "
                    f"{', '.join(m.host for m in g.members) or 'no hosts'}; {others})",
                    g, origin, {"groups": [x.name for x in groups]}, cause="vhid-conflict")


# -------------------------------------------------------------------------------------------------
# per-group checks
# -------------------------------------------------------------------------------------------------

def _check_group(g: Group, ctx: _Ctx) -> None:
    _check_secrets_alone(g, ctx)
    if len(g.members) >= 1:
        _check_advskew_clamped(g, ctx)
    if len(g.members) >= 2 or (g.vips is not None and g.members):
        _check_vips(g, ctx)
    if len(g.members) >= 2 or (g.passphrase is not None and g.members):
        _check_passphrases(g, ctx)
    if len(g.members) >= 2:
        _check_order(g, ctx)
        _check_preempt(g, ctx)


def _reference(g: Group, values: dict[str, object]) -> tuple[str | None, object]:
    """The value others are compared with: the primary's, else the most common (first on a tie)."""
    primary = g.intended_primary()
    if primary in values:
        return primary, values[primary]
    counts = Counter(values.values())
    best = max(counts.values())
    for host, v in values.items():
        if counts[v] == best:
            return host, v
    return None, None


def _check_vips(g: Group, ctx: _Ctx) -> None:
    values = {m.host: frozenset(g.vips_of(m)) for m in g.members if g.vips_of(m) is not None}
    if not values:
        return
    if g.vips is not None:
        ref_host, ref = None, frozenset(g.vips)
    else:
        ref_host, ref = _reference(g, values)
    if all(v == ref for v in values.values()):
        return
    what = ("the HMAC covers the VIP set, so each side rejects the other's adverts ('incorrect hash', "
            "'Bad digest') and both become master" if g.protocol == CARP else
            "VRRP adverts list the addresses; keepalived logs 'ip address associated with VRID not "
            "present in MASTER advert' and drops them")
    for m in g.members:
        v = values.get(m.host)
        if v is None or v == ref:
            continue
        missing, extra = sorted(ref - v), sorted(v - ref)
        against = f"the inventory says {_fmt_vips(sorted(ref))}" if ref_host is None else \
            f"{ref_host} has {_fmt_vips(sorted(ref))}"
        diff = "; ".join(x for x in (f"missing {', '.join(missing)}" if missing else "",
                                     f"extra {', '.join(extra)}" if extra else "") if x)
        ctx.add(CONFIG_VIP_MISMATCH,
                f"{m.host} configures {g.describe()} with VIPs {_fmt_vips(sorted(v))}, but {against} "
                f"({diff}): {what}",
                g, m.origin("vips"), {"host": m.host, "vips": sorted(v), "expected": sorted(ref),
                                      "against": ref_host or "inventory"}, cause="vip-set")


def _secret_text(g: Group, m: Member, ctx: _Ctx) -> tuple[bool, str | None]:
    """(readable, value) of a member's effective passphrase; None value = no passphrase."""
    s = g.passphrase_of(m)
    if s is None:
        return True, None
    v = ctx.value(s)
    return v is not None, v


def _check_passphrases(g: Group, ctx: _Ctx) -> None:
    """Members must derive the same key: BSD key (19 characters) for CARP, the 8-character
    password and auth type for VRRPv2 (VRRPv3 has no authentication)."""
    if g.protocol == VRRP3:
        return
    limit = BSD_PASS_MAX if g.protocol == CARP else VRRP_PASS_MAX

    def key(value: str | None, auth: str | None):
        if g.protocol == CARP:
            return bsd_key(value or None)
        if value is None:
            return (None, None)
        return ((auth or "PASS").upper(), value.encode()[:limit])

    keys: dict[str, object] = {}
    labels: dict[str, str] = {}
    for m in g.members:
        ok, value = _secret_text(g, m, ctx)
        if not ok:
            continue
        if g.protocol == CARP and m.implementation == "ucarp" and (
                not value or len(value.encode()) > BSD_PASS_MAX):
            continue   # this ucarp does not start at all: missing-pass / pass-truncated say so
        keys[m.host] = key(value, m.auth_type)
        labels[m.host] = _label(g, m) if value is not None else f"{m.host} (no passphrase)"
    gv = ctx.value(g.passphrase) if g.passphrase is not None else None
    if gv is not None:
        ref_host, ref_label = None, f"the inventory's passphrase {g.passphrase.label!r}"
        if g.protocol == CARP:
            ref = bsd_key(gv)
        else:
            # the inventory names no auth type: compare the password, and the type among members
            ref = ("*", gv.encode()[:limit])
            keys = {h: ("*", k[1]) if k[1] is not None else k for h, k in keys.items()}
    else:
        if len(keys) < 2:
            return
        ref_host, ref = _reference(g, keys)
        ref_label = labels.get(ref_host, "")
    if g.protocol == CARP:
        effect = ("they derive different CARP keys, so each side rejects the other's adverts "
                  "(FreeBSD 'incorrect hash', ucarp 'Bad digest') and both become master")
    else:
        effect = ("keepalived rejects the adverts ('received an invalid passwd!' or an authentication "
                  "type mismatch) and both become master")
    for m in g.members:
        k = keys.get(m.host)
        if k is None or k == ref or m.host == ref_host:
            continue
        ctx.add(CONFIG_PASS_MISMATCH,
                f"{labels[m.host]} and {ref_label} differ for {g.describe()}: {effect}",
                g, m.origin("passphrase", "auth_type"),
                {"host": m.host, "key": labels[m.host], "against": ref_label}, cause="passphrase")


def _check_secrets_alone(g: Group, ctx: _Ctx) -> None:
    """Per-secret checks: too long (truncated/refused), missing."""
    if g.protocol == VRRP3:
        return
    # group-level (inventory) passphrase
    if g.passphrase is not None:
        v = ctx.value(g.passphrase)
        limit = BSD_PASS_MAX if g.protocol == CARP else VRRP_PASS_MAX
        if v is not None and len(v.encode()) > limit:
            o = g.where.get("passphrase_file") or g.where.get("passphrase_env") or g.where.get("passphrase") \
                or g.where.get("group")
            ctx.add(CONFIG_PASS_TRUNCATED, _too_long_msg(g, g.passphrase.label, len(v.encode()), None),
                    g, o, {"key": g.passphrase.label, "length": len(v.encode())})
    values: dict[str, str] = {}
    for m in g.members:
        s = m.passphrase
        ok, v = _secret_text(g, m, ctx)
        if not ok:
            continue
        if g.protocol == CARP and (v is None or v == ""):
            if m.implementation == "ucarp":
                ctx.add(CONFIG_MISSING_PASS,
                        f"{m.host} runs ucarp for {g.describe()} without a password: ucarp refuses to "
                        "start ('You must supply a password' / empty password)", g, m.origin("passphrase"),
                        {"host": m.host}, severity=Severity.ERROR)
            else:
                others = [x.host for x in g.members if x is not m and g.passphrase_of(x) is not None]
                tail = (f"; {', '.join(others)} {'has' if len(others) == 1 else 'have'} one, so they "
                        "reject its adverts") if others else ""
                ctx.add(CONFIG_MISSING_PASS,
                        f"{m.host} has no pass for {g.describe()}: the key is all zeros, so anyone on the "
                        f"segment can send adverts it accepts{tail}", g, m.origin("member"),
                        {"host": m.host, "others_with_pass": others})
            continue
        if v is None or s is None:
            continue
        values[m.host] = v
    limit = BSD_PASS_MAX if g.protocol == CARP else VRRP_PASS_MAX
    _check_weak(g, values, limit, ctx)
    for m in g.members:
        v = values.get(m.host)
        if v is None or len(v.encode()) <= limit:
            continue
        twins = [h for h, o in values.items()
                 if h != m.host and o != v and o.encode()[:limit] == v.encode()[:limit]]
        sev = Severity.ERROR if m.implementation == "ucarp" else None
        ctx.add(CONFIG_PASS_TRUNCATED, _too_long_msg(g, m.passphrase.label, len(v.encode()), m, twins),
                g, m.origin("passphrase"),
                {"key": m.passphrase.label, "length": len(v.encode()),
                 "same_key_after_truncation": [values_label(g, h) for h in twins]}, severity=sev)


def _check_weak(g: Group, values: dict[str, str], limit: int, ctx: _Ctx) -> None:
    """A passphrase from the bundled list of defaults and documentation examples (the list
    `weak-passphrase` uses on the wire), compared as the key it gives: the first 19 characters
    (CARP) or 8 (VRRPv2). The group's own (inventory) passphrase is checked once, at its line."""
    checks = [(m.host, m.passphrase.label, v, m.origin("passphrase")) for m in g.members
              if (v := values.get(m.host)) is not None and m.passphrase is not None]
    if g.passphrase is not None and (gv := ctx.value(g.passphrase)):
        checks.append((None, g.passphrase.label, gv, g.where.get("passphrase_file") or
                       g.where.get("passphrase_env") or g.where.get("passphrase") or g.where.get("group")))
    for host, label, value, origin in checks:
        index = weak_index_of(derive_key(value.encode()[:limit]))
        if not index:          # None, or 0 (no passphrase: config-missing-pass says so)
            continue
        ctx.add(CONFIG_WEAK_PASSPHRASE,
                f"{label} for {g.describe()} is {describe_weak(index)}: anyone on the segment can test the "
                "usual defaults against one captured advert, then forge adverts that take the VIPs over; "
                "use a long random passphrase",
                g, origin, {"host": host, "key": label, "weak_index": index})


def _note_ha_peers(hosts, inv: Inventory, ctx: _Ctx) -> None:
    """pfSense/OPNsense name their HA peer (<hasync>): say when it is none of the hosts given."""
    known = {_bare(a): h.name for h in inv.hosts for a in h.addresses}
    given = len([hc for hc in hosts if hc.host.kind in ("pfsense", "opnsense")]) > 1
    for hc in hosts:
        for addr, origin, what in hc.ha_peers:
            who = known.get(addr)
            if who == hc.host.name:
                ctx.notes.append(f"{origin}: {hc.host.name}'s {what} {addr} is one of its own addresses")
            elif who is None and given:
                ctx.notes.append(f"{origin}: {hc.host.name}'s {what} {addr} is not an address of any host given")


def _bare(addr: str) -> str:
    return addr.split("/", 1)[0].split("%", 1)[0]


def values_label(g: Group, host: str) -> str:
    m = g.member(host)
    return _label(g, m) if m else host


def _too_long_msg(g: Group, label: str, n: int, m: Member | None, twins: list[str] = ()) -> str:
    if g.protocol != CARP:
        return (f"{label} is {n} characters: keepalived uses only the first {VRRP_PASS_MAX} "
                "('Truncating auth_pass to 8 characters'), the VRRPv2 password field size")
    if m is not None and m.implementation == "ucarp":
        return (f"{label} is {n} characters: ucarp refuses passwords of 20 characters or more "
                "('Password too long') and does not start")
    msg = (f"{label} is {n} characters: FreeBSD keeps only the first {BSD_PASS_MAX} (the rest is "
           "silently dropped), while ucarp refuses such a password and tools that use every byte "
           "compute a different key")
    if twins:
        names = ", ".join(values_label(g, h) for h in twins)
        msg += (f"; {label} and {names} differ only after character {BSD_PASS_MAX}, so FreeBSD derives "
                "the same key from both and they do authenticate each other (not a passphrase mismatch)")
    return msg


def _check_advskew_clamped(g: Group, ctx: _Ctx) -> None:
    if g.protocol != CARP:
        return
    for m in g.members:
        if m.implementation in ("ucarp", "openbsd") or m.advskew is None or not 241 <= m.advskew <= 254:
            continue
        ctx.add(CONFIG_ADVSKEW_CLAMPED,
                f"{m.host} sets advskew {m.advskew} for {g.describe()}: FreeBSD advertises at most "
                f"{CARP_MAXSKEW}, so 241-254 all behave as 240 and tie with any peer at 240 or demoted "
                "to it", g, m.origin("advskew"), {"host": m.host, "advskew": m.advskew, "advertised": 240})


def _check_order(g: Group, ctx: _Ctx) -> None:
    members = list(g.members)
    if g.protocol == CARP:
        ranks = {}
        for m in members:
            base, sent, note = _timing(g, m, ctx)
            ranks[m.host] = (256 * base + sent, f"advbase {base} advskew {sent}{note}")
        better = "advertises faster than"
        field_ = "advskew"
        tie_effect = ("on FreeBSD a master that hears an equal advert yields, so mastership is decided by "
                      "timing and may move back and forth")
    else:
        ranks = {m.host: (-g.priority_of(m), f"priority {g.priority_of(m)}") for m in members}
        better = "has a higher priority than"
        field_ = "priority"
        tie_effect = "the tie is broken by the higher IP address, not by intent"
    primary = g.intended_primary()
    by_host = {m.host: m for m in members}
    if primary is None or primary not in by_host:
        best = min(r for r, _ in ranks.values())
        top = [m for m in members if ranks[m.host][0] == best]
        if len(top) >= 2:
            last = top[-1]
            ctx.add(CONFIG_SKEW_ORDER,
                    f"no intended primary for {g.describe()}: {', '.join(m.host for m in top)} are configured "
                    f"alike ({ranks[last.host][1]}); {tie_effect}",
                    g, last.origin(field_), {"hosts": [m.host for m in top], "tie": ranks[last.host][1]},
                    cause="skew-tie")
        backups = [m for m in members if m not in top]
        p_rank = None
    else:
        p_rank = ranks[primary][0]
        backups = [m for m in members if m.host != primary]
        for m in backups:
            r, text = ranks[m.host]
            if r < p_rank:
                ctx.add(CONFIG_SKEW_ORDER,
                        f"{m.host} {better} the intended primary {primary} for {g.describe()} "
                        f"({text} vs {ranks[primary][1]}): it wins the election",
                        g, m.origin(field_), {"host": m.host, "primary": primary}, cause="skew-order")
            elif r == p_rank:
                ctx.add(CONFIG_SKEW_ORDER,
                        f"{m.host} ({text}) ties with the intended primary {primary} ({ranks[primary][1]}) "
                        f"for {g.describe()}: {tie_effect}",
                        g, m.origin(field_), {"host": m.host, "primary": primary}, cause="skew-tie")
    # backups among themselves: the order of takeover should be defined
    seen: dict[int, Member] = {}
    for m in backups:
        r = ranks[m.host][0]
        if p_rank is not None and r <= p_rank:
            continue
        if r in seen:
            ctx.add(CONFIG_SKEW_ORDER,
                    f"backups {seen[r].host} and {m.host} are configured alike for {g.describe()} "
                    f"({ranks[m.host][1]}): which one takes over from the primary is left to chance",
                    g, m.origin(field_), {"hosts": [seen[r].host, m.host]}, cause="skew-tie")
        else:
            seen[r] = m


def _check_preempt(g: Group, ctx: _Ctx) -> None:
    primary = g.intended_primary()
    m = g.member(primary) if primary else None
    if m is None:
        return
    on, origin, how = _preempt(g, m, ctx)
    if on:
        return
    vips = _fmt_vips(sorted(g.vips_of(m) or ()))
    host = ctx.inv.host(m.host)
    if how == "net.inet.carp.preempt" and host is not None and host.kind == "opnsense":
        fix = (f"clear 'Disable preempt' on {m.host} (System > High Availability > Settings, "
               "<hasync><disablepreempt>; a reboot applies it)")
        state = "'Disable preempt' is set, so OPNsense leaves net.inet.carp.preempt at 0"
    elif how == "net.inet.carp.preempt":
        fix = f"set net.inet.carp.preempt=1 in {m.host}'s sysctl.conf"
        state = "net.inet.carp.preempt is 0, the default"
    elif how == "nopreempt":
        fix = f"remove nopreempt from {m.host}'s vrrp_instance"
        state = "nopreempt is set"
    else:
        fix = f"run ucarp with --preempt on {m.host} (ifupdown: ucarp-master yes)"
        state = "ucarp runs without --preempt, the default"
    others = [x.host for x in g.members if x.host != primary]
    backup = f"the backup ({', '.join(others)})" if len(others) == 1 else f"a backup ({', '.join(others)})"
    ctx.add(CONFIG_PREEMPT,
            f"preemption is off on {primary}, the intended primary of {g.describe()} ({state}): after "
            f"{primary} comes back from a failure, {backup} keeps {vips} until it fails itself; "
            f"if {primary} should take it back: {fix}",
            g, origin, {"host": primary})


# -------------------------------------------------------------------------------------------------
# last guard: no secret value in any output
# -------------------------------------------------------------------------------------------------

def _scrub(findings: list[Finding], ctx: _Ctx) -> list[Finding]:
    values = {v for v in ctx.seen_values() if v and len(v) >= 4}
    for g in ctx.inv.groups:
        for s in [g.passphrase, *(m.passphrase for m in g.members)]:
            if s is not None and s.kind == "value":
                values.add(s.reveal())
    values = sorted((v for v in values if _secret_enough(v)), key=len, reverse=True)
    if not values:
        return findings
    for f in findings:
        for v in values:
            if v in f.message:
                f.message = f.message.replace(v, "[secret]")
        text = json.dumps(f.evidence)
        if any(json.dumps(v)[1:-1] in text for v in values):
            for v in values:
                text = text.replace(json.dumps(v)[1:-1], "[secret]")
            f.evidence = json.loads(text)
    return findings


def _scrub_text(text: str, ctx: _Ctx) -> str:
    for v in sorted({v for v in ctx.seen_values() if _secret_enough(v)}, key=len, reverse=True):
        text = text.replace(v, "[secret]")
    return text


def _secret_enough(value: str) -> bool:
    """Worth blanking out of messages: 4 characters or more, and not one of the bundled public
    defaults (config-weak-passphrase names those by entry number anyway; blanking "carp" or
    "pass" would only garble every message)."""
    return len(value) >= 4 and weak_index_of(derive_key(value.encode())) is None


def _scrub_error(e: ConfigError, ctx: _Ctx) -> None:
    e.message = _scrub_text(e.message, ctx)
