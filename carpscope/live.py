"""Live capture: `carpscope sniff IFACE` (being written)."""
from __future__ import annotations


def add_arguments(p) -> None:
    p.add_argument("interface", nargs="?", metavar="IFACE")


def run(args) -> int:
    print("carpscope: error: sniff is not implemented yet")
    return 2
