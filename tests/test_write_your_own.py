"""The README's "Write your own" examples (examples/write_your_own/) run through the installed CLI:
a model file from a user config dir (--config-dir), with a neuron class, a learning rule and a
dataset of the user's own named by `_target_`."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from tests.conftest import snnrun_exe

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "write_your_own"
TINY = ["+model=my_net", "data=my_data", "data.n_train=160", "data.n_test=80", "model.time=30", "logger=plain"]


def train(args, env, cwd):
    return subprocess.run([*snnrun_exe(), "train", "--config-dir", str(EXAMPLES), *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


def with_examples(env):
    env = dict(env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(EXAMPLES), env.get("PYTHONPATH")) if p)
    return env


@pytest.fixture(scope="module")
def my_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mine")
    env = {**os.environ, "COLUMNS": "200"}  # as the cli_env fixture (module scope: one run for the checks)
    env.pop("HYDRA_FULL_ERROR", None)
    env = with_examples(env)
    r = train([*TINY, f"hydra.run.dir={tmp / 'run'}"], env, tmp)
    assert r.returncode == 0, r.stdout + r.stderr
    return tmp / "run"


def test_user_model_neuron_rule_and_dataset_are_used(my_run, monkeypatch):
    summary = json.loads((my_run / "summary.json").read_text())
    assert summary["model"] == "my_net"                 # model/my_net.yaml from --config-dir
    assert summary["dataset"] == "BarsSource"           # data/my_data.yaml -> my_data.BarsSource
    assert summary["learners"] == {"learner": "Instar"}  # my_rules.Instar
    assert summary["n_test"] == 80 and summary["n_train"] == 160
    assert summary["test_accuracy"] > 0.5, summary["test_accuracy"]  # 4 bar orientations: chance 0.25

    # the same config built in this process: the user's classes, and the weights the run started from
    monkeypatch.syspath_prepend(str(EXAMPLES))
    from my_data import BarsSource  # noqa: F401
    from my_neurons import ThresholdAdaptingLIF
    from my_rules import Instar

    from snnrun.engine.experiment import build_experiment
    from snnrun.run.saved import load_run_config

    exp = build_experiment(load_run_config(my_run))
    assert type(exp.network.groups["H"]) is ThresholdAdaptingLIF
    assert type(exp.learners["learner"]) is Instar and exp.learners["learner"].connection is exp.network.connections["X_H"]
    assert exp.data.name == "BarsSource" and exp.data.shape == (1, 8, 8)
    state = torch.load(my_run / "checkpoint.pt", weights_only=True)["network"]
    assert float(state["groups.H.theta"].min()) > 0  # the neuron's learned buffer, checkpointed
    assert not torch.equal(state["connections.X_H.w"], exp.network.connections["X_H"].w.cpu())  # the rule learned
    assert torch.equal(state["connections.H_H.w"], exp.network.connections["H_H"].w.cpu())  # fixed inhibition


def test_without_the_examples_on_pythonpath_the_error_names_the_import(cli_env, tmp_path):
    env = dict(cli_env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                                        if p and Path(p).resolve() != EXAMPLES)
    r = train([*TINY, f"hydra.run.dir={tmp_path / 'run'}"], env, tmp_path)
    assert r.returncode == 2
    assert "cannot import 'my_data.BarsSource'" in r.stdout and "Traceback" not in r.stdout + r.stderr
