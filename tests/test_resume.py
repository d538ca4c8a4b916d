"""Stopping and resuming training: SIGTERM/SIGKILL mid-epoch, damaged checkpoints, config checks."""

import json
import signal
import subprocess
import time

import pytest
import torch

from snnrun.run.checkpoint import CHECKPOINT, PREVIOUS, load_checkpoint
from snnrun.errors import ConfigError
from snnrun.engine.loop import train
from tests.conftest import TINY, snnrun_exe

# long enough (2 epochs x 200 samples, one at a time) to be stopped mid-epoch
RESUMABLE = ["+model=diehl_cook", *TINY, "data.n_train=200", "trainer.epochs=2", "trainer.checkpoint_every=50",
             "trainer.checkpoint_min_s=0", "device=cpu"]  # bit-identical replay is promised on CPU


def deterministic(records):
    """What must be identical between an interrupted+resumed run and an uninterrupted one."""
    return [(r["step"], r["phase"], r.get("epoch"), r.get("samples"), r.get("running_accuracy"),
             r.get("test_accuracy")) for r in records]


def records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def start(run_dir, env, cwd, extra=()):
    return subprocess.Popen(snnrun_exe() + ["train", *RESUMABLE, *extra, f"hydra.run.dir={run_dir}"], env=env,
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_train_records(proc, run_dir, n, timeout=120):
    """Block until metrics.jsonl holds n training records (the run is then mid-epoch 1)."""
    deadline = time.monotonic() + timeout
    path = run_dir / "metrics.jsonl"
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count('"phase": "train"') >= n:
            return
        assert proc.poll() is None, "the run ended before it could be stopped: " + proc.stdout.read()
        time.sleep(0.02)
    raise AssertionError("no training records appeared")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, cli_env_module):
    root = tmp_path_factory.mktemp("ref")
    proc = start(root / "run", cli_env_module, root)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    return root / "run"


