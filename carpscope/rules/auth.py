"""Authentication findings: per speaker, what its adverts verified with (or why not), counted on
the tracker's speaker record as they come (``tally``) and turned into findings per group at the
end (passphrase and VIP-set mismatches, failing HMACs, weak passphrases, unchecked groups,
VRRPv2 cleartext and mismatched authentication)."""
from __future__ import annotations

from carpscope.auth.keys import describe_weak
from carpscope.auth.results import AuthResult, Diagnosis
from carpscope.auth.verify import fmt_sets
from carpscope.digests import sha256
from carpscope.model import CARP, VRRP2, Advert, Finding
from carpscope.rules import ERROR, INFO, WARNING, Rule, declare
from carpscope.track import Group, Speaker

HMAC_MISMATCH = declare("hmac-mismatch", "CS301", ERROR,
                        "CARP HMAC verifies with no known passphrase and VIP set", __name__)
VIP_SET_MISMATCH = declare("vip-set-mismatch", "CS302", ERROR,
                           "CARP HMAC verifies only with a different VIP set", __name__)
PASSPHRASE_MISMATCH = declare("passphrase-mismatch", "CS303", ERROR,
                              "Speakers of one VHID verify under different passphrases", __name__)
HMAC_UNCHECKED = declare("hmac-unchecked", "CS304", INFO,
                         "No passphrase known for a VHID: HMAC not checked", __name__)
WEAK_PASSPHRASE = declare("weak-passphrase", "CS305", WARNING,
                          "CARP passphrase is a default or documentation example", __name__)
VRRP_CLEARTEXT_AUTH = declare("vrrp-cleartext-auth", "CS306", WARNING,
                              "VRRPv2 simple password authentication: the password is readable on the wire", __name__)
VRRP_AUTH_MISMATCH = declare("vrrp-auth-mismatch", "CS307", ERROR,
                             "Speakers of one VRID send different VRRPv2 authentication", __name__)


# --------------------------------------------------------------------------- findings

_SAMPLE = 10


def _fingerprint(data: bytes | None) -> bytes:
    """Internal comparison token for VRRP auth data; never reported."""
    return sha256(data or b"").digest()


MAX_VARIANTS = 8


def tally(sp: Speaker, a: Advert, result: AuthResult | None) -> None:
    """Count one advert's authentication on its speaker (the tracker's record): the CARP
    verdict (``result``) or the VRRPv2 authentication it carries. State per speaker, samples
    bounded, never per packet."""
    if result is not None:
        st = result.status
        if st == "ok":
            sp.auth_ok += 1
            if sp.auth_ok == 1:
                sp.auth_first_ok = a.ts
            if result is sp.auth_result:
                # the same verdict as its last advert (results are shared): one count more
                sp.auth_result_cell[0] += 1
                return
            sp.auth_result = result
            sp.auth_key, sp.auth_vips, sp.auth_flavour = result.key, tuple(result.vips), result.flavour
            sp.auth_key_id = result.key_id or result.key
            sp.auth_inferred, sp.auth_weak = result.inferred_vips, result.weak
            k = (sp.auth_key_id, sp.auth_vips, result.flavour, result.weak_index)
            cell = sp.auth_ok_by.get(k)
            if cell is None:
                cell = [0]
                if len(sp.auth_ok_by) < MAX_VARIANTS:
                    sp.auth_ok_by[k] = cell
            cell[0] += 1
            sp.auth_result_cell = cell
        elif st == "fail":
            sp.auth_fail += 1
            sp.auth_last_fail = a.ts
            if len(sp.fail_frames) < _SAMPLE:
                sp.fail_frames.append(a.frame)
            if result.diagnosis is not None:
                sp.auth_diagnosis = result.diagnosis
        elif st == "unchecked":
            sp.auth_unchecked_n += 1
            sp.auth_unchecked = result.reason
            sp.auth_unchecked_kind = result.diagnosis.kind if result.diagnosis is not None else None
    elif a.protocol == CARP:
        sp.auth_unchecked_n += 1
    elif a.protocol == VRRP2:
        t = a.auth_type
        sp.vrrp_auth = (t, sha256(a.auth_data or b"").hexdigest()[:12] if t else None)
        if t is not None:
            variant = (t, _fingerprint(a.auth_data) if t == 1 else b"")
            if variant in sp.vrrp_variants or len(sp.vrrp_variants) < MAX_VARIANTS:
                sp.vrrp_variants[variant] = sp.vrrp_variants.get(variant, 0) + 1
            if t == 1 and len(sp.vrrp_frames) < _SAMPLE:
                sp.vrrp_frames.append(a.frame)


