"""SHA-1 and SHA-256, from CPython's own modules (``_sha1``; ``_sha256``, ``_sha2`` from 3.12):
importing ``hashlib`` loads OpenSSL, about 3 ms of every start for a handful of small digests
(key derivation, fingerprints, the HMAC midstates). ``hashlib`` where they are missing."""
from __future__ import annotations

import importlib


def _constructor(name: str, modules: tuple[str, ...]):
    for m in modules:
        try:
            return getattr(importlib.import_module(m), name)
        except (ImportError, AttributeError):
            pass
    return getattr(importlib.import_module("hashlib"), name)


sha1 = _constructor("sha1", ("_sha1",))
sha256 = _constructor("sha256", ("_sha256", "_sha2"))
