"""Writing run files so that a failed write (disk full, a file size limit, no permission) leaves
no half-written file and no temp file behind, and is reported naming the path.

``atomic_write(path, write)`` writes through ``<name>.tmp`` in the same folder (fsync, then one
``os.replace``): readers see the old file or the whole new one. On any failure the temp file is
removed and :class:`~snnrun.errors.OutputError` names ``path`` and the reason.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from pathlib import Path
from typing import IO, Any, Callable

from snnrun.errors import OutputError

# what the C writers (torch.save's zip writer, libpng) say instead of raising OSError
_WRITE_FAILED = ("file write failed", "write failed", "No space left", "File too large")


def describe(e: BaseException) -> str:
    """The reason of a failed write in words, with a hint for the usual causes."""
    if isinstance(e, OSError) and e.errno is not None:
        reason = e.strerror or os.strerror(e.errno)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            reason += " (the disk or your quota is full)"
        elif e.errno == errno.EFBIG:
            reason += " (a file size limit: ulimit -f, or the file system's maximum)"
        return reason
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def write_failure(e: BaseException) -> BaseException | None:
    """The failed write behind ``e``, or None. torch.save can raise the OSError of a full disk and
    then, while closing its zip writer, a RuntimeError of its own ("unexpected pos ...") that hides
    it: the chain of exceptions is searched."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) or (isinstance(e, RuntimeError) and any(s in str(e) for s in _WRITE_FAILED)):
            return e
        e = e.__cause__ or e.__context__
    return None


def atomic_write(path: str | Path, write: Callable[[IO], None], mode: str = "wb",
                 previous: str | Path | None = None) -> Path:
    """Write ``path`` atomically with ``write(f)``; OutputError (temp file removed) on failure.
    ``previous``: the file ``path`` was is kept under that name (once the new one is complete)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the rename makes them "the" file
        if previous is not None and path.exists():
            os.replace(path, previous)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        failure = write_failure(e)
        if failure is not None:
            raise OutputError(path, describe(failure)) from None
        raise
    return path


def read_json(path: Path, text: str | None = None, line: int | None = None) -> Any:
    """JSON of a run file (or of one ``line`` of it, given as ``text``); ConfigError naming the file
    (and line) when it does not parse."""
    from snnrun.errors import ConfigError

    try:
        return json.loads(Path(path).read_text() if text is None else text)
    except ValueError as e:
        where = f"{path}:{line}" if line is not None else str(path)
        raise ConfigError(f"{where} is not valid JSON ({e}); was the run's directory damaged?",
                          key="run_dir") from None


def write_text_atomic(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text), mode="w")
