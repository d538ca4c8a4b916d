"""Look at one neuron model before using it: membrane trace + spikes under an input, or its f-I curve.

    snnrun probe neuron=izhikevich input=step input.amplitude=10 time=500
    snnrun probe neuron=lif sweep=fi sweep.max=5 out=figures/lif_fi.png

A Hydra app on conf/probe.yaml (``snnrun probe --help`` lists its groups and config).
``neuron`` picks a preset in conf/neuron/ (its reference defaults; ``+neuron.type=NAME`` probes a
registered type without one); ``neuron.<param>=value`` overrides a parameter. ``input`` picks a
generator preset in conf/input/ (step, constant, sin, ramp, poisson_generator) with
``input.<param>=value``. ``sweep=fi`` runs one neuron per current in ``sweep.min .. sweep.max``
(``sweep.points`` values, batched) and plots the rate. The PNG goes to ``out=`` (parent folders
created) or into a new run directory, ``outputs/probe/<date>/<time>_<neuron>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from snnrun.errors import ConfigError
from snnrun.schema import store_schema  # noqa: E402
from snnrun.components.generators import Generator  # noqa: E402
from snnrun.components.neurons import NeuronModel  # noqa: E402
from snnrun.registry import as_node  # noqa: E402
from snnrun.run.plots import save_figure, voltage_unit  # noqa: E402

@dataclass
class FiSweepConfig:
    type: str = "fi"
    min: float = 0.0
    max: float = 20.0
    points: int = 41


@dataclass
class ProbeConfig:
    """Types of conf/probe.yaml's keys (the ``probe_schema`` in its defaults list)."""

    neuron: Any = None
    input: Any = None
    sweep: Optional[FiSweepConfig] = None
    time: Optional[float] = None
    dt: float = 1.0
    seed: int = 0
    out: Optional[str] = None


store_schema("probe_schema", ProbeConfig)


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


