"""A gradient learner's whole training step replayed as one CUDA graph (issue 16).

Eager surrogate-gradient training launches every kernel of the forward over T steps, the backward
through time and the optimiser from Python, one by one; for networks of MNIST's size the host's
launch work, not the GPU's arithmetic, sets the speed. Here each batch shape is captured once —
forward over T, loss, backward, gradient clipping and the optimiser step — and every later batch
of that shape is two copies into static buffers plus one graph replay.

What makes the step capturable:
- the optimiser is built with ``capturable=True`` and a learning rate held in a 0-dim tensor on
  the device, so its step counters stay on the device and a scheduler's new rate (``fill_``)
  reaches the graph without a new capture; schedulers step outside the graph;
- gradients are set to None before the capture, so the captured backward writes fresh gradients
  at fixed addresses on every replay (no accumulation);
- autocast runs without its weight cache inside the capture (torch's rule for graphs);
- a few real training steps on a side stream first (``warmup``): the optimiser's state, cuDNN's
  algorithm choice and torch.compile's code exist before the capture.

Dropout and the other random draws use CUDA's Philox generator, whose offsets graph replays advance.
A batch of another shape (an epoch's smaller last batch) gets its own graph, or runs eagerly
while its shape has not yet had ``warmup`` steps. If a capture fails (an operation that needs the
host), the step warns once and stays eager: ``trainer.cuda_graphs=false`` turns it off up front.
"""

from __future__ import annotations

import time
import warnings
from typing import Callable

import torch

from snnrun.engine.cuda_graph import CAPTURE_LOCK

StepFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict]]


def _clone(out: dict) -> dict:
    return {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in out.items()}


class GraphedTrainStep:
    """``step(x, y) -> (loss, output)`` through one CUDA graph per batch shape.

    ``step`` must be the device part of a training step (zero grads, forward, loss, backward,
    clip, optimiser step) with no host syncs; ``x`` and ``y`` on the device.
    """

    def __init__(self, step: StepFn, warmup: int = 3):
        self.step, self.warmup = step, max(1, int(warmup))
        self.enabled = True
        self._seen: dict[tuple, int] = {}
        self._graphs: dict[tuple, tuple] = {}
        self.capture_s = 0.0  # warm-up steps (compile) and captures: one-off work per shape

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict]:
        if not (self.enabled and x.is_cuda):
            return self.step(x, y)
        key = (tuple(x.shape), x.dtype, tuple(y.shape), y.dtype)
        if key in self._graphs:
            graph, static_x, static_y, loss, out = self._graphs[key]
            static_x.copy_(x, non_blocking=True)
            static_y.copy_(y, non_blocking=True)
            graph.replay()
            return loss.clone(), _clone(out)  # the next replay overwrites the static outputs
        n = self._seen.get(key, 0)
        self._seen[key] = n + 1
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        try:
            if n < self.warmup:  # real steps on a side stream: optimiser state, cuDNN, compile
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    result = self.step(x, y)
                torch.cuda.current_stream().wait_stream(side)
                return result
            return self._capture(key, x, y)
        finally:
            torch.cuda.synchronize()
            self.capture_s += time.perf_counter() - t0

    def _capture(self, key: tuple, x: torch.Tensor, y: torch.Tensor):
        static_x, static_y = x.clone(), y.clone()
        graph = torch.cuda.CUDAGraph()
        try:
            with CAPTURE_LOCK, torch.cuda.graph(graph):
                loss, out = self.step(static_x, static_y)
        except Exception as e:  # an operation that needs the host: stay eager
            self.enabled = False
            torch.cuda.synchronize()
            warnings.warn(f"the training step could not be captured as a CUDA graph ({type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''}); training eagerly "
                          "(trainer.cuda_graphs=false skips the attempt)", RuntimeWarning, stacklevel=3)
            return self.step(x, y)
        self._graphs[key] = (graph, static_x, static_y, loss, out)
        graph.replay()  # the capture recorded without running: this batch's step
        return loss.clone(), _clone(out)
