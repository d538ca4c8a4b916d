"""Checkpoints that survive crashes, the RNG stream they carry, and a clean stop on SIGINT/SIGTERM.

Reusable by every training loop (local-rule and gradient):

- ``save_checkpoint(run_dir, state)`` writes ``checkpoint.pt`` atomically (temp file, fsync,
  rename) and keeps the one before it as ``checkpoint.prev.pt``: a crash at any instant leaves
  at least one complete file, and a checkpoint damaged later on disk has a fallback.
- ``load_checkpoint(run_dir, fallback=True)`` reads the newest good one; with ``fallback`` a
  corrupt/truncated ``checkpoint.pt`` is reported and ``checkpoint.prev.pt`` used instead.
- Checkpoints are plain data (tensors, numbers, strings, lists, tuples, dicts) and are read with
  ``torch.load(weights_only=True)``: loading one never runs code. ``save_checkpoint`` refuses
  anything else (naming the key), and a file holding other objects is refused on load
  (``UnsafeCheckpoint``), never unpickled, and never silently replaced by the previous one.
- ``rng_state()`` / ``set_rng_state(s)`` capture python, numpy, torch CPU and CUDA generators
  (plus any extra ``torch.Generator`` the loop owns), so a resumed run draws the same numbers.
- ``CheckpointWriter`` writes them on a background thread (the file and fsync overlap the next
  batches on the GPU; the newest state wins when the disk is slower than training) and
  re-raises a failed write.
- ``StopOnSignal`` turns SIGINT/SIGTERM into a flag the loop polls between batches; the loop
  then checkpoints and raises ``TrainingInterrupted``. A second signal stops at once.
"""

from __future__ import annotations

import os
import pickle
import random
import re
import signal
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snnrun.engine.cuda_graph import CAPTURE_LOCK
from snnrun.run.files import atomic_write
from snnrun.run.ranks import rank_zero_only
from snnrun.errors import ConfigError, TrainingInterrupted  # noqa: F401  (re-exported for loops)

CHECKPOINT = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"

# what a checkpoint may hold: everything torch.load(weights_only=True) reads without running code
PLAIN = (str, int, float, bool, type(None))  # exact types: subclasses (torch.__version__ is a TorchVersion,
                                             # an IntEnum ...) pickle as their own class


class UnsafeCheckpoint(ConfigError):
    """A checkpoint file that holds more than plain data: refused, never unpickled."""


def check_plain(obj: Any, where: str = "checkpoint") -> None:
    """Raise ``TypeError`` naming the first value that is not plain data (a bug in whoever saves it)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where}: key {k!r} is a {type(k).__name__}, not a str or int")
            check_plain(v, f"{where}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            check_plain(v, f"{where}[{i}]")
    elif type(obj) not in PLAIN and not isinstance(obj, torch.Tensor):
        raise TypeError(f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}, not plain data "
                        "(tensors, numbers, strings, lists, tuples, dicts)")


@rank_zero_only  # data-parallel runs: one writer
def save_checkpoint(run_dir: str | Path, state: dict[str, Any]) -> Path:
    """Write ``run_dir/checkpoint.pt`` atomically; the previous one becomes ``checkpoint.prev.pt``."""
    check_plain(state)  # what is written must load with weights_only=True
    run_dir = Path(run_dir)
    # written whole to checkpoint.pt.tmp before checkpoint.pt is touched: a full disk leaves the
    # last good pair as it was and no temp file (OutputError names the path)
    return atomic_write(run_dir / CHECKPOINT, lambda f: torch.save(state, f), previous=run_dir / PREVIOUS)


class CheckpointWriter:
    """``save_checkpoint`` on a background thread (``background=True``) or at once.

    The training thread never waits for the disk: ``submit`` hands a state over and returns.
    While a write is in progress, a newer submitted state replaces an older one that has not
    started (the newest wins: when writing is slower than training, intermediate checkpoints are
    skipped rather than stalling the GPU). ``wait()`` returns once the newest state is on disk.
    A failed write (disk full ...) is raised by the next ``submit`` or ``wait``."""

    def __init__(self, background: bool):
        self.background = background
        self._cv = threading.Condition()
        self._next: tuple | None = None   # (run_dir, state) not yet started
        self._busy = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._closing = False
        self.skipped = 0  # states replaced before they were written

    def submit(self, run_dir: str | Path, state: dict[str, Any]) -> None:
        self._raise()
        if not self.background:
            save_checkpoint(run_dir, state)
            return
        with self._cv:
            if self._next is not None:
                self.skipped += 1
            self._next = (run_dir, state)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="snnrun-checkpoint", daemon=True)
                self._thread.start()
            self._cv.notify_all()

    def _work(self) -> None:
        while True:
            with self._cv:
                while self._next is None and not self._closing:
                    self._cv.wait()
                if self._next is None:  # closed, nothing left to write
                    return
                job, self._next, self._busy = self._next, None, True
            try:
                with CAPTURE_LOCK:  # no CUDA call from this thread while the training thread captures a graph
                    try:
                        save_checkpoint(*job)
                    finally:
                        job = None  # the state's pinned host copies are freed here, under the lock too
            except BaseException as e:  # handed to the training thread
                with self._cv:
                    self._error = e
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()

    def wait(self) -> None:
        with self._cv:
            while self._next is not None or self._busy:
                self._cv.wait()
        self._raise()

    def close(self) -> None:
        """Write what was submitted, then end the thread (a run's last call: a process that runs
        many runs, e.g. a multirun's basic launcher, keeps no idle writer thread per run)."""
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _raise(self) -> None:
        with self._cv:
            error, self._error = self._error, None
        if error is not None:
            raise error


def _pickled_objects(path: Path, error: str) -> bool:
    """Whether the safe loader refused ``path`` for what it holds (objects, pickle opcodes it does not
    run) rather than because the bytes are garbage: it named a global, or the file is a pickle
    stream or a torch zip archive."""
    if "GLOBAL" in error:
        return True
    with open(path, "rb") as f:
        head = f.read(4)
    return head[:1] == b"\x80" or head == b"PK\x03\x04"


def _read(path: Path) -> dict[str, Any]:
    try:
        with warnings.catch_warnings():  # e.g. "pickle protocol 4": the refusal below says what matters
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)  # never runs code
    except pickle.UnpicklingError as e:
        if "weights only load failed" not in str(e).lower() or not _pickled_objects(path, str(e)):
            raise ConfigError(f"checkpoint {path} cannot be read ({type(e).__name__}): it is corrupt or "
                              "truncated", key="run_dir") from None
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        what = found.group(1) if found else "an object that is not plain data"
        older = (" (checkpoints of earlier snnrun versions held numpy objects and cannot be read any more)"
                 if found and found.group(1).startswith("numpy") else "")
        raise UnsafeCheckpoint(f"checkpoint {path} is not a plain-data checkpoint: it refers to {what}, which "
                               f"snnrun does not unpickle, since loading it could run code{older}; it was not "
                               "loaded. Use a checkpoint written by this snnrun version", key="run_dir") from None
    except Exception as e:  # truncated zip, random bytes ...
        raise ConfigError(f"checkpoint {path} cannot be read ({type(e).__name__}): it is corrupt or "
                          "truncated", key="run_dir") from e
    if not isinstance(state, dict):
        raise ConfigError(f"checkpoint {path} is not a snnrun checkpoint (no state dict)", key="run_dir")
    return state


