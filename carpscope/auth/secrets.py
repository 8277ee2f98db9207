"""Secrets: nothing carpscope was given as a secret may appear in any text it writes.

Every form of every secret (the passphrase, its hex, the derived key) is remembered when the
secret is read, and ``scrub`` blanks them out of any message, error or traceback before it
is printed: a last guard behind the rule that secrets live only in ``Key`` and ``Secret``
objects whose repr shows a label.
"""
from __future__ import annotations

BSD_PASS_MAX = 19          # ifconfig strlcpy()s into 20 bytes: 19 characters and a NUL

# Every form of every secret this process was given, so that no message can carry one even when
# a bug puts it into an exception's text (see ``scrub``). Bounded by the keys the user supplied.
_SECRET_FORMS: set[str] = set()


def remember_secret(secret: str | bytes, raw: bytes | None = None) -> None:
    """Note a secret (and its derived key) so ``scrub`` can blank it out of any text."""
    b = secret.encode("utf-8", "surrogatepass") if isinstance(secret, str) else bytes(secret)
    forms = {b.decode("utf-8", "replace"), b.hex(), b.hex().upper(), b[:BSD_PASS_MAX].decode("utf-8", "replace")}
    if raw is not None:
        forms |= {raw.hex(), raw.hex().upper()}
    _SECRET_FORMS.update(f for f in forms if len(f) >= 3)


def scrub(text: str) -> str:
    """``text`` with every remembered secret replaced by ``<secret>`` (longest forms first)."""
    for form in sorted(_SECRET_FORMS, key=len, reverse=True):
        if form in text:
            text = text.replace(form, "<secret>")
    return text
