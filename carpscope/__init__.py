"""carpscope: decode, verify and diagnose CARP and VRRP (IP protocol 112)."""

__version__ = "0.1.0"
