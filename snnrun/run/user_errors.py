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


@contextlib.contextmanager
def user_errors():
    """Print user errors as one clear block without a traceback and exit (see the module doc)."""
    try:
        yield
    except TrainingDiverged as e:
        where = f" ([bold]{e.key}[/])" if e.key else ""
        console.print(f"[bold red]error: training stopped[/]{where}: {escape(e.message)}", soft_wrap=True)
        sys.exit(2)
    except ConfigError as e:
        where = f"[bold]{escape(e.key)}[/]: " if e.key else ""
        # messages quote config values such as [1, 28, 28]: not rich markup
        console.print(f"[bold red]error:[/] {where}{escape(e.message)}", soft_wrap=True)
        sys.exit(2)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None)
        msg = str(e).splitlines()[0]
        console.print(f"[bold red]error:[/] {f'[bold]{key}[/]: ' if key else ''}{escape(msg)}", soft_wrap=True)
        sys.exit(2)
    except OutputError as e:
        console.print(f"[bold red]error:[/] {escape(str(e))}", soft_wrap=True)
        sys.exit(e.exit_code)
    except OSError as e:
        if e.filename is None:
            raise  # not about a path the user chose: a bug to see in full
        from snnrun.run.files import describe

        path = e.filename + (f" -> {e.filename2}" if e.filename2 else "")
        console.print(f"[bold red]error:[/] cannot write or read {escape(path)}: {escape(describe(e))}",
                      soft_wrap=True)
        sys.exit(1)
    except TrainingInterrupted as e:
        console.print(f"[yellow]{e}[/]; continue with: snnrun resume run_dir={e.run_dir}", soft_wrap=True)
        sys.exit(e.exit_code)
