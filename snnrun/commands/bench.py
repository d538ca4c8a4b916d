"""`snnrun bench`: named workloads timed on this machine, printed as a table and JSON lines.

Every result carries the hardware, versions, the workload's parameters, throughput
(images/s or ms per call), peak device memory and, where it means something, effective
memory bandwidth. Timing: warm-up first, device synchronised around each repeat, the median
of the repeats reported. Nothing here asserts a speed: the numbers are for reading.
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from omegaconf import DictConfig, OmegaConf

from snnrun.errors import ConfigError
from snnrun.schema import store_schema
from snnrun.engine.cuda_graph import capture
from snnrun.engine.experiment import resolve_device
from snnrun.registry import Registered, Registry


@dataclass
class BenchConfig:
    """Types of conf/bench.yaml's keys (the ``bench_schema`` in its defaults list)."""

    workload: Any = None
    device: str = "auto"
    repeats: int = 5
    warmup: int = 2
    out: Optional[str] = None


store_schema("bench_schema", BenchConfig)


def hardware(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"device": str(device), "torch": torch.__version__,
                            "python": platform.python_version(), "cpu_threads": torch.get_num_threads()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info["cpu_cores"] = os.cpu_count()
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        info.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1), cuda=torch.version.cuda)
    return info


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, warmup: int, repeats: int) -> list[float]:
    """Seconds per call for each repeat, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t0)
    return out


def seconds_per_call(fn, device: torch.device, warmup: int, repeats: int, inner: int) -> float:
    """Seconds per call of ``fn``: the median over ``repeats`` timings of ``inner`` calls each."""
    return statistics.median(timed(lambda: [fn() for _ in range(inner)], device, warmup, repeats)) / inner


def graph_us(fn, reps: int = 20, inner: int = 10, warmup: int = 3) -> float:
    """Median GPU microseconds per call of ``fn``, ``inner`` calls captured in one CUDA graph and
    replayed ``reps`` times: GPU time alone, without the host's per-call overhead (tools/)."""
    g = capture(fn, calls=inner, warmup=warmup)
    out = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        torch.cuda.synchronize()
        out.append(a.elapsed_time(b) * 1e3 / inner)
    return statistics.median(out)


