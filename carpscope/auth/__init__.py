"""CARP authentication: keys, VIP sets, HMAC flavours, the keyring, verification and diagnosis.

The CARP HMAC (protocol.md §2) is plain HMAC-SHA1 with a 20-byte key over

    0x02 ‖ 0x01 ‖ [lladdr, 6 bytes] ‖ vhid ‖ sorted IPv4 VIPs ‖ sorted IPv6 VIPs ‖ counter

where the VIP set is *not* in the packet: it must come from configuration or be inferred.

Flavours (how the sender builds the message)
---------------------------------------------
``freebsd``         IPv4 numerically sorted, IPv6 sorted by bytes after clearing bytes 2-3 of
                    scope-embedded (link-local) addresses, duplicates once, link-locals included.
``openbsd``         as freebsd but scope-embedded IPv6 addresses left out (HMAC_NOV6LL, which
                    is what OpenBSD *sends*; its receivers also accept the freebsd form).
``ucarp``           exactly one IPv4 address and nothing else.
``openbsd-lladdr``  openbsd plus the 6-byte interface MAC between type and vhid (an OpenBSD leader
                    vhost with a custom ``lladdr``); tried with the advert's Ethernet source when
                    that is not a virtual MAC, since OpenBSD sends from the carp interface's MAC.

Several flavours often produce the *same* message (one IPv4 VIP: all three; no link-local:
freebsd and openbsd). A match therefore reports every flavour that produces that message:
``AuthResult.flavours`` is the tuple in the fixed order freebsd, openbsd, ucarp, openbsd-lladdr,
and ``AuthResult.flavour`` is the same joined with ``|`` (``"freebsd|openbsd|ucarp"``). A single
name (``"freebsd"``, ``"openbsd"``) means the capture really tells the implementations apart.

Speed
-----
As the kernels do, the inner SHA-1 state after ipad ‖ prefix and the outer state after opad are
precomputed per (key, vhid, VIP set, flavour); an advert then costs one copy+update+digest of
each (``HmacContext.digest``). A steady speaker is checked against its last good context first.

Secrets
-------
Passphrases and raw keys live only in ``Key`` objects whose repr/str show the label. No error
message, repr, result, diagnosis or finding built here contains a passphrase; weak keys are
labelled ``weak-default-N`` / ``weak-empty`` and described as "bundled list entry N".
"""
from __future__ import annotations

import importlib

# the package's names, imported from their module on first use (the tracker imports
# auth.hmac and auth.verify imports the tracker: an eager import here would be a cycle)
_EXPORTS = {
    "carpscope.auth.hmac": ("FLAVOURS", "FREEBSD", "OPENBSD", "OPENBSD_LLADDR", "UCARP", "HmacContext",
                            "KeyPads", "carp_hmac", "flavour_prefixes", "hmac_message"),
    "carpscope.auth.keyring": ("ENV_PASSPHRASES", "INFERRED", "ORIGINS", "Keyring", "VipEntry",
                               "keyring_from_env", "load_passphrase_file"),
    "carpscope.auth.keys": ("KEY_LEN", "Key", "PassphraseError", "derive_key", "describe_weak",
                            "is_truncated", "key_from_hex", "weak_index_of", "weak_keys"),
    "carpscope.auth.secrets": ("BSD_PASS_MAX", "remember_secret", "scrub"),
    "carpscope.auth.results": ("NOT_CARP", "AuthResult", "Diagnosis"),
    "carpscope.auth.verify": ("Verifier",),
    "carpscope.auth.vips": ("VipSet", "parse_address", "parse_vip_arg"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'carpscope.auth' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