@pytest.fixture(scope="module")
def cli_env_module():
    import os

    env = dict(os.environ, COLUMNS="200")
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def resume_cli(run_dir, env, cwd):
    r = subprocess.run(snnrun_exe() + ["resume", f"run_dir={run_dir}"], env=env, cwd=cwd, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def assert_same_as(run_dir, reference):
    got, want = records(run_dir), records(reference)
    assert [r["step"] for r in got] == list(range(len(got)))  # every step exactly once, in order
    assert deterministic(got) == deterministic(want)
    a, b = json.loads((run_dir / "summary.json").read_text()), json.loads((reference / "summary.json").read_text())
    assert a["decoders"] == b["decoders"] and a["test_accuracy"] == b["test_accuracy"]
    assert a["train_samples"] == b["train_samples"] == 400 and a["resumed"]
    wa, wb = torch.load(run_dir / CHECKPOINT, weights_only=True), torch.load(reference / CHECKPOINT,
                                                                               weights_only=True)
    for k in wb["network"]:
        assert torch.equal(wa["network"][k], wb["network"][k]), k


def test_sigterm_mid_epoch_then_resume_equals_uninterrupted(uninterrupted, cli_env_module, tmp_path):
    run_dir = tmp_path / "run"
    proc = start(run_dir, cli_env_module, tmp_path)
    wait_for_train_records(proc, run_dir, 1)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert "stopped by SIGTERM" in out and f"snnrun resume run_dir={run_dir}" in out
    assert "Traceback" not in out
    state = load_checkpoint(run_dir)
    assert state["progress"]["epoch"] == 1 and 0 < state["progress"]["start"] < 200  # stopped mid-epoch
    assert not (run_dir / "summary.json").exists()

    r = resume_cli(run_dir, cli_env_module, tmp_path)
    assert "resuming epoch 1" in r.stdout
    assert_same_as(run_dir, uninterrupted)


def test_sigkill_loses_only_the_steps_since_the_last_checkpoint(uninterrupted, cli_env_module, tmp_path):
    run_dir = tmp_path / "run"
    proc = start(run_dir, cli_env_module, tmp_path)
    wait_for_train_records(proc, run_dir, 4)  # past the first periodic checkpoint (50 samples)
    proc.kill()
    proc.communicate(timeout=60)
    state = load_checkpoint(run_dir)
    assert state["progress"]["samples"] >= 50
    # lines written after the checkpoint are dropped on resume and written again: no duplicates
    resume_cli(run_dir, cli_env_module, tmp_path)
    assert_same_as(run_dir, uninterrupted)


# -- in-process: damaged checkpoints, config checks -------------------------------------------

@pytest.fixture
def finished_two_epochs(compose_cfg, tmp_path):
    cfg = compose_cfg("+model=diehl_cook", *TINY, "trainer.epochs=2")
    summary = train(cfg, tmp_path)
    return cfg, tmp_path, summary


def test_truncated_checkpoint_falls_back_to_the_previous_one(finished_two_epochs, compose_cfg, capsys):
    cfg, run_dir, summary = finished_two_epochs
    assert (run_dir / PREVIOUS).is_file()  # end of epoch 2, before the label pass
    (run_dir / CHECKPOINT).write_bytes((run_dir / CHECKPOINT).read_bytes()[:200])
    (run_dir / "summary.json").unlink()  # as if the run died right after writing the damaged file
    before = records(run_dir)

    again = train(compose_cfg("+model=diehl_cook", *TINY, "trainer.epochs=2", "resume=true"), run_dir)
    out = capsys.readouterr().out
    assert "corrupt or truncated" in out and PREVIOUS in out
    assert again["decoders"] == summary["decoders"]
    after = records(run_dir)
    assert [r["step"] for r in after] == list(range(len(after)))
    assert deterministic(after) == deterministic(before)


def test_no_readable_checkpoint_is_a_clear_error(finished_two_epochs, compose_cfg):
    _, run_dir, _ = finished_two_epochs
    (run_dir / CHECKPOINT).write_bytes(b"not a checkpoint")
    (run_dir / PREVIOUS).write_bytes((run_dir / PREVIOUS).read_bytes()[:50])
    metrics_before = (run_dir / "metrics.jsonl").read_bytes()
    with pytest.raises(ConfigError) as e:
        train(compose_cfg("+model=diehl_cook", *TINY, "trainer.epochs=2", "resume=true"), run_dir)
    assert e.value.key == "run_dir"
    assert "corrupt or truncated" in e.value.message and "no usable checkpoint" in e.value.message
    assert CHECKPOINT in e.value.message and PREVIOUS in e.value.message
    assert (run_dir / "metrics.jsonl").read_bytes() == metrics_before  # nothing already written is lost


def test_resume_with_a_different_config_names_the_key(finished_two_epochs, compose_cfg):
    _, run_dir, _ = finished_two_epochs
    (run_dir / "summary.json").unlink()
    with pytest.raises(ConfigError) as e:
        train(compose_cfg("+model=diehl_cook", *TINY, "trainer.epochs=2", "model.theta_plus=0.1", "resume=true"),
              run_dir)
    assert "theta_plus" in e.value.key and "0.1" in e.value.message


def test_new_run_does_not_overwrite_an_existing_one(finished_two_epochs, compose_cfg):
    cfg, run_dir, _ = finished_two_epochs
    ckpt = (run_dir / CHECKPOINT).read_bytes()
    with pytest.raises(ConfigError) as e:
        train(cfg, run_dir)
    assert e.value.key == "resume" and "resume=true" in e.value.message
    assert (run_dir / CHECKPOINT).read_bytes() == ckpt


def test_resuming_a_finished_run_returns_its_summary(finished_two_epochs, compose_cfg):
    _, run_dir, summary = finished_two_epochs
    n = len(records(run_dir))
    again = train(compose_cfg("+model=diehl_cook", *TINY, "trainer.epochs=2", "resume=true"), run_dir)
    assert again["test_accuracy"] == summary["test_accuracy"] and len(records(run_dir)) == n
