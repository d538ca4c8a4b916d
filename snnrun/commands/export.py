"""``snnrun export run_dir=DIR format=nir out=FILE [dt=1e-4]``: a trained run's network as a file
other tools read (NIR: snnTorch, Norse, Sinabs, Rockpool, Lava-DL ... and ``+model=nir``).

The network is rebuilt from the run's saved config (no dataset needed) and loaded from its
checkpoint; snnrun/interop/nir_export.py says what maps to what. ``dt`` is one step's length in
NIR's time unit (seconds by convention; default 1e-4, snnTorch's): time constants in the file are
``dt`` times their value in steps. The file is written atomically; a refused export writes nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from snnrun.errors import ConfigError

FORMATS = ("nir",)
DEFAULT_NIR_DT = 1e-4
USAGE = """usage: snnrun export run_dir=DIR format=nir out=FILE [dt=SECONDS] [overrides ...]

  Write a run's trained network as a NIR graph (Neuromorphic Intermediate Representation) that
  snnTorch, Norse, Sinabs, Rockpool, Lava-DL ... read, and that +model=nir model.path=FILE reads back.

  run_dir  a run directory written by `snnrun train` (its .hydra/config.yaml and checkpoint.pt)
  format   nir (the one format so far)
  out      the file to write (folders are created; an existing file is replaced atomically)
  dt       one simulation step in NIR's time unit (seconds; default 1e-4): tau = dt * tau_in_steps

  e.g. snnrun export run_dir=outputs/2026-12-02/10-00-00_csnn_avgpool format=nir out=csnn.nir"""


def parse_args(args: list[str]) -> dict[str, Any] | None:
    if any(a in ("-h", "--help") for a in args):
        return None
    opts: dict[str, Any] = {"run_dir": None, "format": None, "out": None, "dt": DEFAULT_NIR_DT}
    overrides = []
    for a in args:
        k, eq, v = a.partition("=")
        if eq and k in opts:
            opts[k] = v
        elif opts["run_dir"] is None and not eq and not a.startswith(("+", "~", "-")):
            opts["run_dir"] = a
        else:
            overrides.append(a)
    if not opts["run_dir"]:
        raise ConfigError("say which run: snnrun export run_dir=outputs/<date>/<time>_<model> format=nir "
                          "out=FILE (snnrun export --help)", key="run_dir")
    if opts["format"] not in FORMATS:
        got = "none given" if opts["format"] is None else f"'{opts['format']}'"
        raise ConfigError(f"unknown export format ({got}). Allowed: {', '.join(FORMATS)}", key="format")
    if not opts["out"]:
        raise ConfigError("name the file to write: out=FILE (e.g. out=model.nir)", key="out")
    try:
        opts["dt"] = float(opts["dt"])
    except ValueError:
        raise ConfigError(f"must be a number of seconds per step, got '{opts['dt']}'", key="dt") from None
    if not (np.isfinite(opts["dt"]) and opts["dt"] > 0):
        raise ConfigError(f"must be a positive number of seconds per step, got {opts['dt']}", key="dt")
    opts["overrides"] = overrides
    return opts


def load_run_network(run_dir: str | Path, overrides: list[str] | None = None):
    """(network with the checkpoint's weights, in eval mode; the resolved config; the encoder;
    the input group's name; the checkpoint) of a run, built without loading its dataset."""
    from snnrun.components.encoders import Encoder
    from snnrun.components.neurons import Input
    from snnrun.engine.experiment import expand_model, resolved, state_misfit
    from snnrun.engine.network import build_network
    from snnrun.run.checkpoint import load_checkpoint
    from snnrun.run.compose import compose_run_config

    run_dir = Path(run_dir)
    plain, nir_file = expand_model(resolved(compose_run_config(run_dir, overrides or [])))
    model = plain["model"]
    encoder = Encoder.build(model["encoder"], key="model.encoder")
    network = build_network(model["network"], dt=encoder.dt)
    if nir_file is not None:
        nir_file.load(network)
    state = load_checkpoint(run_dir, fallback=False)
    saved = state.get("network")
    misfit = state_misfit(saved, network.state_dict()) if isinstance(saved, dict) else ["it holds no network"]
    if misfit:
        raise ConfigError(f"{run_dir / 'checkpoint.pt'} does not fit the run's config: " + "; ".join(misfit),
                          key="run_dir")
    network.load_state_dict(saved)
    network.eval()
    inputs = [n for n, g in network.groups.items() if isinstance(g, Input)]
    input_group = model.get("input", inputs[0] if len(inputs) == 1 else None)
    return network, plain, encoder, input_group, state


def export_nir(run_dir: str | Path, out: str | Path, dt: float = DEFAULT_NIR_DT,
               overrides: list[str] | None = None) -> tuple[Path, list[str]]:
    """Write the run's network to ``out`` as NIR; returns (the path, what was approximated)."""
    from snnrun.interop.nir_export import network_to_nir, nir_module

    nir = nir_module()
    network, plain, encoder, input_group, state = load_run_network(run_dir, overrides)
    model = plain["model"]
    assignment = (state.get("assignment") or {}).get("assignments")
    metadata: dict[str, Any] = {
        "source": "snnrun", "model": str(model.get("name", "")), "steps": int(encoder.steps),
        "snnrun_dt": float(encoder.dt), "input": str(input_group), "readout": str(model["readout"]),
        "encoder": json.dumps(model["encoder"]), "decoders": json.dumps(model["decoders"]),
        "data_shape": np.asarray(plain["data"]["shape"], dtype=np.int64),
        "n_classes": int(plain["data"]["n_classes"]),
    }
    if assignment is not None:  # label assignment (diehl_cook ...): neuron -> class, in the metadata
        metadata["label_assignment"] = np.asarray(assignment.cpu().numpy(), dtype=np.int64)
    exported = network_to_nir(network, readout=model["readout"], nir_dt=dt, metadata=metadata)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        nir.write(str(tmp), exported.graph)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out, exported.approximations


def run_export(args: list[str]) -> None:
    from snnrun.run.console import console
    from snnrun.run.rundir import lock_run_dir

    opts = parse_args(args)
    if opts is None:
        console.print(USAGE, markup=False, highlight=False, soft_wrap=True)
        return
    with lock_run_dir(opts["run_dir"]):
        path, approx = export_nir(opts["run_dir"], opts["out"], opts["dt"], opts["overrides"])
    from rich.markup import escape

    for a in approx:
        console.print(f"[yellow]warning: approximated[/] {escape(a)}", soft_wrap=True, highlight=False)
    console.print(f"written {path} (NIR, dt={opts['dt']} s per step)", soft_wrap=True, markup=False)