def load_checkpoint(run_dir: str | Path, fallback: bool = True, warn=print) -> dict[str, Any]:
    """The newest readable checkpoint of a run; ``ConfigError`` naming the files if there is none.

    ``fallback=False`` reads only ``checkpoint.pt`` (evaluation must not silently use older
    weights); with ``fallback=True`` (resume) a bad ``checkpoint.pt`` is reported via ``warn``
    and ``checkpoint.prev.pt`` is used.
    """
    run_dir = Path(run_dir)
    path, prev = run_dir / CHECKPOINT, run_dir / PREVIOUS
    candidates = [p for p in ((path, prev) if fallback else (path,)) if p.is_file()]
    if not candidates:
        raise ConfigError(f"no checkpoint in {run_dir} (looked for {CHECKPOINT}"
                          f"{' and ' + PREVIOUS if fallback else ''})", key="run_dir")
    errors = []
    for p in candidates:
        try:
            state = _read(p)
        except UnsafeCheckpoint:
            raise  # not damage from a crash: no silent fallback to an older file
        except ConfigError as e:
            errors.append(e)
            continue
        if errors:
            warn(f"warning: {errors[0].message}; using the previous checkpoint {p.name} instead")
        state["_loaded_from"] = p.name
        return state
    raise errors[0] if len(errors) == 1 else ConfigError(
        "; ".join(e.message for e in errors) + " — no usable checkpoint is left", key="run_dir")


def numpy_rng_state() -> dict[str, Any]:
    """numpy's global generator state as plain data (its key array as an int64 tensor)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"bit_generator": str(name), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def set_numpy_rng_state(s: dict[str, Any]) -> None:
    np.random.set_state((s["bit_generator"], s["keys"].numpy().astype(np.uint32), s["pos"], s["has_gauss"],
                         s["cached_gaussian"]))


def rng_state(**generators: torch.Generator) -> dict[str, Any]:
    """Every random stream a loop draws from, so resuming continues the same sequence (plain data:
    python's state is a tuple of ints, numpy's a dict holding a tensor, torch's are byte tensors)."""
    state = {"python": random.getstate(), "numpy": numpy_rng_state(), "torch": torch.get_rng_state(),
             "generators": {k: g.get_state() for k, g in generators.items()}}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], **generators: torch.Generator) -> None:
    random.setstate(state["python"])
    set_numpy_rng_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for k, g in generators.items():
        g.set_state(state["generators"][k])


class StopOnSignal:
    """Context manager: SIGINT/SIGTERM/SIGUSR2 set ``self.signum`` instead of killing the process.

    The loop polls ``requested`` between batches, so a stop never lands in the middle of a
    weight update. A second signal restores the default behaviour (KeyboardInterrupt / exit).
    Outside the main thread (signal handlers cannot be set there) it does nothing.
    """

    # SIGUSR2: what Slurm jobs launched by submitit (hydra/launcher=submitit_slurm) get
    # `signal_delay_s` before their time limit; SIGTERM comes at the limit itself
    SIGNALS = tuple(getattr(signal, name) for name in
                    ("SIGINT", "SIGTERM", "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"))
                    if hasattr(signal, name))

    def __init__(self, agree=None):
        self.signum: int | None = None
        self._old: dict[int, Any] = {}
        self._agree = agree  # a data-parallel run: every rank stops at the same batch, or collectives hang

    @property
    def requested(self) -> bool:
        if self._agree is not None:
            self.signum = self._agree(self.signum)
        return self.signum is not None

    def _handle(self, signum, frame):
        if self.signum is not None:  # second signal: the user really wants out
            self.__exit__()
            signal.raise_signal(signum)
            return
        self.signum = signum

    def __enter__(self) -> "StopOnSignal":
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old = {}
