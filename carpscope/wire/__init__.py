"""Wire formats: link layers, IP framing, CARP and VRRP payloads, checksums (decode and encode)."""
