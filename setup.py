"""The compiled engine; everything else is in pyproject.toml.

mypyc compiles the typed modules of the per-frame path (decode, repeats, packet rules, HMAC,
VIP inference, tracking, the engine, the capture reader) to one C extension: the same source
files, which run as plain Python wherever no C compiler (or no mypy) is available — the same
analysis, slower (docs/performance.md). ``CARPSCOPE_NO_COMPILE=1`` skips the compilation; at run
time ``CARPSCOPE_PURE_PYTHON=1`` makes an installed copy run the Python source even when the
compiled modules are there (tests compare the two).
"""
import os
import sys

from setuptools import Extension, setup

COMPILED = [
    "carpscope/model.py",
    "carpscope/wire/checksum.py",
    "carpscope/wire/link.py",
    "carpscope/wire/proto112.py",
    "carpscope/wire/frame.py",
    "carpscope/capture/reader.py",
    "carpscope/repeats.py",
    "carpscope/track.py",
    "carpscope/rules/packet.py",
    "carpscope/rules/auth.py",
    "carpscope/auth/results.py",
    "carpscope/auth/hmac.py",
    "carpscope/auth/verify.py",
    "carpscope/auth/vipinfer.py",
    "carpscope/engine.py",
]


def ext_modules():
    if os.environ.get("CARPSCOPE_NO_COMPILE"):
        return []
    # the HMAC-SHA1 kernel (midstates, no protocol logic): carpscope/_sha1.c
    sha1 = Extension("carpscope._sha1", ["carpscope/_sha1.c"])
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("carpscope: mypyc is not available: the engine is installed as Python only", file=sys.stderr)
        return [sha1]
    try:
        exts = mypycify(["--ignore-missing-imports", *COMPILED], opt_level="3", debug_level="0")
    except (Exception, SystemExit) as e:      # a type error would be a bug; the Python source still works
        print(f"carpscope: mypyc failed ({e}): the engine is installed as Python only", file=sys.stderr)
        return [sha1]
    return [sha1, *exts]


def cmdclass():
    """build_ext that leaves the pure-Python package when the C compiler fails or is missing."""
    from setuptools.command.build_ext import build_ext

    class OptionalBuildExt(build_ext):
        def run(self):
            try:
                super().run()
            except Exception as e:
                self._drop(e)

        def build_extensions(self):
            try:
                super().build_extensions()
            except Exception as e:
                self._drop(e)

        def _drop(self, e):
            print(f"carpscope: the C compiler failed ({e}): the engine is installed as Python only",
                  file=sys.stderr)
            self.extensions = []
            # no half-built extension may be left behind: a module stub without its shared
            # library would fail to import
            for ext in list(getattr(self.distribution, "ext_modules", None) or []):
                try:
                    path = self.get_ext_fullpath(ext.name)
                except Exception:
                    continue
                if os.path.exists(path):
                    os.remove(path)
            self.distribution.ext_modules = []

    return {"build_ext": OptionalBuildExt}


setup(ext_modules=ext_modules(), cmdclass=cmdclass())
