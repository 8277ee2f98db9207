"""Test harness: real ucarp/keepalived speakers in network namespaces, recorded on a bridge.

See netns.py for the Lab, speakers.py for speaker settings, impair.py (with replicate.py) for
a lossy link and copies of adverts, pcapread.py for reading the recordings back, scenarios.py
and record.py for the bundled captures, daemon_cases.py, truth.py and record_daemons.py for
the real-daemon cases of tests/data/daemons (issue 14).
"""
from .netns import (Host, Lab, LabError, Proc, clean_stale, lab_namespaces, live_problems,
                    package_version, require_root, stale_namespaces, tool)
from .speakers import Keepalived, Ucarp

__all__ = ["Host", "Lab", "LabError", "Proc", "Ucarp", "Keepalived", "require_root",
           "live_problems", "lab_namespaces", "stale_namespaces", "clean_stale",
           "package_version", "tool"]