def trace_figure(trace: dict[str, torch.Tensor], title: str, unit: str = "mV"):
    """Membrane potential (top, spikes marked) and input (bottom) of one probed neuron."""
    fig, (ax_v, ax_i) = plt.subplots(2, 1, figsize=(9, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    t = trace["t"].numpy()
    ax_v.plot(t, trace["v"].numpy(), lw=1.0, color="black", label="v")
    spikes = t[trace["s"].numpy() > 0]
    if len(spikes):
        ax_v.vlines(spikes, *ax_v.get_ylim(), color="tab:red", lw=0.6, alpha=0.5, label=f"spikes ({len(spikes)})")
    ax_v.set_ylabel(f"membrane potential v ({unit})")
    ax_v.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0)
    ax_v.set_title(title)
    ax_i.plot(t, trace["input"].numpy(), lw=1.0, color="tab:blue")
    ax_i.set_ylabel("input x (model units)")
    ax_i.set_xlabel("time (ms)")
    ax_i.set_xlim(t[0], t[-1]) if len(t) > 1 else None
    fig.tight_layout()
    return fig


def save_trace_png(trace: dict[str, torch.Tensor], path: Path, title: str, unit: str = "mV") -> None:
    save_figure(trace_figure(trace, title, unit), path, dpi=110)


def fi_figure(currents: torch.Tensor, rates: torch.Tensor, title: str):
    """Firing rate against constant input current."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(currents.numpy(), rates.numpy(), "o-", ms=3)
    ax.set_xlabel("constant input current x (model units)")
    ax.set_ylabel("firing rate (Hz)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def save_fi_png(currents: torch.Tensor, rates: torch.Tensor, path: Path, title: str) -> None:
    save_figure(fi_figure(currents, rates, title), path, dpi=110)


def _compose(args: list[str]) -> tuple[DictConfig, str]:
    """conf/probe.yaml composed by Hydra with ``args``; also the neuron's name for file names."""
    from snnrun.run.compose import compose

    try:
        full = compose("probe", args, return_hydra_config=True)
    except ConfigError as e:
        raise _preset_hint(e) from e
    choice = OmegaConf.select(full, "hydra.runtime.choices.neuron")
    with_hydra = OmegaConf.to_container(full, resolve=False)
    with_hydra.pop("hydra", None)
    cfg = OmegaConf.create(with_hydra)
    check(cfg)
    return cfg, probe_name(cfg, choice)


def _preset_hint(e: ConfigError) -> ConfigError:
    import re

    m = re.match(r"no preset '([^']+)' in config group 'neuron'", e.message)
    if e.key == "neuron" and m and m.group(1) in NeuronModel.registry:
        return ConfigError(f"'{m.group(1)}' is a registered neuron type without a preset in conf/neuron/: "
                           f"probe it with +neuron.type={m.group(1)} (+neuron.<param>=value for its "
                           "parameters)", key="neuron")
    return e


def probe_name(cfg: DictConfig, choice: str | None = None) -> str:
    return str(choice) if choice not in (None, "null", "") else str(OmegaConf.select(cfg, "neuron.type"))


def check(cfg: DictConfig) -> None:
    """What composition cannot say: a neuron was chosen, and its node and the input build."""
    if cfg.get("neuron") is None:
        raise ConfigError("say which neuron to probe: neuron=<preset> (snnrun list neurons), e.g. "
                          "neuron=izhikevich; or +neuron.type=<registered type>", key="neuron")
    dt = float(cfg.dt)
    build_neuron(OmegaConf.to_container(cfg.neuron, resolve=True), dt)
    Generator.build(OmegaConf.to_container(cfg.input, resolve=True), key="input", time=10.0 * dt, dt=dt)


def parse_args(args: list[str]) -> DictConfig:
    """``snnrun probe``'s config: conf/probe.yaml composed by Hydra with ``args`` (its overrides),
    checked; ConfigError naming the key otherwise."""
    return _compose(args)[0]


def png_path(cfg: DictConfig, name: str, out_dir: Path | str | None = None, cwd: Path | str | None = None) -> Path:
    """``out=`` (relative to ``cwd``) or ``<out_dir>/probe_<name>[_fi].png``; parent folders created."""
    cwd = Path(cwd or Path.cwd())
    if cfg.get("out"):
        path = Path(str(cfg.out)).expanduser()
        path = path if path.is_absolute() else cwd / path
    else:
        base = Path(out_dir) if out_dir is not None else cwd
        base = base if base.is_absolute() else cwd / base
        path = base / f"probe_{name}{'_fi' if cfg.get('sweep') else ''}.png"
    if path.suffix.lower() != ".png":
        raise ConfigError(f"the probe writes a PNG: out= must end in .png, got {path.name!r}", key="out")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create {path.parent}: {e.strerror}", key="out") from e
    return path


def run_probe(args: list[str] | DictConfig, cwd: Path | None = None, out_dir: Path | str | None = None,
              name: str | None = None) -> Path:
    """The ``snnrun probe`` command: writes a PNG and returns its path.

    ``args``: overrides (composed here) or a composed config (the Hydra app's). Without ``out=``
    the PNG goes to ``out_dir`` (the CLI passes its run directory), else to ``cwd``."""
    if isinstance(args, DictConfig):
        cfg = args
        check(cfg)
        name = name if name not in (None, "null") else probe_name(cfg)
    else:
        cfg, composed_name = _compose(list(args))
        name = name or composed_name
    torch.manual_seed(int(cfg.get("seed") or 0))
    sweep = OmegaConf.to_container(cfg.sweep, resolve=True) if cfg.get("sweep") else None
    time = float(cfg.time if cfg.get("time") is not None else (1000.0 if sweep else 500.0))
    dt = float(cfg.dt)
    node = OmegaConf.to_container(cfg.neuron, resolve=True)
    if sweep is not None:
        if sweep.get("type") != "fi":
            raise ConfigError(f"unknown sweep '{sweep.get('type')}'. Allowed: fi", key="sweep")
        currents = torch.linspace(float(sweep["min"]), float(sweep["max"]), int(sweep["points"]))
        rates = fi_curve(node, currents, time=time, dt=dt)
        path = png_path(cfg, name, out_dir, cwd)
        save_fi_png(currents, rates, path, f"{name}: f-I curve ({time:g} ms per current)")
        return path
    input_node = OmegaConf.to_container(cfg.input, resolve=True)
    trace = simulate(node, input_node, time=time, dt=dt)
    path = png_path(cfg, name, out_dir, cwd)
    inp = ", ".join(f"{k}={v}" for k, v in input_node.items() if k != "type")
    save_trace_png(trace, path, f"{name} under {input_node['type']}({inp}): "
                                f"{int(trace['s'].sum())} spikes in {time:g} ms",
                   unit=voltage_unit(build_neuron(node, dt)))
    return path
