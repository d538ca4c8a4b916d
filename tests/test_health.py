"""No silent garbage: NaN/inf input, loss or state stops a run (exit 2, last good checkpoint kept);
mostly silent readouts are warned about on the console and in summary.json."""

import hashlib
import json
import subprocess

import pytest
import torch

from snnrun.engine.loop import train
from snnrun.errors import TrainingDiverged
from tests.conftest import TINY, snnrun_exe

TINY_MLP = ["+model=snn_mlp", "data=synthetic", "data.n_train=40", "data.n_test=20", "model.hidden=32",
            "trainer.epochs=2", "trainer.batch_size=16", "trainer.eval_batch_size=64", "logger=plain"]


def cli(args, env, cwd):
    return subprocess.run(snnrun_exe() + args, capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


def finite_checkpoint(path) -> bool:
    """Every floating-point tensor in the checkpoint (network, learners, best snapshot) is finite."""
    state = torch.load(path, weights_only=False)
    bad = []

    def walk(obj, name):
        if isinstance(obj, torch.Tensor):
            if obj.is_floating_point() and not bool(torch.isfinite(obj).all()):
                bad.append(name)
        elif isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, f"{name}.{k}")
        elif isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                walk(v, f"{name}.{i}")

    walk(state, "")
    assert not bad, bad
    return True


def test_nan_intensity_stops_with_exit_2(tmp_path, cli_env):
    run = tmp_path / "run"
    r = cli(["train", "+model=diehl_cook", *TINY, "model.intensity=nan", f"hydra.run.dir={run}"], cli_env, tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "Traceback" not in out
    assert "model.intensity" in out and "input" in out
    assert not (run / "summary.json").exists()
    assert not (run / "checkpoint.pt").exists() or finite_checkpoint(run / "checkpoint.pt")


def test_huge_learning_rate_stops_and_keeps_the_last_good_checkpoint(tmp_path, cli_env):
    run = tmp_path / "run"
    # a checkpoint after every batch: the first (after one Adam step) is still finite, a later one is not
    args = [*TINY_MLP, "model.learner.optimizer.lr=1e30", "trainer.checkpoint_every=16", "trainer.checkpoint_min_s=0"]
    r = cli(["train", *args, f"hydra.run.dir={run}"], cli_env, tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "Traceback" not in out
    assert "model.learner.optimizer.lr" in out and "learning rate" in out
    assert "non-finite" in out and "last good checkpoint" in out
    assert not (run / "summary.json").exists()
    ckpt = run / "checkpoint.pt"
    assert finite_checkpoint(ckpt)
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    # resuming from the last good checkpoint works (it loads and trains on) and stops the same way,
    # leaving that checkpoint as it was
    r = cli(["resume", f"run_dir={run}", "logger=plain"], cli_env, tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "resuming epoch 1" in out and "model.learner.optimizer.lr" in out and "Traceback" not in out
    assert hashlib.sha256(ckpt.read_bytes()).hexdigest() == digest
    assert not (run / "summary.json").exists()


def test_nan_state_names_the_tensor(tmp_path, compose_cfg):
    # a NaN threshold increment makes the adaptive thresholds NaN at the first spike
    with pytest.raises(TrainingDiverged) as e:
        train(compose_cfg("+model=diehl_cook", *TINY, "model.theta_plus=inf", "trainer.checkpoint_every=20",
                          "trainer.checkpoint_min_s=0"), tmp_path)
    assert "groups.Ae.theta" in e.value.message and "model.learner" in e.value.message
    assert not (tmp_path / "summary.json").exists()
    assert not (tmp_path / "checkpoint.pt").exists() or finite_checkpoint(tmp_path / "checkpoint.pt")


def test_silent_network_warns(tmp_path, cli_env):
    run = tmp_path / "run"
    r = cli(["train", "+model=diehl_cook", *TINY, "model.intensity=0", f"hydra.run.dir={run}"], cli_env, tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "warning" in out and "no readout spike" in out and "model.intensity" in out
    warnings = json.loads((run / "summary.json").read_text())["warnings"]
    assert any(w.startswith("20/20 test samples") for w in warnings), warnings
    assert any("training samples" in w and "input rate is too low" in w for w in warnings), warnings
    r = cli(["report", f"run_dir={run}"], cli_env, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "warning" in r.stdout and "20/20 test samples" in r.stdout


def test_nan_in_the_data_stops_before_training(tmp_path, compose_cfg):
    from snnrun.engine.loop import Trainer

    trainer = Trainer(compose_cfg(*TINY_MLP), tmp_path)
    trainer.exp.train.x[3].view(-1)[0] = float("nan")  # a corrupt sample in the training split
    with pytest.raises(TrainingDiverged) as e:
        trainer.run()
    assert "non-finite input" in e.value.message and "1 sample(s) of the train split" in e.value.message
    assert not (tmp_path / "checkpoint.pt").exists() and not (tmp_path / "summary.json").exists()
