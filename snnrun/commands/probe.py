"""Look at one neuron model before using it: membrane trace + spikes under an input, or its f-I curve.

    snnrun probe neuron=izhikevich input=step input.amplitude=10 time=500
    snnrun probe neuron=lif sweep=fi sweep.max=5 out=lif_fi.png

``neuron`` names a preset in conf/neuron/ (its reference defaults) or a registered type;
``neuron.<param>=value`` overrides a parameter. ``input`` is a generator (step, constant,
sin, ramp, poisson_generator) with ``input.<param>=value``. ``sweep=fi`` runs one neuron per
current in ``sweep.min .. sweep.max`` (``sweep.points`` values, batched) and plots the rate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from snnrun.errors import ConfigError  # noqa: E402
from snnrun.components.generators import Generator  # noqa: E402
from snnrun.components.neurons import NeuronModel  # noqa: E402
from snnrun.registry import as_node  # noqa: E402

TOP_KEYS = {"neuron", "input", "time", "dt", "sweep", "out", "seed"}


def neuron_node(name_or_node: Any) -> dict:
    """A neuron config node from a preset name (conf/neuron/<name>.yaml), a type, or a mapping."""
    if not isinstance(name_or_node, str):
        return as_node(name_or_node, "neuron")
    from omegaconf import OmegaConf

    from snnrun.config import config_dir

    preset = config_dir() / "neuron" / f"{name_or_node}.yaml"
    if preset.exists():
        return OmegaConf.to_container(OmegaConf.load(preset), resolve=True)  # type: ignore[return-value]
    return as_node(name_or_node, "neuron")


def build_neuron(node: dict, dt: float, n: int = 1) -> NeuronModel:
    node = {k: v for k, v in node.items() if k != "n"}
    # probes look at dynamics, not at learning: traces off unless asked for
    group = NeuronModel.build({**node, "n": n}, key="neuron", dt=dt)
    group.eval()
    return group


@torch.no_grad()
def simulate(node: dict, input_node: dict, time: float = 500.0, dt: float = 1.0) -> dict[str, torch.Tensor]:
    """Drive one neuron with a generator; return times (ms), input, v and spikes, each (T,)."""
    group = build_neuron(node, dt)
    gen = Generator.build(input_node, key="input", time=time, dt=dt)
    x = gen(batch_size=1, shape=group.shape)
    group.reset_state(1)
    vs, ss = [], []
    for t in range(x.shape[0]):
        s = group(x[t])
        ss.append(s.reshape(-1)[0].float())
        v = getattr(group, "v", None)
        vs.append(v.reshape(-1)[0].float() if isinstance(v, torch.Tensor) and v.numel() else torch.tensor(float("nan")))
    return {"t": gen.times(), "input": x[:, 0].reshape(x.shape[0], -1)[:, 0].float(),
            "v": torch.stack(vs), "s": torch.stack(ss)}


@torch.no_grad()
def fi_curve(node: dict, currents, time: float = 1000.0, dt: float = 1.0) -> torch.Tensor:
    """Firing rate (Hz) under each constant current: one sample per current, simulated in one batch."""
    currents = torch.as_tensor(currents, dtype=torch.float32).reshape(-1)
    group = build_neuron(node, dt)
    group.reset_state(len(currents))
    x = currents.view(-1, *([1] * len(group.shape))).expand(len(currents), *group.shape)
    steps = int(round(time / dt))
    count = torch.zeros(len(currents))
    for _ in range(steps):
        count += (group(x) > 0).reshape(len(currents), -1)[:, 0].float()
    return count * 1000.0 / (steps * dt)


def save_trace_png(trace: dict[str, torch.Tensor], path: Path, title: str) -> None:
    fig, (ax_v, ax_i) = plt.subplots(2, 1, figsize=(8, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    t = trace["t"].numpy()
    ax_v.plot(t, trace["v"].numpy(), lw=1.0, color="black", label="v")
    spikes = t[trace["s"].numpy() > 0]
    if len(spikes):
        ax_v.vlines(spikes, *ax_v.get_ylim(), color="tab:red", lw=0.6, alpha=0.5, label=f"spikes ({len(spikes)})")
    ax_v.set_ylabel("membrane v")
    ax_v.legend(loc="upper right", fontsize=8)
    ax_v.set_title(title)
    ax_i.plot(t, trace["input"].numpy(), lw=1.0, color="tab:blue")
    ax_i.set_ylabel("input")
    ax_i.set_xlabel("time (ms)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save_fi_png(currents: torch.Tensor, rates: torch.Tensor, path: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(currents.numpy(), rates.numpy(), "o-", ms=3)
    ax.set_xlabel("input current")
    ax.set_ylabel("firing rate (Hz)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(args: list[str]) -> dict[str, Any]:
    """``key=value`` pairs (values read as YAML) into a nested dict: neuron / input / sweep nodes."""
    out: dict[str, Any] = {"neuron": None, "input": {}, "sweep": None}
    extra = {"neuron": {}, "input": {}, "sweep": {}}
    for a in args:
        if "=" not in a:
            raise ConfigError(f"arguments are key=value, got {a!r}", key="probe")
        k, v = a.split("=", 1)
        value = yaml.safe_load(v) if v != "" else None
        head, _, rest = k.partition(".")
        if head not in TOP_KEYS:
            from snnrun.registry import did_you_mean

            raise ConfigError(f"unknown probe option '{head}'.{did_you_mean(head, TOP_KEYS)} "
                              f"Allowed: {', '.join(sorted(TOP_KEYS))}", key=k)
        if rest:
            if head not in extra:
                raise ConfigError(f"'{head}' has no sub-options", key=k)
            extra[head][rest] = value
        elif head == "input":
            out["input"] = as_node(value, "input")
        else:
            out[head] = value
    if out["neuron"] is None:
        raise ConfigError("say which neuron to probe: neuron=<preset or type>, e.g. neuron=izhikevich",
                          key="neuron")
    out["neuron_node"] = {**neuron_node(out["neuron"]), **extra["neuron"]}
    out["input"] = {"type": "step", **out["input"], **extra["input"]}
    out["sweep_opts"] = extra["sweep"]
    return out


def run_probe(args: list[str], cwd: Path | None = None) -> Path:
    """The ``snnrun probe`` command: writes a PNG and returns its path."""
    opts = parse_args(args)
    torch.manual_seed(int(opts.get("seed") or 0))
    time = float(opts.get("time") or (1000.0 if opts["sweep"] else 500.0))
    dt = float(opts.get("dt") or 1.0)
    name = str(opts["neuron"])
    cwd = Path(cwd or Path.cwd())
    if opts["sweep"] not in (None, "fi"):
        raise ConfigError(f"unknown sweep '{opts['sweep']}'. Allowed: fi", key="sweep")
    if opts["sweep"] == "fi":
        s = opts["sweep_opts"]
        lo, hi, pts = float(s.get("min", 0.0)), float(s.get("max", 20.0)), int(s.get("points", 41))
        unknown = set(s) - {"min", "max", "points"}
        if unknown:
            raise ConfigError(f"unknown sweep option(s) {sorted(unknown)}. Allowed: min, max, points", key="sweep")
        currents = torch.linspace(lo, hi, pts)
        rates = fi_curve(opts["neuron_node"], currents, time=time, dt=dt)
        path = cwd / (opts.get("out") or f"probe_{name}_fi.png")
        save_fi_png(currents, rates, path, f"{name}: f-I curve ({time:g} ms per current)")
        return path
    trace = simulate(opts["neuron_node"], opts["input"], time=time, dt=dt)
    path = cwd / (opts.get("out") or f"probe_{name}.png")
    inp = ", ".join(f"{k}={v}" for k, v in opts["input"].items() if k != "type")
    save_trace_png(trace, path, f"{name} under {opts['input']['type']}({inp}): "
                                f"{int(trace['s'].sum())} spikes in {time:g} ms")
    return path
