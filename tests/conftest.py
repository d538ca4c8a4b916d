import os
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from snnrun.config import config_dir

torch.set_num_threads(1)

# tiny settings shared by the train/CLI tests: few samples, short presentations
TINY = ["data=synthetic", "data.n_train=40", "data.n_test=20", "model.n_neurons=10", "model.time=50", "model.intensity=512",
        "trainer.assign_every=20", "trainer.eval_batch_size=64", "logger=plain"]


@pytest.fixture
def compose_cfg():
    def _compose(*overrides: str):
        with initialize_config_dir(str(config_dir()), version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides))

    return _compose


def snnrun_exe() -> list[str]:
    exe = Path(sys.executable).with_name("snnrun")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "snnrun"]


@pytest.fixture
def cli_env():
    env = dict(os.environ)
    env["COLUMNS"] = "200"
    env.pop("HYDRA_FULL_ERROR", None)
    return env