def peak_mib(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None


class Workload(Registered):
    """A named benchmark: ``run(device, warmup, repeats) -> result dict``."""

    registry: Registry = Registry("workload")


def _dc_experiment(n: int, batch: int, time_ms: float, dt: float, engine: str, device: str,
                   matmul: str = "fp32"):
    from snnrun.engine.experiment import build_experiment
    from snnrun.run.compose import compose

    engines = ("auto", "graph", "compiled", "eager", "cpu_loop")
    if engine not in engines:
        raise ConfigError(f"engine must be one of {', '.join(engines)}, got {engine!r}", key="workload.engine")
    if engine == "auto":  # what `snnrun train` does by default: compiled steps in a graph on CUDA,
        # the compiled C loop on the CPU (snnrun/engine/cpu_loop.py; eager where no C compiler is found)
        engine = "compiled" if str(device).startswith("cuda") else "cpu_loop_auto"
    cfg = compose("config", [
        "+model=diehl_cook", "data=synthetic", "data.shape=[1,28,28]", "data.intensity=128.0",
        f"data.n_train={max(batch, 64)}", "data.n_test=1", f"model.n_neurons={n}",
        f"model.time={time_ms}", f"model.dt={dt}", f"device={device}",
        f"trainer.cuda_graphs={engine not in ('eager', 'cpu_loop', 'cpu_loop_auto')}",
        f"trainer.compile={engine == 'compiled'}",
        f"trainer.cpu_kernel={'true' if engine == 'cpu_loop' else 'auto' if engine == 'cpu_loop_auto' else 'false'}",
        f"model.network.connections.X_Ae.matmul={matmul}"])
    exp = build_experiment(cfg)
    x = exp.data.train.x[:batch].to(exp.device)
    return exp, x


PRECISIONS = ("highest", "high", "fp16x2")


@Workload.register("dc_train")
class DiehlCookTrain(Workload):
    """Diehl & Cook training (STDP on) images/s at MNIST size, BindsNET's eth_mnist settings."""

    learning = True

    def __init__(self, n: int = 400, batch: int = 256, time: float = 250.0, dt: float = 1.0,
                 engine: str = "auto", precision: str = "fp16x2"):
        self.n, self.batch, self.time, self.dt, self.engine = int(n), int(batch), float(time), float(dt), engine
        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)} (highest: float32 matmuls, "
                              f"high: TF32, fp16x2: split fp16 weights on tensor cores), got {precision!r}",
                              key="workload.precision")
        self.precision = precision

    def run(self, device: torch.device, warmup: int, repeats: int) -> dict[str, Any]:
        before = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("high" if self.precision == "high" else "highest")
        try:
            return self._run(device, warmup, repeats)
        finally:
            torch.set_float32_matmul_precision(before)

    def _run(self, device: torch.device, warmup: int, repeats: int) -> dict[str, Any]:
        exp, x = _dc_experiment(self.n, self.batch, self.time, self.dt, self.engine, str(device),
                                "fp16x2" if self.precision == "fp16x2" else "fp32")
        exp.network.train(self.learning)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        exp.simulate(x)  # compilation and graph capture happen here
        sync(device)
        first_call_s = time.perf_counter() - t0
        secs = timed(lambda: exp.simulate(x), device, warmup, repeats)
        med = statistics.median(secs)
        return {"images_per_s": round(self.batch / med, 2), "ms_per_batch": round(med * 1e3, 3),
                "first_call_s": round(first_call_s, 2),
                "repeat_ms": [round(s * 1e3, 3) for s in secs], "steps_per_sample": exp.encoder.steps,
                "peak_mem_mib": peak_mib(device),
                "engine_used": "cpu_loop" if exp.network.cpu_loop is not None else
                ("compiled+" if exp.network.compiled else "") +
                ("graph" if exp.runner.enabled and device.type == "cuda" else "eager")}


@Workload.register("dc_eval")
class DiehlCookEval(DiehlCookTrain):
    """Diehl & Cook inference (learning off, thresholds frozen) images/s."""

    learning = False


