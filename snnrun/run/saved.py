"""A saved run directory as the loop and the commands read it: the config it was started with,
its checkpoint's state, whether it may be resumed with a given config, and the provenance facts
(versions, git commit) its summaries record.

No training here (snnrun/engine/loop.py) and no evaluation (snnrun/engine/evaluation.py): both
import this module, never the other way round.
"""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import DictConfig

import snnrun
from snnrun.errors import ConfigError
from snnrun.run.checkpoint import CHECKPOINT, PREVIOUS, load_checkpoint
from snnrun.run.console import console
from snnrun.run.files import read_json

if TYPE_CHECKING:
    from snnrun.engine.experiment import Experiment

FINISHED = "trained"  # the checkpoint stage after learning, best-epoch restore and label pass


def versions() -> dict[str, str]:
    import hydra

    return {"snnrun": snnrun.__version__, "torch": str(torch.__version__), "hydra": hydra.__version__,
            "python": platform.python_version()}


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def finished_summary(output_dir: Path, saved: dict[str, Any] | None) -> dict[str, Any] | None:
    """The summary of a run whose checkpoint says it finished training and that wrote summary.json."""
    path = output_dir / "summary.json"
    if saved is not None and saved["progress"]["stage"] == FINISHED and path.is_file():
        return read_json(path)
    return None


# keys that may differ between a run and its resumption (they change nothing that was learned)
RESUMABLE_CHANGES = ("resume", "logger", "device", "trainer.checkpoint_every", "trainer.checkpoint_min_s",
                     "trainer.eval_batch_size", "trainer.strategy", "trainer.backend", "trainer.cpu_kernel")  # batch_size is global: N processes learn as 1


def resume_point(output_dir: Path, cfg: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint to resume from when ``resume`` is set, else None.

    Without ``resume`` an existing checkpoint is an error (a new run would overwrite it). With
    ``resume`` but no checkpoint, training starts from scratch (so resuming a sweep also starts
    the jobs that never ran). The saved config must match, apart from RESUMABLE_CHANGES.
    """
    has_ckpt = (output_dir / CHECKPOINT).is_file() or (output_dir / PREVIOUS).is_file()
    if not cfg.get("resume", False):
        if has_ckpt:
            raise ConfigError(f"{output_dir} already holds a run (checkpoint.pt); continue it with resume=true "
                              "(or snnrun resume run_dir=...), or choose another hydra.run.dir", key="resume")
        return None
    if not has_ckpt:
        console.print(f"[yellow]resume=true but no checkpoint in {output_dir}: starting from scratch[/]")
        return None
    saved = load_checkpoint(output_dir, fallback=True, warn=lambda m: console.print(f"[yellow]{m}[/]"))
    if "progress" not in saved or "best" not in saved["progress"]:
        raise ConfigError(f"the checkpoint in {output_dir} was written by an older snnrun and holds no "
                          "training progress of this version; it can be evaluated but not resumed", key="resume")
    diff = config_diff(saved["config"], cfg, ignore=RESUMABLE_CHANGES)
    if diff:
        # the shallowest key first: model.n_neurons rather than a group's n it is interpolated into
        key = min(diff, key=lambda k: k.count("."))
        old, new = diff[key]
        raise ConfigError(f"the run in {output_dir} was started with {key}={old!r}, not {new!r} "
                          f"({len(diff)} key(s) differ); resume with the run's own config "
                          "(snnrun resume run_dir=...) or start a new run", key=key)
    return saved


def config_diff(a: Any, b: Any, prefix: str = "", ignore: tuple[str, ...] = ()) -> dict[str, tuple]:
    """Dotted keys whose values differ between two plain configs: {key: (a_value, b_value)}."""
    if prefix.rstrip(".") in ignore:
        return {}
    if isinstance(a, dict) and isinstance(b, dict):
        out = {}
        for k in list(a) + [k for k in b if k not in a]:
            out.update(config_diff(a.get(k, MISSING), b.get(k, MISSING), f"{prefix}{k}.", ignore))
        return out
    return {} if a == b else {prefix.rstrip("."): (a, b)}


MISSING = "<missing>"


def load_run_state(exp: Experiment, state: dict[str, Any], run_dir: Path) -> None:
    """Load a run's checkpoint into ``exp``; a misfit names the checkpoint file and what differs."""
    try:
        exp.load_state_dict(state)
    except ConfigError as e:
        raise ConfigError(f"{Path(run_dir) / state.get('_loaded_from', CHECKPOINT)}: {e.message}", key=e.key) from None


def load_run_config(run_dir: str | Path, overrides: list[str] | None = None) -> DictConfig:
    """The composed config a run was started with (``.hydra/config.yaml``), plus Hydra overrides."""
    from snnrun.run.compose import compose_run_config

    return compose_run_config(run_dir, overrides)

