"""Safety of a run directory: one owner at a time, nothing changed by a command that does not proceed,
nothing left behind by a command that fails before training starts.

* **Lock** (``lock_run_dir``): ``DIR/.snnrun.lock``, created with O_CREAT|O_EXCL, holds the owner's
  pid, host, start time and command. A second command on the directory is refused (ConfigError,
  exit code 2) naming the owner. A lock whose owner is gone (same host, pid no longer alive or
  reused by another process) is taken over with a warning. Released on every exit path; SIGTERM
  outside the training loop's own handler becomes SystemExit so the release still runs.
  Data-parallel runs: rank 0 alone takes it.
* **Staged .hydra** (``snnrun train``): Hydra writes ``.hydra/{config,hydra,overrides}.yaml`` at job
  start, before the task runs. The CLI points ``hydra.output_subdir`` at a staging folder outside
  the run dir; ``RunDirGuard.start`` (called once the experiment is built and the resume checks
  passed) moves the files into ``DIR/.hydra`` (each with an atomic replace). A refused or failed
  command therefore leaves an existing run's ``.hydra`` untouched.
* **No litter**: ``RunDirCallback`` (a Hydra callback, conf/config.yaml) records, before Hydra
  creates anything, which run directories already exist. A command that fails before training
  starts removes the run directory only when it created it and it holds nothing but the lock and
  the job log.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from snnrun.errors import ConfigError, OutputError
from snnrun.run.files import describe, write_text_atomic
from snnrun.run.console import console
from snnrun.run.ranks import is_main
from snnrun.run.user_errors import user_errors

LOCK_NAME = ".snnrun.lock"
HYDRA_SUBDIR = ".hydra"
HYDRA_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")
STAGE_PREFIX = "snnrun-hydra-stage-"
COMMAND: list[str] = []  # the command line as typed (cli.main sets it): the lock names it
UNREADABLE_LOCK_GRACE_S = 10.0  # an empty lock younger than this is being written by its owner


# -- the lock ------------------------------------------------------------------------------------
def _proc_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux /proc), to tell a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _read_lock(path: Path) -> dict[str, Any] | None:
    """The lock's owner record; None when the file is empty or unreadable (being written)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def describe_owner(owner: dict[str, Any]) -> str:
    cmd = owner.get("command")
    return (f"pid {owner.get('pid')} on host {owner.get('host')} since {owner.get('started')}"
            + (f" (`{cmd}`)" if cmd else ""))


def owner_is_gone(owner: dict[str, Any]) -> bool:
    """True when the owner certainly no longer runs: same host and its pid is dead or reused."""
    if owner.get("host") != socket.gethostname():
        return False
    try:
        pid = int(owner["pid"])
    except (KeyError, TypeError, ValueError):
        return True
    if not _alive(pid):
        return True
    start = owner.get("pid_start")
    return start is not None and _proc_start(pid) not in (None, start)


class RunDirLock:
    """``DIR/.snnrun.lock`` held by this process (see the module docstring)."""

    def __init__(self, run_dir: str | Path, key: str = "run_dir"):
        self.run_dir, self.key = Path(run_dir), key
        self.path = self.run_dir / LOCK_NAME
        self.token = uuid.uuid4().hex
        self.held = False

    def record(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "pid_start": _proc_start(os.getpid()),
                "command": " ".join(["snnrun", *(COMMAND or sys.argv[1:])])[:200], "token": self.token}

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(fd, json.dumps(self.record()).encode())
            os.fsync(fd)
        except OSError as e:  # a full disk: no empty lock left behind
            os.close(fd)
            self.path.unlink(missing_ok=True)
            raise OutputError(self.path, describe(e)) from None
        os.close(fd)
        return True

    def _refuse(self, owner: dict[str, Any] | None) -> ConfigError:
        who = describe_owner(owner) if owner else "another snnrun command (its lock is being written)"
        return ConfigError(f"{self.run_dir} is in use by {who}; nothing was changed. Wait for it to finish, "
                           f"or delete {self.path} if that process is gone", key=self.key)

    def acquire(self) -> "RunDirLock":
        for _ in range(5):
            if self._create():
                self.held = True
                return self
            owner = _read_lock(self.path)
            if owner is None:
                try:
                    age = time.time() - self.path.stat().st_mtime
                except FileNotFoundError:
                    continue  # released meanwhile: try again
                if age < UNREADABLE_LOCK_GRACE_S:
                    time.sleep(0.2)
                    owner = _read_lock(self.path)
                    if owner is None:
                        raise self._refuse(None)
            if owner is not None and not owner_is_gone(owner):
                raise self._refuse(owner)
            self._take_over(owner)
        raise self._refuse(_read_lock(self.path))

    def _take_over(self, stale: dict[str, Any] | None) -> None:
        """Remove a stale lock; a second file guards the check-and-remove against a concurrent taker."""
        guard = self.path.with_name(LOCK_NAME + ".takeover")
        try:
            fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            with contextlib.suppress(FileNotFoundError):
                if time.time() - guard.stat().st_mtime > UNREADABLE_LOCK_GRACE_S:
                    guard.unlink()  # left by a taker that died
            time.sleep(0.1)
            return
        try:
            if _read_lock(self.path) == stale:  # still the stale one, not a new owner's
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                console.print(f"[yellow]warning:[/] taking over the stale lock {self.path} of "
                              f"{describe_owner(stale) if stale else 'an unknown owner'} "
                              "(that process is gone)", soft_wrap=True)
        finally:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                guard.unlink()

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        owner = _read_lock(self.path)
        if owner is not None and owner.get("token") == self.token:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