class _View:
    """What the auth rules read of one speaker (built at report time from its record)."""

    def __init__(self, g: Group, sp: Speaker) -> None:
        self.segment, self.protocol, self.vhid, self.family = g.segment, sp.protocol, g.vhid, g.family
        self.src, self.eth_src = sp.ip, sp.mac
        self.first_seen, self.last_seen, self.adverts = sp.first, sp.last, sp.adverts
        self.ok, self.fail, self.unchecked = sp.auth_ok, sp.auth_fail, sp.auth_unchecked_n
        self.frames, self.fail_frames = sp.frames, sp.fail_frames
        self.first_ok, self.last_fail = sp.auth_first_ok, sp.auth_last_fail
        self.key_id, self.key_label = sp.auth_key_id, sp.auth_key
        self.ok_by = {k: cell[0] for k, cell in sp.auth_ok_by.items()}
        self.diagnosis: Diagnosis | None = sp.auth_diagnosis
        self.unchecked_reason = sp.auth_unchecked
        self.auth: dict = sp.vrrp_variants
        self.auth_frames = sp.vrrp_frames

    def label(self, key_id: str | None) -> str | None:
        """How this speaker's key is named: the label attributed to it (its host's, when several
        labels hold one secret), the key's own label otherwise."""
        return self.key_label if key_id is not None and key_id == self.key_id else key_id

    def best_ok(self):
        return max(self.ok_by.items(), key=lambda kv: kv[1])[0] if self.ok_by else None

    def effective(self):
        """(key label or None, vips or None, flavour, weak_index) this speaker appears to use."""
        b = self.best_ok()
        if b is not None:
            return b
        d = self.diagnosis
        if self.fail and d is not None and d.kind == "vip-set":
            return (d.key, d.vips, d.flavour, d.weak_index)
        if self.fail:
            return (None, None, None, None)
        return None


def auth_findings(groups: list[Group]) -> list[Finding]:
    """The authentication findings of every group (CARP HMACs, VRRPv2 authentication)."""
    out: list[Finding] = []
    for g in sorted(groups, key=lambda g: (g.segment, g.protocol, g.vhid)):
        # CARP HMACs; VRRPv2 authentication (VRRPv3 has none: its speakers of a mixed VRID are left out)
        sps = sorted((_View(g, sp) for sp in g.speakers.values() if sp.protocol in (CARP, VRRP2)),
                     key=lambda s: (s.first_seen, s.src))
        if sps:
            out += _carp_findings(sps) if g.protocol == CARP else _vrrp_findings(sps)
    return out


def _speaker_evidence(sp: _View) -> dict:
    if sp.protocol != CARP:
        return {"ip": sp.src, "mac": sp.eth_src, "family": sp.family, "adverts": sp.adverts,
                "auth_types": sorted({t for t, _ in sp.auth})}
    eff = sp.effective()
    d = sp.diagnosis
    return {"ip": sp.src, "mac": sp.eth_src, "family": sp.family, "adverts": sp.adverts,
            "ok": sp.ok, "fail": sp.fail, "unchecked": sp.unchecked,
            "key": eff[0] if eff else None,
            "vips": list(eff[1]) if eff and eff[1] is not None else None,
            "flavour": eff[2] if eff else None,
            "diagnosis": d.to_json() if (d is not None and sp.fail) else None}