@Workload.register("lif_fwd_bwd")
class LIFForwardBackward(Workload):
    """One multi-step LIF layer [T, B, N] forward + backward (loss = sum of spikes), ms per call.
    ``model``: lif (tau 2), if, plif (learned k = sigmoid(w), its gradient computed too), or alif
    (exp-Euler adaptive LIF, brainstate's defaults: tau 5, tau_a 100, beta 0.1, relu_grad).

    ``graphs: true`` (CUDA) replays the call's forward and backward as one captured CUDA graph,
    as the layer runs inside snnrun's captured training step (``trainer.cuda_graphs``): the
    host's per-call work (Python, autograd, kernel launches) drops to one graph launch, so the
    figure is the kernels' own time. On the CPU it runs the plain call (``graphed`` false in the
    result)."""

    def __init__(self, T: int = 32, B: int = 128, N: int = 4096, model: str = "lif", backend: str = "fused",
                 graphs: bool = False):
        if model not in ("lif", "if", "plif", "alif"):
            raise ConfigError(f"model must be lif, if, plif or alif, got {model!r}", key="workload.model")
        if model == "alif" and backend == "loop":
            raise ConfigError("the loop baseline covers lif, if and plif; alif runs fused only",
                              key="workload.backend")
        if backend not in ("fused", "loop"):
            raise ConfigError(f"backend must be fused or loop, got {backend!r}", key="workload.backend")
        if not isinstance(graphs, bool):
            raise ConfigError(f"graphs must be true or false, got {graphs!r}", key="workload.graphs")
        self.T, self.B, self.N, self.model, self.backend = int(T), int(B), int(N), model, backend
        self.graphs = graphs

    def run(self, device: torch.device, warmup: int, repeats: int) -> dict[str, Any]:
        from snnrun.engine.kernels.lif_multistep import lif_multistep, lif_multistep_loop

        g = torch.Generator(device=device).manual_seed(0)
        x = (1.5 * torch.rand(self.T, self.B, self.N, device=device, generator=g)).requires_grad_(True)
        tau = None if self.model == "if" else 2.0
        w = torch.zeros((), device=device, requires_grad=True)  # plif: k = sigmoid(0) = 1/tau
        layer = lif_multistep if self.backend == "fused" else lif_multistep_loop

        def run_layer():
            if self.model == "alif":
                from snnrun.engine.kernels.alif_multistep import alif_multistep

                zeros = x.new_zeros(x.shape[1:])
                return alif_multistep(x, zeros, zeros, tau=5.0, tau_a=100.0, beta=0.1)[:2]
            return layer(x, tau=tau, k=torch.sigmoid(w) if self.model == "plif" else None)

        def fwd_bwd():
            s, _ = run_layer()
            return torch.autograd.grad(s.sum(), [x, w] if self.model == "plif" else [x])

        def fwd():
            with torch.no_grad():
                return run_layer()

        inner = 10 if device.type == "cuda" else 1
        # at least 5 warm-up groups (as the peer harness): clocks ramp up, Triton compiles
        warmup = max(warmup, 5) if device.type == "cuda" else warmup
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
        graphed = self.graphs and device.type == "cuda"
        if graphed:  # one graph per call: a replay stands for one layer call (forward + backward)
            g_fb, g_f = capture(fwd_bwd, warmup=warmup), capture(fwd, warmup=warmup)
            fwd_bwd, fwd = g_fb.replay, g_f.replay
        ms_fb = seconds_per_call(fwd_bwd, device, warmup, repeats, inner)
        ms_f = seconds_per_call(fwd, device, warmup, repeats, inner)
        tensor_bytes = self.T * self.B * self.N * 4
        peak = peak_mib(device)
        return {"fwd_bwd_ms": round(ms_fb * 1e3, 4), "fwd_ms": round(ms_f * 1e3, 4),
                # x read, spikes written (forward); grad read, grad_x written (backward)
                "fwd_bwd_gb_s": round(4 * tensor_bytes / ms_fb / 1e9, 1),
                "fwd_gb_s": round(2 * tensor_bytes / ms_f / 1e9, 1),
                "peak_extra_mib": None if peak is None else round(peak - base / 2**20, 1),
                "backend_used": ("eager autograd loop" if self.backend == "loop" else
                                 "triton" if device.type == "cuda" else "fused-torch (CPU)"),
                "graphed": graphed}


@Workload.register("csnn_train_step")
class CSNNTrainStep(Workload):
    """One surrogate-BPTT optimiser step of ``+model=csnn`` on 28x28 inputs, images/s."""

    def __init__(self, batch: int = 128, T: int = 4, model: str = "csnn", amp: bool | str = False, graphs: bool = True):
        self.batch, self.T, self.model = int(batch), int(T), str(model)
        self.amp = amp  # model.learner.amp: false, true/bf16 or tf32 (the learner checks it)
        self.graphs = bool(graphs)  # the whole step as one CUDA graph (on CUDA; false: eager launches)

    def run(self, device: torch.device, warmup: int, repeats: int) -> dict[str, Any]:
        from snnrun.engine.experiment import build_experiment
        from snnrun.run.compose import compose

        cfg = compose("config", [
            f"+model={self.model}", "data=synthetic", "data.shape=[1,28,28]", "data.n_classes=10",
            f"data.n_train={self.batch * 2}", "data.n_test=1", f"model.T={self.T}", f"device={device}",
            f"model.learner.amp={self.amp}", f"trainer.cuda_graphs={self.graphs}"])
        exp = build_experiment(cfg)
        exp.configure_gradient(epochs=1, steps_per_epoch=1000)
        exp.network.train()
        x = exp.train.x[:self.batch].to(device)
        y = exp.train.y[:self.batch].to(device)

        def step():
            exp.gradient_step(x, y)

        if exp.graphed is not None:  # its warm-up steps and the capture are one-off work, untimed
            warmup = max(warmup, exp.graphed.warmup + 2)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        secs = timed(step, device, warmup, repeats)
        med = statistics.median(secs)
        return {"images_per_s": round(self.batch / med, 2), "ms_per_step": round(med * 1e3, 3),
                "cuda_graph": exp.graphed is not None and bool(exp.graphed._graphs),
                "repeat_ms": [round(s_ * 1e3, 3) for s_ in secs], "peak_mem_mib": peak_mib(device)}


