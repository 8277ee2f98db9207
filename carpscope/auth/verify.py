"""Verifying CARP adverts against the keyring, and explaining why one does not verify."""
from __future__ import annotations

from itertools import combinations

from carpscope.auth.hmac import OPENBSD_LLADDR, HmacContext, KeyPads, flavour_prefixes
from carpscope.auth.keyring import INFERRED, Keyring, VipEntry
from carpscope.auth.keys import Key, describe_weak, weak_keys
from carpscope.auth.vips import VipSet
from carpscope.auth.results import NOT_CARP, AuthResult, Diagnosis
from carpscope.model import CARP, Advert
from carpscope.track import Speaker


# --------------------------------------------------------------------------- verifier

def _is_vmac(mac: str) -> bool:
    m = mac.lower()
    return m.startswith(("00:00:5e:00:", "01:00:5e:00:01:"))


def _lladdr_of(advert: Advert) -> bytes | None:
    """The advert's Ethernet source as a candidate OpenBSD lladdr (None for virtual MACs)."""
    mac = advert.eth_src
    if not mac or _is_vmac(mac):
        return None
    try:
        b = bytes.fromhex(mac.replace(":", "").replace("-", ""))
    except ValueError:
        return None
    return b if len(b) == 6 and not b[0] & 1 else None


def _candidate_sets(known: list[VipSet], limit: int = 512) -> list[VipSet]:
    """Cheap alternatives to the known VIP sets of a vhid, nearest first.

    The union of all known sets; each known set minus one address and plus one address of the
    union; each single address; and all subsets of size 2 and 3 when the union has ≤ 8 addresses.
    """
    union_addrs: list[str] = []
    for vs in known:
        for a in vs.addrs:
            if a not in union_addrs:
                union_addrs.append(a)
    out: list[VipSet] = []
    seen = set(known)

    def push(addrs):
        if len(out) >= limit or not addrs:
            return
        vs = VipSet.of(addrs)
        if vs not in seen and len(vs):
            seen.add(vs)
            out.append(vs)

    push(union_addrs)
    for vs in known:
        for a in vs.addrs:
            push([x for x in vs.addrs if x != a])
        for a in union_addrs:
            if a not in vs.addrs:
                push(list(vs.addrs) + [a])
    for a in union_addrs:
        push([a])
    if len(union_addrs) <= 8:
        for r in (2, 3):
            for combo in combinations(union_addrs, r):
                push(combo)
    return out


def fmt_sets(sets) -> str:
    return ", ".join("{" + ", ".join(s) + "}" for s in sets) or "none"


class _DiagEntry:
    __slots__ = ("generation", "diagnosis", "pads", "prefix", "reruns")

    def __init__(self, generation, diagnosis, pads=None, prefix=None, reruns=0):
        self.generation, self.diagnosis, self.pads, self.prefix, self.reruns = (
            generation, diagnosis, pads, prefix, reruns)


