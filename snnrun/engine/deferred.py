"""Host work on device results, done batches later so that the device never waits for the host.

Reading a CUDA tensor on the host (``float(t)``, ``t.cpu()``, ``bool(t)``) waits until the device
has run everything queued so far. In a training loop that reads a metric after every batch the
device then idles while the host logs, checks and launches the next batch. Here a result is
instead copied to pinned host memory with ``non_blocking=True`` and an event is recorded behind
the copy; what the host does with it (write a metrics line, check that the state is finite, hand
a checkpoint to the writer) runs once ``lag`` more batches have been queued: waiting for that
event then only waits for an earlier batch, while the device works on the later ones.

Items run in the order they were put, so metrics lines, health findings and checkpoints keep
their order. The CPU runs the same order (host values are snapshots, cloned when put); with
``defer=False`` (data-parallel runs, whose checks are collectives every rank must reach
together) each item runs at once when it is put.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

import torch


def to_host(obj: Any, non_blocking: bool = False, snapshot: bool = False) -> Any:
    """``obj`` (tensors in nested dicts/lists/tuples) with every device tensor copied to the host;
    other values as they are. With ``non_blocking`` the copies of CUDA tensors land in pinned
    memory asynchronously: read them only after an event recorded behind them has completed.
    ``snapshot`` also clones host tensors (which later in-place updates would change)."""
    if isinstance(obj, torch.Tensor):
        if obj.device.type == "cpu":
            return obj.detach().clone() if snapshot else obj
        return obj.detach().to("cpu", non_blocking=non_blocking)
    if isinstance(obj, dict):
        return {k: to_host(v, non_blocking, snapshot) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_host(v, non_blocking, snapshot) for v in obj]
    if isinstance(obj, tuple):
        return tuple(to_host(v, non_blocking, snapshot) for v in obj)
    return obj


class HostQueue:
    """Deferred host work in order: ``put(values, then)`` copies ``values`` (tensors in nested
    containers) to the host without waiting and later calls ``then(host_values)``.

    ``next_batch()`` marks a batch boundary; ``run_ready()`` runs the items put ``lag`` or more
    boundaries ago (their batch is done or nearly so: the wait is short and the device has the
    batches since queued; ``lag=2`` absorbs a slow host step, e.g. a checkpoint's snapshot);
    ``run_all()`` runs everything (epoch ends, stops, checkpoints that must be on disk now)."""

    def __init__(self, device: torch.device, defer: bool = True, lag: int = 1):
        self.cuda = torch.device(device).type == "cuda"
        self.defer = defer
        self.lag = max(int(lag), 1)  # batches between an item's put and its run (run_ready)
        self.batch = 0
        self.items: deque = deque()  # (batch, event or None, host values, then)

    def put(self, values: Any, then: Callable[[Any], None]) -> None:
        if not self.defer:
            then(to_host(values))
            return
        host = to_host(values, non_blocking=True, snapshot=True)
        event = None
        if self.cuda:
            event = torch.cuda.Event()
            event.record()
        self.items.append((self.batch, event, host, then))

    def next_batch(self) -> None:
        self.batch += 1

    def run_ready(self) -> None:
        while self.items and self.items[0][0] <= self.batch - self.lag:
            self._run_first()

    def run_all(self) -> None:
        while self.items:
            self._run_first()

    def _run_first(self) -> None:
        _, event, host, then = self.items.popleft()
        if event is not None:
            event.synchronize()
        then(host)

    def clear(self) -> None:
        """Drop what was not run (after an error: those results no longer matter)."""
        self.items.clear()

    def __len__(self) -> int:
        return len(self.items)
