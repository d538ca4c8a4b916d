import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Under pytest-xdist every core already runs a test process, and torch.compile would start its
# own pool of compile subprocesses (one per core) in every worker and in every CLI run a test
# starts: on the 16-core GPU machine, 12 workers' pools crashed a worker. Two compile processes
# per worker keep the memory bounded (set before inductor's config is read); one (compiling in
# the worker itself) failed 15 compile-heavy tests there.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "2")

import torch  # noqa: E402
from hydra import compose, initialize_config_dir

from snnrun.config import config_dir

torch.set_num_threads(1)

# tiny settings shared by the train/CLI tests: few samples, short presentations
TINY = ["data=synthetic", "data.n_train=40", "data.n_test=20", "model.n_neurons=10", "model.time=50", "model.intensity=512",
        "trainer.assign_every=20", "trainer.eval_batch_size=64", "logger=plain"]


def compose_config(*overrides: str):
    """The config `snnrun train OVERRIDES` composes (conf/config.yaml)."""
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.fixture
def compose_cfg():
    return compose_config


def train_like_cli(cfg, run: Path):
    """``train`` as the CLI runs it: the composed config saved as the run's .hydra/config.yaml."""
    from omegaconf import OmegaConf

    from snnrun.engine.loop import train

    (run / ".hydra").mkdir(parents=True, exist_ok=True)
    (run / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    return train(cfg, run)


def snnrun_exe() -> list[str]:
    exe = Path(sys.executable).with_name("snnrun")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "snnrun"]


def cli_environ() -> dict[str, str]:
    """The environment CLI subprocesses run in: wide console, Hydra's short errors."""
    env = dict(os.environ)
    env["COLUMNS"] = "200"
    env.pop("HYDRA_FULL_ERROR", None)
    return env


@pytest.fixture
def cli_env():
    return cli_environ()


def run_cli(args, env, cwd, timeout=600):
    """``snnrun ARGS`` as a subprocess (the installed CLI), output captured."""
    return subprocess.run(snnrun_exe() + list(args), capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=timeout)


def tree(path) -> dict[str, str | None]:
    """Every file under ``path`` (relative name -> sha256), directories included by name: two equal
    trees mean nothing in that directory changed."""
    out = {}
    for root, dirs, files in os.walk(path):
        for d in dirs:
            out[os.path.relpath(os.path.join(root, d), path) + "/"] = None
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, path)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def stop_request_at(poll: int):
    """A stand-in for snnrun.engine.loop.StopOnSignal whose ``requested`` turns true at its
    ``poll``-th reading (as a SIGTERM arriving then would): patch it in to interrupt a run at a
    known point of the training loop."""

    class StopAt:
        signum, polls = 15, 0

        def __init__(self, agree=None):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        @property
        def requested(self):
            StopAt.polls += 1
            return StopAt.polls == poll

    return StopAt