class Verifier:
    """Verifies every CARP advert against the keyring (and the bundled weak keys).

    Per speaker (segment, src, eth_src, vhid) the last matching context is tried first; only
    when it fails is the full candidate list searched, so a tampered advert in a steady stream
    still fails. Diagnosis of a failing speaker runs once and is reused while it stays valid.
    Memory is bounded by speakers and VHIDs, not packets.
    """

    MAX_SPEAKERS = 8192
    MAX_CONTEXT_LISTS = 4096
    MAX_DIAG_RERUNS = 4

    def __init__(self, keyring: Keyring, try_weak: bool = True):
        self.keyring = keyring
        self.try_weak = try_weak
        self._generation = -1
        self._pads: dict[str, KeyPads] = {}
        self._keys: list[Key] = []
        self._aliases: dict[str, list[Key]] = {}     # label -> every key with that secret
        self._attributed: dict[tuple[int, str], AuthResult] = {}
        self._contexts: dict[tuple, list[HmacContext]] = {}
        self._good: dict[tuple, HmacContext] = {}
        self._diag: dict[tuple, _DiagEntry] = {}
        self._fail_results: dict[tuple, AuthResult] = {}
        self._unchecked: dict[tuple, AuthResult] = {}
        self.n_ok = self.n_fail = self.n_unchecked = self.n_fast = self.n_searches = self.n_diagnoses = 0

    @property
    def stats(self) -> dict[str, int]:
        """What was verified, how: ok, fail, unchecked, fast (the last good context matched),
        searches (all candidates tried), diagnoses."""
        return {"ok": self.n_ok, "fail": self.n_fail, "unchecked": self.n_unchecked, "fast": self.n_fast,
                "searches": self.n_searches, "diagnoses": self.n_diagnoses}

    def __repr__(self) -> str:
        return f"<Verifier {self.keyring!r} try_weak={self.try_weak}>"

    # caches
    def _sync(self) -> None:
        if self._generation == self.keyring.generation:
            return
        self._generation = self.keyring.generation
        keys: list[Key] = []
        first: dict[bytes, Key] = {}
        self._aliases = {}
        for k in self.keyring.keys() + (list(weak_keys()) if self.try_weak else []):
            f = first.get(k._raw)
            if f is None:                     # one secret is tried once, under its first label ...
                first[k._raw] = k
                keys.append(k)
            elif k.origin != "weak":          # ... and attributed per speaker (``_attribute``)
                self._aliases.setdefault(f.label, [f]).append(k)
        self._keys = keys
        self._attributed = {}
        old = self._pads
        self._pads = {k.label: (old[k.label] if k.label in old and old[k.label].key is k else KeyPads(k))
                      for k in keys}
        self._contexts.clear()
        self._good.clear()
        self._diag.clear()
        self._fail_results.clear()
        self._unchecked.clear()

    def keys(self) -> list[Key]:
        self._sync()
        return list(self._keys)

    def _build(self, vhid: int, entries: list[VipEntry], lladdr: bytes | None) -> list[HmacContext]:
        out, seen = [], set()
        prefixes = [(e, flavour_prefixes(vhid, e.vips, lladdr)) for e in entries]   # the same for every key
        for k in self._keys:
            pads = self._pads[k.label]
            for e, flavoured in prefixes:
                for flavours, prefix in flavoured:
                    if lladdr and flavours != (OPENBSD_LLADDR,):
                        continue                  # the plain flavours are in the base list
                    if (k.label, prefix) in seen:
                        continue
                    seen.add((k.label, prefix))
                    out.append(HmacContext(pads, vhid, e.vips, flavours, prefix, lladdr, e.origin, None))
        return out

    @staticmethod
    def _ok(ctx: HmacContext) -> AuthResult:
        """What a match of ``ctx`` concludes (made on its first match: of the candidates of a
        group, most never match)."""
        result = ctx.result
        if result is None:
            k, lladdr = ctx.key, ctx.lladdr
            result = ctx.result = AuthResult(
                "ok", key=k.label, vips=ctx.vips.addrs, flavour="|".join(ctx.flavours), flavours=ctx.flavours,
                inferred_vips=ctx.vip_origin == INFERRED, weak=k.weak, weak_index=k.weak_index,
                lladdr=lladdr.hex(":") if lladdr else None)
        return result

    def contexts(self, segment: str, vhid: int, lladdr: bytes | None = None) -> list[HmacContext]:
        """Candidate contexts for a vhid on a segment (plus openbsd-lladdr ones for ``lladdr``)."""
        self._sync()
        ck = (segment, vhid, lladdr)
        ctxs = self._contexts.get(ck)
        if ctxs is None:
            entries = self.keyring.vip_entries(vhid, segment)
            ctxs = self._build(vhid, entries, None) if lladdr is None else self._build(vhid, entries, lladdr)
            if len(self._contexts) >= self.MAX_CONTEXT_LISTS:
                self._contexts.clear()
            self._contexts[ck] = ctxs
        return ctxs

    def verify(self, advert: Advert, holder: Speaker | None = None) -> AuthResult:
        """Check one advert; every advert is checked (no result is reused without a hash).

        The context that verified the speaker's last advert is tried first: kept on ``holder``
        (the tracker's speaker record) when given, else in a bounded table of this verifier."""
        if advert.protocol != CARP or advert.md is None or advert.counter is None:
            return NOT_CARP
        self._sync()
        counter, md = advert.counter, advert.md
        good: HmacContext | None
        if holder is not None:
            good = holder.hmac if holder.hmac_generation == self._generation else None
        else:
            good = self._good.get((advert.segment, advert.src, advert.eth_src, advert.vhid))
        if good is not None and good.matches(counter, md):
            self.n_fast += 1
            self.n_ok += 1
            if holder is not None and holder.hmac_result is not None:
                return holder.hmac_result
            result = self._ok(good)
            return result if not self._aliases else self._attribute(result, advert.src, advert.vhid)
        base = self.contexts(advert.segment, advert.vhid)
        if not base or not self._keys:
            self.n_unchecked += 1
            return self._unchecked_result(advert)
        self.n_searches += 1
        lladdr = _lladdr_of(advert)
        extra = self.contexts(advert.segment, advert.vhid, lladdr) if lladdr else []
        for ctx in (*base, *extra):
            if ctx is not good and ctx.matches(counter, md):
                result = self._ok(ctx)
                if self._aliases:
                    result = self._attribute(result, advert.src, advert.vhid)
                if holder is not None:
                    holder.hmac, holder.hmac_generation, holder.hmac_result = ctx, self._generation, result
                else:
                    if len(self._good) >= self.MAX_SPEAKERS:
                        self._good.clear()
                    self._good[(advert.segment, advert.src, advert.eth_src, advert.vhid)] = ctx
                self.n_ok += 1
                return result
        speaker = (advert.segment, advert.src, advert.eth_src, advert.vhid)
        diag = self._diagnosis_for(speaker, advert)
        if all(k.origin == "weak" for k in self._keys) and diag.kind != "vip-set":
            # only the bundled defaults were tried and none fits any VIP variant: that says
            # nothing about the real key, so the advert is unchecked, not failed
            self.n_unchecked += 1
            return self._unchecked_result(advert)
        self.n_fail += 1
        res = self._fail_results.get(speaker)
        if res is None or res.diagnosis is not diag:
            res = AuthResult("fail", diagnosis=diag, reason=diag.message)
            if len(self._fail_results) >= self.MAX_SPEAKERS:
                self._fail_results.clear()
            self._fail_results[speaker] = res
        return res

    def _attribute(self, result: AuthResult, src: str, vhid: int) -> AuthResult:
        """The label of a verified advert when several labels hold its secret (two hosts'
        configs, or two VHIDs, with one passphrase): the label configured on the sending host
        for this VHID when the configs say which, else every candidate ("a | b")."""
        keys = self._aliases.get(result.key or "")
        if not keys:
            return result
        here = [k for k in keys if vhid in k.vhids] or keys
        mine = [k.label for k in here if src in k.owners]
        label = mine[0] if len(mine) == 1 else " | ".join(mine or [k.label for k in here])
        ck = (id(result), label)
        out = self._attributed.get(ck)
        if out is None:
            out = AuthResult(result.status, key=label, key_id=result.key, vips=result.vips, flavour=result.flavour,
                             flavours=result.flavours, inferred_vips=result.inferred_vips, weak=result.weak,
                             weak_index=result.weak_index, lladdr=result.lladdr, reason=result.reason,
                             diagnosis=result.diagnosis)
            if len(self._attributed) >= self.MAX_SPEAKERS:
                self._attributed.clear()
            self._attributed[ck] = out
        return out

    def _unchecked_result(self, advert: Advert) -> AuthResult:
        ck = (advert.segment, advert.vhid)
        res = self._unchecked.get(ck)
        if res is None:
            diag = self._unchecked_diag(advert.vhid, advert.segment)
            res = AuthResult("unchecked", reason=diag.message, diagnosis=diag)
            if len(self._unchecked) >= self.MAX_CONTEXT_LISTS:
                self._unchecked.clear()
            self._unchecked[ck] = res
        return res

    # diagnosis
    def _diagnosis_for(self, speaker: tuple, advert: Advert) -> Diagnosis:
        entry = self._diag.get(speaker)
        if entry is not None:
            if entry.pads is None or entry.reruns >= self.MAX_DIAG_RERUNS:
                return entry.diagnosis
            if entry.pads.digest(entry.prefix, advert.counter) == advert.md:
                return entry.diagnosis
        reruns = entry.reruns + 1 if entry is not None else 0
        diag, pads, prefix = self._diagnose(advert)
        if len(self._diag) >= self.MAX_SPEAKERS and speaker not in self._diag:
            self._diag.pop(next(iter(self._diag)))
        self._diag[speaker] = _DiagEntry(self._generation, diag, pads, prefix, reruns)
        return diag

    def diagnose(self, advert: Advert) -> Diagnosis:
        """Explain why ``advert`` does not verify (uncached; ``verify`` caches per speaker)."""
        self._sync()
        return self._diagnose(advert)[0]

    def _unchecked_diag(self, vhid: int, segment: str) -> Diagnosis:
        """Why nothing can be tried: no key at all, or no VIP set for this vhid here."""
        every = tuple(e.vips.addrs for e in self.keyring.vip_entries(vhid, all_segments=True))
        here = self.keyring.vip_entries(vhid, segment)
        if here and self._keys and all(k.origin == "weak" for k in self._keys):
            return Diagnosis("no-keys", f"no passphrase was given and none of the bundled default "
                             f"passphrases verifies vhid {vhid}: the HMAC is not checked (give "
                             "--passphrase-file or $CARPSCOPE_PASSPHRASES)", vhid, known_vips=every)
        if not self._keys:
            return Diagnosis("no-keys", f"no passphrase is known: the HMAC of vhid {vhid} cannot be "
                             "checked (give --passphrase-file or $CARPSCOPE_PASSPHRASES)", vhid,
                             known_vips=every)
        elsewhere = f" on {segment} (VIP sets are known only for other segments)" if every else ""
        return Diagnosis("unknown-vips", f"no VIP set is known for vhid {vhid}{elsewhere}: the HMAC "
                         f"covers the VIPs, so it cannot be checked (give --vip {vhid}=ADDR[,ADDR...] "
                         "or an inventory)", vhid, known_vips=every)

    def _diagnose(self, advert: Advert):
        vhid = advert.vhid
        self.n_diagnoses += 1
        local = [e.vips for e in self.keyring.vip_entries(vhid, advert.segment)]
        every = [e.vips for e in self.keyring.vip_entries(vhid, all_segments=True)]
        known = list(dict.fromkeys(local + every))
        known_txt = tuple(vs.addrs for vs in known)
        if not self._keys or not known:
            return self._unchecked_diag(vhid, advert.segment), None, None
        lladdr = _lladdr_of(advert)
        candidates = [vs for vs in every if vs not in local] + _candidate_sets(known)
        for vs in candidates:
            for k in self._keys:
                pads = self._pads[k.label]
                for flavours, prefix in flavour_prefixes(vhid, vs, lladdr):
                    if pads.digest(prefix, advert.counter or b"") == advert.md:
                        return self._vip_diag(vhid, k, vs, flavours, known_txt, len(candidates)), pads, prefix
        msg = (f"no known passphrase ({len(self._keys)} tried) verifies vhid {vhid} with the known "
               f"VIP set(s) {fmt_sets(known_txt)} or any of {len(candidates)} subsets/supersets tried")
        return Diagnosis("passphrase", msg, vhid, known_vips=known_txt, keys_tried=len(self._keys),
                         sets_tried=len(candidates)), None, None

    def _vip_diag(self, vhid, key, vs, flavours, known_txt, tried) -> Diagnosis:
        flavour = "|".join(flavours)
        who = (describe_weak(key.weak_index) + f" (key {key.label})") if key.weak else f"passphrase `{key.label}`"
        msg = (f"verifies with {who} if the VIP set of vhid {vhid} is {vs} ({flavour}); "
               f"known VIP set(s): {fmt_sets(known_txt)}")
        return Diagnosis("vip-set", msg, vhid, key=key.label, vips=vs.addrs, flavour=flavour,
                         weak=key.weak, weak_index=key.weak_index, known_vips=known_txt,
                         keys_tried=len(self._keys), sets_tried=tried)
