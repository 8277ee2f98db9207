"""What checking an advert concludes: a result (ok, fail, unchecked, none) and, when it does
not verify, the diagnosis of why. Results never contain a secret, only key labels."""
from __future__ import annotations


class Diagnosis:
    """Why an advert does not verify, computed once per speaker.

    kind: ``vip-set`` (a known key verifies with another VIP set: ``key``, ``vips``),
    ``passphrase`` (no known key verifies with any known VIP set or the cheap variants tried),
    ``unknown-vips`` (no VIP set known for the vhid), ``no-keys`` (no key to try at all).
    """

    __slots__ = ("kind", "message", "vhid", "key", "vips", "flavour", "weak", "weak_index", "known_vips",
                 "keys_tried", "sets_tried")

    kind: str
    message: str
    vhid: int
    key: str | None
    vips: tuple[str, ...]
    flavour: str | None
    weak: bool
    weak_index: int | None
    known_vips: tuple[tuple[str, ...], ...]
    keys_tried: int
    sets_tried: int

    def __init__(self, kind: str, message: str, vhid: int, key: str | None = None, vips: tuple[str, ...] = (),
                 flavour: str | None = None, weak: bool = False, weak_index: int | None = None,
                 known_vips: tuple[tuple[str, ...], ...] = (), keys_tried: int = 0,
                 sets_tried: int = 0) -> None:
        self.kind = kind
        self.message = message
        self.vhid = vhid
        self.key = key
        self.vips = vips
        self.flavour = flavour
        self.weak = weak
        self.weak_index = weak_index
        self.known_vips = known_vips
        self.keys_tried = keys_tried
        self.sets_tried = sets_tried

    def to_json(self) -> dict:
        return {"kind": self.kind, "message": self.message, "key": self.key,
                "vips": list(self.vips), "flavour": self.flavour, "weak": self.weak,
                "known_vips": [list(v) for v in self.known_vips],
                "keys_tried": self.keys_tried, "sets_tried": self.sets_tried}


class AuthResult:
    """Outcome of checking one advert. Results are shared between adverts: do not mutate.

    status: ``ok`` | ``fail`` | ``unchecked`` (no key has a VIP set to try) | ``none`` (not a
    CARP advert). ``key`` is a label; ``vips`` the known VIP set that matched, as a tuple (a JSON
    list; with an openbsd flavour its link-locals were not hashed); ``weak_index`` the bundled
    weak list entry when the key is a weak one (0 = empty passphrase); ``lladdr`` the MAC hashed
    by ``openbsd-lladdr``; ``diagnosis`` set for ``fail`` and ``unchecked``.
    """

    __slots__ = ("status", "key", "key_id", "vips", "flavour", "flavours", "inferred_vips", "weak",
                 "weak_index", "lladdr", "reason", "diagnosis")

    status: str
    key: str | None
    key_id: str | None             # the key's own label when ``key`` names the speaker's (an alias)
    vips: tuple[str, ...]
    flavour: str | None
    flavours: tuple[str, ...]
    inferred_vips: bool
    weak: bool
    weak_index: int | None
    lladdr: str | None
    reason: str | None
    diagnosis: Diagnosis | None

    def __init__(self, status: str, key: str | None = None, key_id: str | None = None,
                 vips: tuple[str, ...] = (), flavour: str | None = None, flavours: tuple[str, ...] = (),
                 inferred_vips: bool = False, weak: bool = False, weak_index: int | None = None,
                 lladdr: str | None = None, reason: str | None = None,
                 diagnosis: Diagnosis | None = None) -> None:
        self.status = status
        self.key = key
        self.key_id = key_id
        self.vips = vips
        self.flavour = flavour
        self.flavours = flavours
        self.inferred_vips = inferred_vips
        self.weak = weak
        self.weak_index = weak_index
        self.lladdr = lladdr
        self.reason = reason
        self.diagnosis = diagnosis

    def to_json(self) -> dict:
        """The ``auth`` object of the JSON report (design.md)."""
        return {"status": self.status, "key": self.key, "vips": list(self.vips),
                "flavour": self.flavour}


NOT_CARP = AuthResult("none", reason="not a CARP advertisement")
# an advert whose HMAC is judged again once the VIP set being inferred is known (engine.py)
PENDING = AuthResult("pending", reason="VIP set only inferred so far: judged again once it is known")
