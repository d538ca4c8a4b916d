"""Graph-captured simulation: one batch's whole presentation replayed as a single CUDA graph.

Eager PyTorch launches every small kernel of every time step from Python; for networks the
size of Diehl & Cook that launch overhead, not arithmetic, sets the speed (BindsNET's
images/s barely changes with network size). Here the first batch of a given shape is
captured once — encoding, all T steps (currents, neuron updates, traces, STDP, spike
counting) and the end-of-sample weight normalisation — and every later batch is a copy into
a static input buffer plus one graph replay: no Python and no host sync inside a sample.

Random numbers (Poisson encoding, the one-spike choice) come from CUDA's Philox generator,
which graph replays advance, so every replay draws fresh numbers. On the CPU, or when
capture is switched off, :class:`GraphRunner` simply calls the eager path.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

import torch

# A capture in torch's default mode (cudaStreamCaptureModeGlobal) is invalidated when any other
# thread of the process makes a potentially unsafe CUDA call meanwhile, and a failed capture
# leaves the process's CUDA state (the RNG's graph offsets) broken for the captures after it.
# snnrun's own background thread, the checkpoint writer, saves pinned host copies and frees them
# (freeing a pinned block records a CUDA event on the stream that filled it): it holds this lock
# while it works, and every capture holds it too.
CAPTURE_LOCK = threading.RLock()  # re-entrant: a capture inside another one (same thread) must not deadlock


def capture(fn, calls: int = 1, warmup: int = 3) -> torch.cuda.CUDAGraph:
    """``calls`` calls of ``fn`` captured as one CUDA graph, after ``warmup`` eager calls on a side
    stream (Triton's and cuBLAS's first-call work, the allocator's pools). ``fn`` must be
    capturable: fixed shapes, no host syncs; its outputs live in the graph's memory pool."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmup):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with CAPTURE_LOCK, torch.cuda.graph(g):
        for _ in range(calls):
            fn()
    return g


def _clone(out):
    return {k: v.clone() for k, v in out.items()} if isinstance(out, dict) else out.clone()


class GraphRunner:
    """Calls ``fn(x) -> tensor (or dict of tensors)`` through a CUDA graph per (input shape, train/eval mode).

    ``fn`` must be capturable: static shapes, no host syncs, and state it keeps between
    calls (weights, thresholds) updated in place — true for snnrun's Network.run.
    """

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], module: torch.nn.Module,
                 enabled: bool = True, warmup: int = 2):
        self.fn, self.module, self.warmup = fn, module, warmup
        self.enabled = enabled and torch.cuda.is_available()
        self._graphs: dict[tuple, tuple] = {}
        self.capture_s = 0.0  # seconds spent capturing (and torch.compile-ing) new shapes: one-off work

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.enabled and x.is_cuda):
            return self.fn(x)
        key = (tuple(x.shape), x.dtype, self.module.training)
        if key not in self._graphs:
            self._graphs[key] = self._capture(x)
            # the warm-up and capture already presented this batch once: that counts as its run
            return _clone(self._graphs[key][2])
        graph, static_x, static_out = self._graphs[key]
        static_x.copy_(x, non_blocking=True)
        graph.replay()
        return _clone(static_out)

    def _capture(self, x: torch.Tensor):
        torch.cuda.synchronize()  # once per shape: time the capture alone, not the batches queued before
        t0 = time.perf_counter()
        try:
            return self._capture_graph(x)
        finally:
            torch.cuda.synchronize()
            self.capture_s += time.perf_counter() - t0

    def _capture_graph(self, x: torch.Tensor):
        # learning state must not move during warm-up: snapshot it and restore afterwards,
        # so that capturing does not present the first batch several times
        saved = {k: v.clone() for k, v in self.module.state_dict().items()}
        static_x = x.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.warmup):  # cuBLAS handles, allocator pools
                self.fn(static_x)
        torch.cuda.current_stream().wait_stream(side)
        self._restore(saved)
        graph = torch.cuda.CUDAGraph()
        with CAPTURE_LOCK, torch.cuda.graph(graph):
            static_out = self.fn(static_x)
        # capture records without running: restore and replay once so this batch really runs
        self._restore(saved)
        graph.replay()
        return graph, static_x, static_out

    def _restore(self, saved: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for k, v in self.module.state_dict().items():
                v.copy_(saved[k])

    def reset(self) -> None:
        """Drop captured graphs (e.g. after loading new weights into *new* tensors)."""
        self._graphs.clear()
