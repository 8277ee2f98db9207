"""Only the optional C extensions; everything else is in pyproject.toml.

carpscope._steady is the compiled steady-state fold (carpscope/_steady.c), carpscope._pcapread
a large-chunk reader of classic pcap files that runs libpcap's compiled filter (_pcapread.c).
Both are optional: without a C compiler the install still succeeds, the same fold runs in
Python and libpcap (pcapy-ng) reads every file.
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension("carpscope._steady", ["carpscope/_steady.c"], optional=True),
                   Extension("carpscope._pcapread", ["carpscope/_pcapread.c"], optional=True)])
