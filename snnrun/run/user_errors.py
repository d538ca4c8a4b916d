"""How errors reach the user: one block naming the key or file, no traceback.

``user_errors()`` wraps every command (and the Hydra callbacks that can refuse a run):

* a config error (``ConfigError``, OmegaConf's type/key errors): ``error: KEY: message``, exit 2;
* training that diverged (NaN/inf): ``error: training stopped (KEY): ...``, exit 2;
* a file that could not be written (``OutputError``, or an ``OSError`` that names its path:
  disk full, a file size limit, no permission, a parent that is a file): ``error: cannot write
  PATH: reason``, exit 1;
* a stop by SIGINT/SIGTERM after the checkpoint: how to resume, exit 128 + signal.
"""

from __future__ import annotations

import contextlib
import sys

from omegaconf.errors import OmegaConfBaseException
from rich.markup import escape

from snnrun.errors import ConfigError, OutputError, TrainingDiverged, TrainingInterrupted
from snnrun.run.console import console


def explain(e: BaseException) -> tuple[str, int] | None:
    """(the message as console markup, the exit code) of a user error; None for anything else."""
    if isinstance(e, TrainingDiverged):
        where = f" ([bold]{escape(e.key)}[/])" if e.key else ""
        return f"[bold red]error: training stopped[/]{where}: {escape(e.message)}", 2
    if isinstance(e, ConfigError):
        where = f"[bold]{escape(e.key)}[/]: " if e.key else ""
        # messages quote config values such as [1, 28, 28]: not rich markup
        return f"[bold red]error:[/] {where}{escape(e.message)}", 2
    if isinstance(e, OmegaConfBaseException):
        key = getattr(e, "full_key", None)
        msg = str(e).splitlines()[0]
        return f"[bold red]error:[/] {f'[bold]{escape(key)}[/]: ' if key else ''}{escape(msg)}", 2
    if isinstance(e, OutputError):
        return f"[bold red]error:[/] {escape(str(e))}", e.exit_code
    if isinstance(e, OSError) and e.filename is not None:  # else not about a path: a bug to see in full
        from snnrun.run.files import describe

        path = str(e.filename) + (f" -> {e.filename2}" if e.filename2 else "")
        return f"[bold red]error:[/] cannot write or read {escape(path)}: {escape(describe(e))}", 1
    if isinstance(e, TrainingInterrupted):
        return f"[yellow]{escape(str(e))}[/]; continue with: snnrun resume run_dir={escape(str(e.run_dir))}", \
            e.exit_code
    return None


@contextlib.contextmanager
def user_errors():
    """Print user errors as one clear block without a traceback and exit (see the module doc)."""
    try:
        yield
    except Exception as e:
        told = explain(e)
        if told is None:
            raise
        console.print(told[0], soft_wrap=True)
        sys.exit(told[1])