@contextlib.contextmanager
def _sigterm_exits() -> Iterator[None]:
    """SIGTERM raises SystemExit(143) so that ``finally`` blocks (the lock's release) run. The
    training loop's StopOnSignal replaces this handler while it runs and restores it after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _exit(signum, frame):
        raise SystemExit(128 + signum)

    old = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextlib.contextmanager
def lock_run_dir(run_dir: str | Path, key: str = "run_dir") -> Iterator[RunDirLock | None]:
    """Hold ``run_dir``'s lock for the block (rank 0 only; a missing dir is left to the command's
    own error and not locked)."""
    if not is_main() or not Path(run_dir).is_dir():
        yield None
        return
    with _sigterm_exits():
        lock = RunDirLock(run_dir, key).acquire()
        try:
            yield lock
        finally:
            lock.release()


# -- which run dirs this command creates ---------------------------------------------------------
_EXISTING: dict[str, Any] = {"runs": {}, "sweeps": {}}


def _first_missing(path: Path) -> Path | None:
    """The outermost ancestor of ``path`` (or ``path``) that does not exist yet."""
    missing = None
    for p in [path, *path.parents]:
        if p.exists():
            break
        missing = p
    return missing


def check_creatable(path: Path, key: str) -> None:
    """ConfigError naming ``key`` unless ``path`` is a directory this process may write in, or can
    be created (its nearest existing ancestor is a writable directory)."""
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    if not p.is_dir():
        raise ConfigError(f"cannot create {path}: {p} is a file, not a directory; nothing was written",
                          key=key)
    if not os.access(p, os.W_OK | os.X_OK):
        what = "write in" if p == path else f"create {path}:"
        raise ConfigError(f"cannot {what} {p}: no write permission; nothing was written", key=key)


class RunDirCallback(Callback):
    """Hydra callback: before Hydra creates a run dir (``on_run_start``) or a sweep dir
    (``on_multirun_start``), check it can be written and record what exists, so a failing job
    removes only what it created."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        run_dir = OmegaConf.select(config, "hydra.run.dir")  # resolved once: run_job reuses ${now:}
        if run_dir is not None:
            path = Path(os.path.abspath(str(run_dir)))
            with user_errors():  # Hydra's own mkdir would fail with a traceback
                check_creatable(path, "hydra.run.dir")
            _EXISTING["runs"][str(path)] = _first_missing(path)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = OmegaConf.select(config, "hydra.sweep.dir")
        if sweep_dir is not None:
            path = Path(os.path.abspath(str(sweep_dir)))
            with user_errors():
                check_creatable(path, "hydra.sweep.dir")
            _EXISTING["sweeps"][str(path)] = (set(os.listdir(path)) if path.is_dir() else None)


def created_root(run_dir: str | Path) -> Path | None:
    """The outermost directory this command created for ``run_dir`` (``run_dir`` or a new parent),
    or None when ``run_dir`` existed before or nothing is known about it."""
    path = Path(os.path.abspath(str(run_dir)))
    if str(path) in _EXISTING["runs"]:
        return _EXISTING["runs"][str(path)]
    for sweep, children in _EXISTING["sweeps"].items():
        try:
            rel = path.relative_to(sweep)
        except ValueError:
            continue
        if rel.parts and (children is None or rel.parts[0] not in children):
            return path  # a job dir: its siblings (other jobs) are never touched
    return None