def bench_configs(args: list[str]) -> list[DictConfig]:
    """conf/bench.yaml composed by Hydra once per configuration: comma lists (and Hydra's other
    sweeps, range(...)) in the overrides sweep as a product, in the order given."""
    from snnrun.run.compose import _parse, compose

    parsed = _parse(args)
    fixed = [a for a, o in zip(args, parsed) if not o.is_sweep_override()]
    sweeps = [[f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()]
              for o in parsed if o.is_sweep_override()]
    return [compose("bench", [*fixed, *combo]) for combo in itertools.product(*sweeps)]


def _top(cfg: DictConfig) -> dict[str, Any]:
    return {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k != "workload"}


def parse_overrides(args: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The bench options (of the first configuration) and each configuration's workload node."""
    cfgs = bench_configs(args)
    return _top(cfgs[0]), [OmegaConf.to_container(c.workload, resolve=True) for c in cfgs]


def build_workload(wcfg: dict[str, Any]) -> Workload:
    try:
        return Workload.registry.build(wcfg, key="workload")
    except (TypeError, ValueError) as e:  # int("lots"): a value of the wrong type
        raise ConfigError(f"bad workload option: {e}", key="workload") from e


def run_bench(args: list[str] | DictConfig) -> list[dict[str, Any]]:
    """``snnrun bench``: overrides (comma lists sweep) or one composed config (the Hydra app's)."""
    from rich.table import Table

    from snnrun.run.console import console, print_table

    cfgs = [args] if isinstance(args, DictConfig) else bench_configs(list(args))
    runs = [(_top(c), OmegaConf.to_container(c.workload, resolve=True)) for c in cfgs]
    workloads = [build_workload(wcfg) for _, wcfg in runs]  # every configuration checked before any runs
    device = resolve_device(runs[0][0]["device"])
    hw = hardware(device)
    console.print(f"[bold]snnrun bench[/] on {hw.get('gpu', hw.get('cpu', '?'))} ({device}), torch {hw['torch']}")
    results = []
    for (top, wcfg), workload in zip(runs, workloads):
        if resolve_device(top["device"]) != device:
            device = resolve_device(top["device"])
            hw = hardware(device)
        res = workload.run(device, int(top["warmup"]), int(top["repeats"]))
        record = {"workload": wcfg["type"], "params": {k: v for k, v in wcfg.items() if k != "type"},
                  **res, "hardware": hw}
        results.append(record)
        line = json.dumps(record)
        print(line, flush=True)
        if top.get("out"):
            with open(top["out"], "a") as f:
                f.write(line + "\n")
    table = Table(title=f"snnrun bench: {hw.get('gpu', hw.get('cpu', ''))}")
    table.add_column("workload")
    table.add_column("params")
    table.add_column("result", justify="right")
    table.add_column("peak MiB", justify="right")
    for r in results:
        main = (f"{r['images_per_s']:,.1f} images/s" if "images_per_s" in r else
                f"{r['fwd_bwd_ms']:.3f} ms fwd+bwd ({r['fwd_bwd_gb_s']} GB/s), {r['fwd_ms']:.3f} ms fwd")
        peak = r.get("peak_mem_mib", r.get("peak_extra_mib"))
        table.add_row(r["workload"], " ".join(f"{k}={v}" for k, v in r["params"].items()), main,
                      "-" if peak is None else f"{peak:,.0f}")
    print_table(table)
    return results
