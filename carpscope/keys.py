"""Wiring keys and intent from the command line into the pipeline (keyring, verifier,
VIP inference, auth rules, intent rules). The secrets themselves live in auth.py objects."""
from __future__ import annotations


def build_auth(args):
    """Returns (verifier, vipinfer, auth_rules, intent, warnings)."""
    warnings: list[str] = []
    try:
        from carpscope import auth  # noqa: F401
    except ImportError:
        return None, None, None, None, warnings
    return None, None, None, None, warnings
