"""The C kernels of the CPU path (``dc_presentation.c``), compiled once per machine and loaded
with ctypes.

Built with the system's C compiler (``$CC``, else ``cc``/``gcc``) into ``$SNNRUN_CACHE/kernels``
(default ``~/.cache/snnrun/kernels``; a temporary folder where that is not writable), named by a
hash of the source, flags, compiler and machine, so an edit or another machine builds afresh.
Where no compiler can build it, :func:`library` returns None and prints one info line (once per
process): the callers then run their eager PyTorch paths. ``SNNRUN_CPU_KERNEL=0`` switches the
kernels off.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("dc_presentation.c")
# no contraction into fma beyond the explicit fmaf() calls: the rounding must be ATen's
FLAGS = ["-O3", "-std=c99", "-ffp-contract=off", "-fno-fast-math", "-shared", "-fPIC"]

_lib: ctypes.CDLL | None = None
_lib_error: str | None = None


def compiler() -> str | None:
    """The C compiler to build with: ``$CC`` (which may name a missing one), else cc or gcc."""
    if os.environ.get("CC"):
        return shutil.which(os.environ["CC"])
    return shutil.which("cc") or shutil.which("gcc")


def cache_dir() -> Path:
    return Path(os.environ.get("SNNRUN_CACHE") or Path.home() / ".cache" / "snnrun") / "kernels"


def _build(cc: str) -> Path:
    src = SOURCE.read_bytes()
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    tag = hashlib.sha256(src + repr((FLAGS, version, platform.machine())).encode()).hexdigest()[:16]
    for root in (cache_dir(), Path(tempfile.gettempdir()) / f"snnrun-kernels-{os.getuid()}"):
        lib = root / f"dc_presentation-{tag}.so"
        if lib.is_file():
            return lib
        try:
            root.mkdir(parents=True, exist_ok=True)
            tmp = root / f".{lib.name}.{os.getpid()}.tmp"
            for extra in (["-march=native"], []):  # native vector units where the compiler knows them
                done = subprocess.run([cc, *FLAGS, *extra, "-o", str(tmp), str(SOURCE), "-lm"],
                                      capture_output=True, text=True, timeout=120)
                if done.returncode == 0:
                    break
            if done.returncode != 0:
                raise RuntimeError(f"{cc} failed: {(done.stderr or done.stdout).strip()[:300]}")
            os.replace(tmp, lib)  # atomic: concurrent runs (sweeps, torchrun) see a whole file
            return lib
        except OSError:
            continue  # an unwritable cache: try the temporary folder
    raise RuntimeError("no writable folder to build the CPU kernel in (set SNNRUN_CACHE)")


def library() -> ctypes.CDLL | None:
    """The compiled kernel, built on first use; None (and one info line on stderr, once) where no
    C compiler can build it."""
    global _lib, _lib_error
    if _lib is not None or _lib_error is not None:
        return _lib
    cc = compiler()
    try:
        if cc is None:
            raise RuntimeError(f"no C compiler found ({os.environ.get('CC') or 'cc, gcc'})")
        _lib = ctypes.CDLL(str(_build(cc)))
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        _lib_error = str(e)
        print(f"snnrun: info: {e}; the CPU runs without snnrun's compiled kernels (Diehl & Cook step by step "
              "in eager PyTorch: slower, same results). Install a C compiler (e.g. gcc) for them.", file=sys.stderr)
    return _lib


def disabled_by_env() -> bool:
    return os.environ.get("SNNRUN_CPU_KERNEL", "1").strip().lower() in ("0", "false", "off", "no")


def _reset_library_cache() -> None:
    """Forget the loaded library (tests that switch the compiler)."""
    global _lib, _lib_error
    _lib, _lib_error = None, None


def error() -> str | None:
    """Why :func:`library` is None (None while it loaded or was not tried)."""
    return _lib_error
