"""The address text of the decoder (wire/proto112.ntop) is inet_ntop's, written out so that a
run does not import socket: IPv4 dotted quads, IPv6 with the longest first run of two or more
zero groups as ``::``, IPv4-mapped (``::ffff:a.b.c.d``) and IPv4-compatible (``::a.b.c.d``)
forms, as the C library writes them."""
from __future__ import annotations

import itertools
import random
import socket

import pytest

from carpscope.wire.proto112 import addr_text, ntop


def v6(words) -> bytes:
    return b"".join(w.to_bytes(2, "big") for w in words)


def test_ipv4_as_inet_ntop():
    rnd = random.Random(4)
    for b in [bytes(4), b"\xff" * 4, b"\x00\x00\x00\x01", b"\x0a\x00\x00\x01"] + \
             [rnd.randbytes(4) for _ in range(2000)]:
        assert addr_text(b) == ntop(b) == socket.inet_ntop(socket.AF_INET, b)


def test_ipv6_every_zero_pattern_as_inet_ntop():
    """Every arrangement of zero and non-zero groups (and 0xffff in each place)."""
    for words in itertools.product((0, 1, 0xFFFF, 0xABCD), repeat=8):
        b = v6(words)
        assert addr_text(b) == socket.inet_ntop(socket.AF_INET6, b), words


@pytest.mark.parametrize("text", ["::", "::1", "::2", "1::", "fe80::1", "ff02::12", "2001:db8::1:0:0:1",
                                  "2001:db8:0:1:1:1:1:1", "::ffff:192.0.2.1", "::ffff:0.0.0.0",
                                  "::192.0.2.1", "::ffff:0:1", "0:0:0:0:0:1:0:0", "1:0:0:2:0:0:0:3"])
def test_ipv6_named_forms(text):
    b = socket.inet_pton(socket.AF_INET6, text)
    assert addr_text(b) == ntop(b) == socket.inet_ntop(socket.AF_INET6, b)


def test_ipv6_random_as_inet_ntop():
    rnd = random.Random(6)
    for _ in range(20000):
        words = [0 if rnd.random() < 0.4 else rnd.choice((1, 0xFFFF, rnd.getrandbits(16))) for _ in range(8)]
        if rnd.random() < 0.2:
            words[:5] = [0] * 5
            words[5] = rnd.choice((0, 0xFFFF))
        b = v6(words)
        assert addr_text(b) == socket.inet_ntop(socket.AF_INET6, b), words


@pytest.mark.parametrize("n", [0, 3, 5, 15, 17])
def test_other_lengths_refused_like_inet_ntop(n):
    with pytest.raises(ValueError):
        addr_text(bytes(n))
