"""The rule catalogue: every rule's stable slug, code and default severity, in one place.

Codes follow the linter convention CS + 3 digits, never reused:
CS1xx capture and decoding, CS2xx protocol and group consistency, CS3xx authentication,
CS4xx behaviour over time and intent, CS5xx configuration (lint).
Each rule has a one-page document in docs/rules/<slug>.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from carpscope.model import Finding, Severity

E, W, I = Severity.ERROR, Severity.WARNING, Severity.INFO


@dataclass(frozen=True, slots=True)
class Rule:
    slug: str
    code: str
    severity: Severity
    title: str


_RULES = [
    # capture and decoding
    Rule("malformed", "CS101", W, "Protocol-112 packet that is not a well-formed advertisement"),
    Rule("capture-truncated", "CS102", W, "Capture file damaged or cut short: reading stopped early"),
    Rule("bad-checksum", "CS103", E, "Advertisement with a wrong checksum (receivers drop it)"),
    Rule("bad-ttl", "CS104", E, "Advertisement with TTL/hop limit below 255 (receivers drop it)"),
    Rule("vrrp3-legacy-checksum", "CS105", I, "VRRPv3/IPv4 checksum computed without the pseudo-header, or with 224.0.0.18"),
    Rule("nonstandard-field", "CS106", W, "A header field outside the values the standard or implementations send"),
    Rule("unexpected-source-mac", "CS107", I, "Advertisement not sent from the virtual MAC of its group"),
    # protocol and group consistency
    Rule("vhid-conflict", "CS201", E, "One VHID/VRID on one segment used by unrelated groups"),
    Rule("skew-tie", "CS202", W, "Speakers of a group advertise identical timing/priority"),
    Rule("skew-order", "CS203", W, "The intended primary does not advertise the shortest interval / highest priority"),
    Rule("advbase-mismatch", "CS204", W, "Speakers of a group use different advertisement intervals"),
    Rule("demoted", "CS205", W, "A speaker advertises a demoted skew or demote count"),
    Rule("bow-out", "CS206", I, "A master bowed out (advbase = advskew = 255)"),
    Rule("vrrp-address-mismatch", "CS207", E, "VRRP speakers of one VRID advertise different address lists"),
    Rule("vrrp-version-mix", "CS208", W, "VRRPv2 and VRRPv3 advertised for the same VRID"),
    Rule("priority-owner-conflict", "CS209", E, "Two VRRP speakers claim to own the addresses (priority 255)"),
    Rule("speaker-limit", "CS210", W, "Too many distinct speakers or groups: tracking capped"),
    # authentication
    Rule("hmac-mismatch", "CS301", E, "CARP HMAC verifies with no known passphrase and VIP set"),
    Rule("vip-set-mismatch", "CS302", E, "CARP HMAC verifies only with a different VIP set"),
    Rule("passphrase-mismatch", "CS303", E, "Speakers of one VHID verify under different passphrases"),
    Rule("hmac-unchecked", "CS304", I, "No passphrase known for a VHID: HMAC not checked"),
    Rule("weak-passphrase", "CS305", W, "CARP passphrase is a default or documentation example"),
    Rule("vrrp-cleartext-auth", "CS306", W, "VRRPv2 simple password authentication: the password is readable on the wire"),
    Rule("vrrp-auth-mismatch", "CS307", E, "Speakers of one VRID send different VRRPv2 authentication"),
    # behaviour over time and intent
    Rule("split-brain", "CS401", E, "Two or more masters advertise the same group at once"),
    Rule("master-gap", "CS402", W, "No master advertised for longer than the master-down interval"),
    Rule("flapping", "CS403", W, "Mastership changes too often"),
    Rule("counter-replay", "CS404", W, "An identical CARP advertisement (counter and HMAC) seen again"),
    Rule("unexpected-master", "CS405", W, "A host other than the intended primary is master"),
    Rule("unknown-speaker", "CS406", W, "An address not in the inventory advertises a known group"),
    Rule("missing-group", "CS407", W, "An intended group is never advertised"),
    # configuration (lint)
    Rule("config-parse-error", "CS501", E, "A configuration file cannot be parsed"),
    Rule("config-pass-mismatch", "CS502", E, "Hosts of one group are configured with different passphrases"),
    Rule("config-vip-mismatch", "CS503", E, "Hosts of one group are configured with different VIP sets"),
    Rule("config-skew-order", "CS504", W, "Backup advskew/priority not strictly ordered behind the primary"),
    Rule("config-vhid-reuse", "CS505", E, "One VHID/VRID used for different groups on one segment"),
    Rule("config-advskew-clamped", "CS506", W, "advskew 241-254 is advertised as 240 by FreeBSD"),
    Rule("config-pass-truncated", "CS507", W, "Passphrase longer than 19 characters (BSD truncates, ucarp refuses)"),
    Rule("config-missing-pass", "CS508", W, "CARP group configured without a passphrase"),
    Rule("config-preempt", "CS509", I, "Preemption off: the primary will not take back its VIP after returning"),
]

RULES: dict[str, Rule] = {r.slug: r for r in _RULES}
BY_CODE: dict[str, Rule] = {r.code: r for r in _RULES}
assert len(RULES) == len(BY_CODE) == len(_RULES), "duplicate slug or code"

DOCS_DIR = Path(__file__).resolve().parent.parent.parent / "docs" / "rules"


def lookup(name: str) -> Rule | None:
    """A rule by slug or by code (case-insensitive for codes)."""
    return RULES.get(name) or BY_CODE.get(name.upper())


def finding(slug: str, message: str, **kw) -> Finding:
    """Build a Finding for a catalogued rule with its code and default severity."""
    rule = RULES[slug]
    return Finding(rule=slug, code=rule.code, severity=rule.severity, message=message, **kw)


def doc_path(rule: Rule) -> Path:
    return DOCS_DIR / f"{rule.slug}.md"