def _finding(rule: Rule, message, sps, frames, cause=None, **evidence):
    first = min(s.first_seen for s in sps)
    last = max(s.last_seen for s in sps)
    ev = {"speakers": [_speaker_evidence(s) for s in sps]}
    ev.update(evidence)
    return rule.finding(message, protocol=sps[0].protocol, vhid=sps[0].vhid,
                             segment=sps[0].segment, first_seen=first, last_seen=last,
                             packets=sorted(set(frames))[:_SAMPLE], evidence=ev, cause=cause)


def _failing_first(sps: list[_View]) -> list[int]:
    """Sample frames: the failing adverts when there are any (they are the evidence)."""
    failing = [f for s in sps for f in s.fail_frames]
    return failing or [f for s in sps for f in s.frames]


def _set_txt(vips) -> str:
    return "{" + ", ".join(vips) + "}"


def _carp_findings(sps: list[_View]) -> list:
    out = []
    vhid, seg = sps[0].vhid, sps[0].segment
    where = f"vhid {vhid} on {seg}"
    eff = {s.src: s.effective() for s in sps}
    judged = [s for s in sps if eff[s.src] is not None]
    known_sets: list = []
    for s in sps:
        if s.diagnosis is not None:
            known_sets = [list(v) for v in s.diagnosis.known_vips]
            break

    # passphrase-mismatch: speakers of the group verify under different keys (None = no key)
    labels = {eff[s.src][0] for s in judged}
    pp_covered: set[str] = set()
    if len(judged) >= 2 and len(labels) >= 2 and labels != {None}:
        parts = [f"{s.src} with " + (f"`{s.label(eff[s.src][0])}`" if eff[s.src][0] else "no known passphrase")
                 for s in judged]
        frames = _failing_first(judged)
        out.append(_finding(PASSPHRASE_MISMATCH,
                            f"speakers of {where} verify under different passphrases: " + "; ".join(parts),
                            judged, frames, cause="passphrase",
                            key_labels=sorted({s.label(eff[s.src][0]) or "" for s in judged} - {""})))
        pp_covered = {s.src for s in judged if eff[s.src][0] is None and not s.ok}

    # vip-set-mismatch: a known key verifies only with another VIP set than configured / others use
    vip_users = [s for s in judged if eff[s.src][1] is not None]
    sets = {tuple(eff[s.src][1]) for s in vip_users}
    diag_vip = [s for s in vip_users if not s.ok and s.diagnosis is not None and s.diagnosis.kind == "vip-set"]
    if diag_vip or len(sets) >= 2:
        parts = [f"{s.src} uses {_set_txt(eff[s.src][1])}" + (f" (key `{s.label(eff[s.src][0])}`)" if eff[s.src][0] else "")
                 for s in vip_users]
        msg = f"speakers of {where} hash different VIP sets: " + "; ".join(parts)
        if known_sets:
            msg += f"; known/configured VIP set(s): {fmt_sets(known_sets)}"
        frames = _failing_first(vip_users)
        flav = sorted({eff[s.src][2] for s in vip_users if eff[s.src][2]})
        out.append(_finding(VIP_SET_MISMATCH, msg, vip_users, frames, cause="vip-set",
                            vips={s.src: list(eff[s.src][1]) for s in vip_users},
                            known_vips=known_sets, flavour=flav[0] if len(flav) == 1 else flav))

    # hmac-mismatch: adverts that verify with nothing known (and are not explained above)
    for s in sps:
        if not s.fail or s.src in pp_covered:
            continue
        if not s.ok and s.diagnosis is not None and s.diagnosis.kind == "vip-set":
            continue
        if s.ok and s.last_fail < s.first_ok:
            good = s.best_ok()
            msg = (f"the first {s.fail} of {s.adverts} adverts from {s.src} ({where}) verify with nothing "
                   f"known, every later one with `{s.label(good[0])}` and VIP set {_set_txt(good[1])}: the passphrase "
                   "or the VIP set changed during the capture (a reconfiguration), or the adverts came "
                   "before anything revealed the VIP set in use")
        elif s.ok:
            good = s.best_ok()
            msg = (f"{s.fail} of {s.adverts} adverts from {s.src} ({where}) verify with nothing known, "
                   f"between others that verify with `{s.label(good[0])}`: forged or corrupted adverts, a second "
                   "sender using this address, or a passphrase/VIP change back and forth")
        else:
            why = s.diagnosis.message if s.diagnosis is not None else "no known key and VIP set verify"
            msg = f"adverts from {s.src} ({where}) verify with no known passphrase and VIP set: {why}"
        out.append(_finding(HMAC_MISMATCH, msg, [s], s.fail_frames, cause="auth"))

    # weak-passphrase
    weak = [s for s in judged if eff[s.src][3] is not None]
    if weak:
        idx = sorted({eff[s.src][3] for s in weak})
        what = " and ".join(describe_weak(i) for i in idx)
        msg = f"{', '.join(s.src for s in weak)} ({where}) authenticate with {what}"
        out.append(_finding(WEAK_PASSPHRASE, msg, weak, [f for s in weak for f in s.frames],
                            cause="passphrase", weak_entries=idx,
                            key_labels=sorted({s.label(eff[s.src][0]) or "" for s in weak})))

    # hmac-unchecked: nothing in the group could be checked
    if all(not s.ok and not s.fail for s in sps) and any(s.unchecked for s in sps):
        reason = next((s.unchecked_reason for s in sps if s.unchecked_reason), "no key or VIP set known")
        out.append(_finding(HMAC_UNCHECKED, f"CARP HMAC of {where} not checked: {reason}", sps,
                            [f for s in sps for f in s.frames]))
    return out


