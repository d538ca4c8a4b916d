"""Checkpoints are plain data: loading one never runs code, and a bad one is one clear error.

A crafted checkpoint.pt (a pickle whose object runs a command when unpickled) is refused by
`snnrun eval`, `report` and `resume` without running it; eval of an unfinished run, of another
model's or size's checkpoint, or of a truncated file says what is wrong (exit 2, no traceback).
"""

import json
import os
import pickle
import random
import shutil
import signal
import subprocess

import numpy as np
import pytest
import torch

from snnrun.errors import ConfigError
from snnrun.run.checkpoint import CHECKPOINT, PREVIOUS, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from tests.conftest import TINY, snnrun_exe, cli_environ
from tests.test_resume import start, wait_for_train_records

MODEL = ["+model=diehl_cook", *TINY, "device=cpu"]


class RunsACommand:
    """Unpickling this runs a shell command (what a malicious checkpoint would do)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def cli(*args, cwd, env, timeout=300):
    return subprocess.run(snnrun_exe() + list(args), cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def env():
    return cli_environ()


@pytest.fixture(scope="module")
def finished(tmp_path_factory, env):
    """A tiny finished run, written by the CLI (checkpoint.pt, checkpoint.prev.pt, summary.json)."""
    root = tmp_path_factory.mktemp("finished")
    r = cli("train", *MODEL, f"hydra.run.dir={root / 'run'}", cwd=root, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return root / "run"


@pytest.fixture
def run(finished, tmp_path):
    """A copy of the finished run that a test may damage."""
    return shutil.copytree(finished, tmp_path / "run")


def assert_clear_error(r, *phrases):
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "Traceback" not in out, out
    assert "error:" in out, out
    for p in phrases:
        assert p in out, (p, out)
    return out


# -- no code runs from a checkpoint ------------------------------------------------------------

def plant(path, marker, how):
    with open(path, "wb") as f:
        if how == "torch.save":  # the zip format snnrun writes
            torch.save({"network": RunsACommand(marker), "progress": {"stage": "trained"}}, f)
        else:  # a bare pickle stream (python's default protocol)
            pickle.dump({"network": RunsACommand(marker)}, f)


def test_the_planted_object_would_run_a_command(tmp_path):
    # the payload is real: unpickling it the unsafe way creates the marker
    marker = tmp_path / "PWNED"
    pickle.loads(pickle.dumps(RunsACommand(marker)))
    assert marker.exists()


@pytest.mark.parametrize("how", ["torch.save", "pickle"])
@pytest.mark.parametrize("command", ["eval", "report", "resume"])
def test_malicious_checkpoint_is_refused_and_never_unpickled(run, tmp_path, env, command, how):
    marker = tmp_path / "PWNED"
    plant(run / CHECKPOINT, marker, how)
    assert (run / PREVIOUS).is_file()  # a good older checkpoint is there: it must not be used silently either
    summary = (run / "summary.json").read_text()
    r = cli(command, f"run_dir={run}", cwd=tmp_path, env=env)
    assert_clear_error(r, str(run / CHECKPOINT), "not a plain-data checkpoint")
    assert not marker.exists(), "unpickling the checkpoint ran its command"
    assert (run / "summary.json").read_text() == summary
    assert not (run / "eval.json").exists()
    if how == "torch.save":
        assert "posix.system" in r.stdout + r.stderr  # says what the file refers to


def test_resume_does_not_fall_back_into_a_malicious_previous_checkpoint(run, tmp_path, env):
    marker = tmp_path / "PWNED"
    plant(run / PREVIOUS, marker, "torch.save")
    (run / CHECKPOINT).write_bytes((run / CHECKPOINT).read_bytes()[:2000])  # damaged: resume tries the previous
    r = cli("resume", f"run_dir={run}", cwd=tmp_path, env=env)
    assert_clear_error(r, str(run / PREVIOUS), "not a plain-data checkpoint")
    assert not marker.exists()


def test_checkpoints_written_by_a_run_are_plain_data(finished):
    for name in (CHECKPOINT, PREVIOUS):
        state = torch.load(finished / name, weights_only=True)  # raises on anything but plain data
        assert state["progress"]["stage"] in ("train", "trained")
        assert isinstance(state["rng"]["numpy"]["keys"], torch.Tensor)
        assert type(state["versions"]["torch"]) is str


def test_rng_state_round_trips_exactly_through_a_plain_checkpoint(tmp_path):
    gen = torch.Generator().manual_seed(3)
    random.seed(1), np.random.seed(2), torch.manual_seed(4)
    np.random.standard_normal()  # leaves a cached gaussian in numpy's state
    save_checkpoint(tmp_path, {"rng": rng_state(order=gen)})
    want = (random.random(), np.random.standard_normal(3).tolist(), np.random.randint(0, 1 << 30, 4).tolist(),
            torch.rand(3).tolist(), torch.rand(2, generator=gen).tolist())
    random.seed(9), np.random.seed(9), torch.manual_seed(9), gen.manual_seed(9)
    set_rng_state(load_checkpoint(tmp_path)["rng"], order=gen)
    got = (random.random(), np.random.standard_normal(3).tolist(), np.random.randint(0, 1 << 30, 4).tolist(),
           torch.rand(3).tolist(), torch.rand(2, generator=gen).tolist())
    assert got == want


def test_saving_something_that_is_not_plain_data_is_refused(tmp_path):
    with pytest.raises(TypeError, match=r"checkpoint\.progress\.order is a numpy\.ndarray"):
        save_checkpoint(tmp_path, {"progress": {"order": np.arange(3)}})
    assert not (tmp_path / CHECKPOINT).exists() and not (tmp_path / (CHECKPOINT + ".tmp")).exists()


# -- clear errors from eval --------------------------------------------------------------------

def test_eval_of_a_run_stopped_before_it_finished_training(tmp_path, env):
    run_dir = tmp_path / "run"
    proc = start(run_dir, env, tmp_path)  # 2 epochs x 200 samples, checkpoint every 50
    wait_for_train_records(proc, run_dir, 1)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert load_checkpoint(run_dir)["progress"]["stage"] == "train"
    r = cli("eval", f"run_dir={run_dir}", cwd=tmp_path, env=env)
    assert_clear_error(r, f"the run in {run_dir} has not finished training",
                       f"snnrun resume run_dir={run_dir}")
    assert not (run_dir / "eval.json").exists()


def test_eval_with_a_checkpoint_of_another_size(run, tmp_path, env):
    r = cli("eval", f"run_dir={run}", "model.n_neurons=12", cwd=tmp_path, env=env)
    assert_clear_error(r, str(run / CHECKPOINT), "does not fit this model",
                       "connections.X_Ae.w is [64, 10] in the checkpoint, [64, 12] in this model")
    assert not (run / "eval.json").exists()


def test_eval_with_a_checkpoint_of_another_model(run, tmp_path, env):
    other = tmp_path / "mlp"
    r = cli("train", "+model=snn_mlp", "data=synthetic", "data.n_train=40", "data.n_test=20", "trainer.epochs=1",
            "logger=plain", "device=cpu", f"hydra.run.dir={other}",
            cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    shutil.copy(other / CHECKPOINT, run / CHECKPOINT)
    r = cli("eval", f"run_dir={run}", cwd=tmp_path, env=env)
    assert_clear_error(r, str(run / CHECKPOINT), "does not fit this model",
                       "missing from the checkpoint: groups.Ae.theta", "unexpected in the checkpoint: ",
                       "connections.fc1.ops.1.w")
    assert not (run / "eval.json").exists()


def test_eval_of_a_truncated_checkpoint_names_it_and_uses_no_older_one(run, tmp_path, env):
    data = (run / CHECKPOINT).read_bytes()
    (run / CHECKPOINT).write_bytes(data[: len(data) // 2])
    r = cli("eval", f"run_dir={run}", cwd=tmp_path, env=env)
    assert_clear_error(r, f"checkpoint {run / CHECKPOINT} cannot be read", "corrupt or truncated")
    assert not (run / "eval.json").exists()


def test_eval_of_the_intact_copy_still_works(run, tmp_path, env):
    # the damage in the tests above is what fails: the same run evaluates fine
    r = cli("eval", f"run_dir={run}", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads((run / "eval.json").read_text())["test_accuracy"] == \
        json.loads((run / "summary.json").read_text())["test_accuracy"]


def test_a_checkpoint_of_an_earlier_snnrun_with_numpy_state_is_refused_clearly(tmp_path):
    # earlier versions saved np.random.get_state() as it is (a tuple holding an ndarray)
    torch.save({"network": {}, "rng": {"numpy": np.random.get_state()}}, tmp_path / CHECKPOINT)
    with pytest.raises(ConfigError) as e:
        load_checkpoint(tmp_path, fallback=False)
    assert e.value.key == "run_dir"
    assert str(tmp_path / CHECKPOINT) in e.value.message and "not a plain-data checkpoint" in e.value.message
    assert "earlier snnrun versions held numpy objects" in e.value.message


def test_garbage_bytes_are_corrupt_not_unsafe_and_resume_falls_back(tmp_path):
    save_checkpoint(tmp_path, {"progress": {"epoch": 1}})
    save_checkpoint(tmp_path, {"progress": {"epoch": 2}})
    (tmp_path / CHECKPOINT).write_bytes(b"not a checkpoint")
    warnings = []
    state = load_checkpoint(tmp_path, fallback=True, warn=warnings.append)
    assert state["progress"]["epoch"] == 1 and state["_loaded_from"] == PREVIOUS
    assert "corrupt or truncated" in warnings[0]
