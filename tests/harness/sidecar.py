"""The command-line arguments a bundled capture is analysed with: its keys file (a private copy,
mode 600, so no "readable by others" warning) and the VIP sets of its sidecar."""
from __future__ import annotations

import os
from pathlib import Path

CAPTURES = Path(__file__).resolve().parents[2] / "captures"


def sidecar_args(side: dict, tmp: Path) -> list[str]:
    args = []
    if side.get("keys_file"):
        keys = tmp / side["keys_file"]
        keys.write_text((CAPTURES / side["keys_file"]).read_text())
        os.chmod(keys, 0o600)
        args += ["--passphrase-file", str(keys)]
    for ident, sets in ((side.get("analyze") or {}).get("vip_sets") or {}).items():
        for vips in sets:
            args += ["--vip", f"{ident.split(':')[1]}=" + ",".join(vips)]
    return args