def _only_our_files(run_dir: Path) -> bool:
    """Nothing in ``run_dir`` but the lock and Hydra's job log: what a command writes before it
    starts training."""
    try:
        names = os.listdir(run_dir)
    except OSError:
        return False
    return all(n == LOCK_NAME or (n.endswith(".log") and (run_dir / n).is_file()) for n in names)


def remove_created(run_dir: Path, root: Path) -> None:
    """Remove ``run_dir`` (holding only our files) and the empty parents up to ``root`` we created."""
    if not _only_our_files(run_dir):
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    if root == run_dir:
        return
    for p in run_dir.parents:
        try:
            p.rmdir()  # only empty ones: another command may have written there meanwhile
        except OSError:
            break
        if p == root:
            break


# -- staging Hydra's .hydra files ------------------------------------------------------------------
def make_stage_root() -> str:
    """A new staging folder (``<tmp>/snnrun-hydra-stage-<pid>-XXXX``); the folders of processes
    that died without cleaning up (kill -9) are removed on the way."""
    import tempfile

    tmp = Path(tempfile.gettempdir())
    for old in tmp.glob(STAGE_PREFIX + "*"):
        try:
            pid = int(old.name[len(STAGE_PREFIX):].split("-", 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _alive(pid):
            shutil.rmtree(old, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{STAGE_PREFIX}{os.getpid()}-")


def hydra_stage_override(root: str | Path) -> str:
    """The override that makes Hydra write a job's .hydra files under ``root`` (one folder per run
    dir, so every job of a sweep has its own)."""
    return f"hydra.output_subdir='{Path(root)}${{hydra.runtime.output_dir}}'"


def staged_hydra_dir(hydra_cfg: DictConfig) -> Path | None:
    """Where Hydra wrote this job's .hydra files when they are staged, else None."""
    sub = hydra_cfg.get("output_subdir")
    if sub is None or STAGE_PREFIX not in str(sub):
        return None
    return Path(hydra_cfg.runtime.output_dir) / str(sub)


def commit_staged(staged: Path, run_dir: Path) -> None:
    """Put the staged .hydra files in ``run_dir/.hydra``, each with an atomic replace; hydra.yaml
    records ``output_subdir: .hydra`` and not the staging override."""
    target = run_dir / HYDRA_SUBDIR
    target.mkdir(parents=True, exist_ok=True)
    for name in HYDRA_FILES:
        src = staged / name
        if not src.is_file():
            continue
        text = src.read_text(encoding="utf-8")
        if name == "hydra.yaml":
            cfg = OmegaConf.load(src)
            cfg.hydra.output_subdir = HYDRA_SUBDIR
            over = cfg.hydra.overrides.get("hydra")
            if over is not None:
                cfg.hydra.overrides.hydra = [o for o in over if not str(o).startswith("hydra.output_subdir=")]
            text = OmegaConf.to_yaml(cfg)
        write_text_atomic(target / name, text)
    shutil.rmtree(staged, ignore_errors=True)


class RunDirGuard:
    """``snnrun train``'s hold on its run dir (rank 0): the lock; ``start()`` once the run is known
    to proceed (commits the staged .hydra files); on a failure before ``start()`` the staged files
    are dropped and a run dir this command created is removed."""

    def __init__(self, run_dir: str | Path, hydra_cfg: DictConfig | None = None, key: str = "hydra.run.dir"):
        self.run_dir, self.key = Path(run_dir), key
        self.staged = staged_hydra_dir(hydra_cfg) if hydra_cfg is not None else None
        self.root = created_root(self.run_dir)
        self.started = False
        self._stack = contextlib.ExitStack()

    def start(self) -> None:
        if self.started:
            return
        self.started = True
        if self.staged is not None and is_main():
            commit_staged(self.staged, self.run_dir)

    def __enter__(self) -> "RunDirGuard":
        try:
            self.lock = self._stack.enter_context(lock_run_dir(self.run_dir, self.key))
        except BaseException:
            self._drop_staged()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if not self.started:
                self._drop_staged()
                if exc_type is not None and self.root is not None and self.lock is not None:
                    remove_created(self.run_dir, self.root)
        finally:
            self._stack.close()

    def _drop_staged(self) -> None:
        if self.staged is not None:
            shutil.rmtree(self.staged, ignore_errors=True)
