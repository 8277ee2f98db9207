"""Test harness: real ucarp/keepalived speakers in network namespaces, recorded on a bridge.

See netns.py for the Lab, speakers.py for speaker settings, pcapread.py for reading the
recordings back, scenarios.py and record.py for the bundled captures.
"""
from .netns import (Host, Lab, LabError, Proc, clean_stale, lab_namespaces, live_problems,
                    package_version, require_root, stale_namespaces, tool)
from .speakers import Keepalived, Ucarp

__all__ = ["Host", "Lab", "LabError", "Proc", "Ucarp", "Keepalived", "require_root",
           "live_problems", "lab_namespaces", "stale_namespaces", "clean_stale",
           "package_version", "tool"]