def _vrrp_findings(sps: list[_View]) -> list:
    out = []
    vrid, seg = sps[0].vhid, sps[0].segment
    where = f"VRID {vrid} on {seg}"
    variant_no: dict[bytes, int] = {}
    for s in sps:
        for (t, fp) in s.auth:
            if t == 1 and fp not in variant_no:
                variant_no[fp] = len(variant_no) + 1

    def describe(s: _View) -> str:
        parts = []
        for (t, fp) in s.auth:
            parts.append(f"type {t} (simple password #{variant_no[fp]})" if t == 1 else f"type {t}")
        return f"{s.src}: " + ", ".join(parts)

    clear = [s for s in sps if any(t == 1 for t, _ in s.auth)]
    if clear:
        msg = (f"{', '.join(s.src for s in clear)} ({where}) use VRRPv2 simple password "
               "authentication (auth type 1): the password is sent in clear text in every advert "
               "and protects against nothing")
        out.append(_finding(VRRP_CLEARTEXT_AUTH, msg, clear, [f for s in clear for f in s.auth_frames],
                            cause="auth", auth_types={s.src: sorted({t for t, _ in s.auth}) for s in clear},
                            password_variants=len(variant_no)))
    with_auth = [s for s in sps if s.auth]
    variants = {k for s in with_auth for k in s.auth}
    if len(with_auth) >= 1 and len(variants) >= 2:
        msg = (f"speakers of {where} send different VRRPv2 authentication ("
               + "; ".join(describe(s) for s in with_auth)
               + "): receivers drop adverts whose auth type or password differs from theirs")
        out.append(_finding(VRRP_AUTH_MISMATCH, msg, with_auth,
                            [f for s in with_auth for f in (s.auth_frames or s.frames)], cause="auth",
                            auth={s.src: [{"type": t, "variant": variant_no.get(fp)} for t, fp in s.auth]
                                  for s in with_auth}))
    return out
