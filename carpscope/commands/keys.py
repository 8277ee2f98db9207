"""Wiring keys and intent from the command line into the pipeline: the keyring (passphrase
files, the environment, --passphrase, --vip, configs), the verifier, VIP inference and the
auth rules. The secrets themselves stay inside auth.Key objects; only labels travel."""
from __future__ import annotations

import os

from carpscope import auth
from carpscope.auth.vipinfer import VipInference
from carpscope.files import display_name


class KeyError_(ValueError):
    """A key source the user named cannot be used (one line, exit 2)."""


def build_keyring(args, warnings: list[str]) -> auth.Keyring:
    ring = auth.Keyring()
    for path in args.passphrase_file:
        try:
            _, w = auth.load_passphrase_file(path, ring)
        except FileNotFoundError:
            # the name is not echoed: a passphrase typed where its file belongs must not be printed
            raise KeyError_(f"--passphrase-file #{args.passphrase_file.index(path) + 1}: no such file "
                            "(its name is not shown, in case it is a passphrase typed by mistake)") from None
        except OSError as e:
            raise KeyError_(f"--passphrase-file {display_name(path)}: {e.strerror or e}") from None
        warnings += w
    if os.environ.get(auth.ENV_PASSPHRASES):
        try:
            _, w = auth.keyring_from_env(keyring=ring)
        except OSError as e:
            raise KeyError_(f"${auth.ENV_PASSPHRASES}: {e.strerror or e}") from None
        warnings += w
    for i, secret in enumerate(args.passphrase, 1):
        ring.add_passphrase(f"cli{i}", secret, origin="cli")
    if args.passphrase:
        warnings.append("a passphrase given with --passphrase is visible to other users in the process "
                        "list; prefer --passphrase-file or $CARPSCOPE_PASSPHRASES")
    for text in args.vip:
        try:
            vhid, addrs = auth.parse_vip_arg(text)
        except ValueError as e:
            raise KeyError_(f"--vip {text!r}: {e}") from None
        ring.add_vips(vhid, addrs, origin="cli")
    return ring


def build_auth(args):
    """Returns (verifier, vipinfer, intent, warnings)."""
    warnings: list[str] = []
    ring = build_keyring(args, warnings)
    intent = None
    configs = list(getattr(args, "inventory", [])) + list(getattr(args, "rc_conf", [])) + list(getattr(args, "config", []))
    if configs:
        from carpscope.intent import load_intent
        intent = load_intent(configs, ring, warnings)
    verifier = auth.Verifier(ring, try_weak=not getattr(args, "no_weak_check", False))
    return verifier, VipInference(ring), intent, warnings
