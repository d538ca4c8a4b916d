"""A run directory through the CLI: refused or failed commands change nothing in it, one process
owns it at a time (a lock file), failed commands leave no new directory behind, and compare skips
directories it cannot read."""

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from tests.conftest import TINY, snnrun_exe, run_cli as run, tree

LOCK = ".snnrun.lock"






@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    env = dict(os.environ, COLUMNS="200")
    env.pop("HYDRA_FULL_ERROR", None)
    base = tmp_path_factory.mktemp("finished")
    rd = base / "run"
    r = run(["train", "+model=diehl_cook", *TINY, f"hydra.run.dir={rd}"], env, base)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not (rd / LOCK).exists()  # released after a normal exit
    return rd


def test_refused_and_failed_commands_leave_the_run_byte_identical(finished, cli_env, tmp_path):
    rd = tmp_path / "run"
    shutil.copytree(finished, rd)
    before = tree(rd)
    (tmp_path / "tmp").mkdir()
    cli_env = dict(cli_env, TMPDIR=str(tmp_path / "tmp"))  # where the .hydra files are staged
    r = run(["train", "+model=diehl_cook", *TINY, "resume=true", "seed=3", f"hydra.run.dir={rd}"], cli_env, tmp_path)
    assert r.returncode == 2 and "seed" in r.stdout, r.stdout + r.stderr
    assert tree(rd) == before
    r = run(["train", "+model=diehl_cook", *TINY, "model.n_neurons=0", f"hydra.run.dir={rd}"], cli_env, tmp_path)
    assert r.returncode == 2 and "model.n_neurons" in r.stdout, r.stdout + r.stderr
    assert tree(rd) == before
    assert not list((tmp_path / "tmp").iterdir())  # the staged .hydra files are gone too


def test_one_process_owns_a_run_dir(cli_env, tmp_path):
    rd = tmp_path / "run"
    owner = subprocess.Popen(snnrun_exe() + ["train", "+model=diehl_cook", *TINY, "trainer.epochs=1000",
                                             f"hydra.run.dir={rd}"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=cli_env, cwd=tmp_path)
    try:
        deadline = time.time() + 60
        while not (rd / "resolved_config.yaml").exists() and owner.poll() is None and time.time() < deadline:
            time.sleep(0.1)  # until it trains: lock held, .hydra files in place
        assert owner.poll() is None, owner.stdout.read()
        lock = json.loads((rd / LOCK).read_text())
        assert lock["pid"] == owner.pid and lock["host"] == socket.gethostname() and "train" in lock["command"]
        hydra_before = tree(rd / ".hydra")
        r = run(["train", "+model=diehl_cook", *TINY, "trainer.epochs=1000", "resume=true",
                 f"hydra.run.dir={rd}"], cli_env, tmp_path)
        assert r.returncode == 2, r.stdout + r.stderr
        assert f"is in use by pid {owner.pid} on host {socket.gethostname()}" in r.stdout and LOCK in r.stdout
        assert tree(rd / ".hydra") == hydra_before
    finally:
        owner.send_signal(signal.SIGTERM)  # a stop: checkpoint, lock released
        out, _ = owner.communicate(timeout=60)
    assert owner.returncode == 128 + signal.SIGTERM, out
    assert not (rd / LOCK).exists() and (rd / "checkpoint.pt").exists()


def test_a_stale_lock_is_taken_over(finished, cli_env, tmp_path):
    rd = tmp_path / "run"
    shutil.copytree(finished, rd)
    dead = subprocess.Popen(["true"])
    dead.wait()
    (rd / LOCK).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(),
                                       "started": "2024-01-01T00:00:00", "command": "snnrun train (killed)"}))
    r = run(["eval", f"run_dir={rd}"], cli_env, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "stale lock" in r.stdout and f"pid {dead.pid}" in r.stdout
    assert (rd / "eval.json").exists() and not (rd / LOCK).exists()
    # a live owner on another host cannot be checked: refused, never taken over
    (rd / LOCK).write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "2024-01-01T00:00:00"}))
    r = run(["eval", f"run_dir={rd}"], cli_env, tmp_path)
    assert r.returncode == 2 and "pid 1 on host elsewhere" in r.stdout
    assert (rd / LOCK).exists()


def test_a_failing_command_into_a_new_dir_leaves_no_dir(cli_env, tmp_path):
    new = tmp_path / "outputs" / "day" / "run"
    r = run(["train", "+model=diehl_cook", *TINY, "model.n_neurons=0", f"hydra.run.dir={new}"], cli_env, tmp_path)
    assert r.returncode == 2 and "model.n_neurons" in r.stdout, r.stdout + r.stderr
    assert not (tmp_path / "outputs").exists()  # the run dir and the parents this command made
    # a pre-existing (empty) directory is never removed
    mine = tmp_path / "mine"
    mine.mkdir()
    r = run(["train", "+model=diehl_cook", *TINY, "model.n_neurons=0", f"hydra.run.dir={mine}"], cli_env, tmp_path)
    assert r.returncode == 2 and mine.is_dir() and not (mine / LOCK).exists() and not (mine / ".hydra").exists()


def test_compare_skips_and_names_unreadable_dirs(finished, cli_env, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken"
    (broken / ".hydra").mkdir(parents=True)
    (broken / ".hydra" / "overrides.yaml").write_text("{a: 1}\n")
    r = run(["compare", str(finished), str(empty), str(broken)], cli_env, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"skipped {empty}" in r.stdout and f"skipped {broken}" in r.stdout
    assert "test_accuracy" in r.stdout and "1/1" in r.stdout and "Traceback" not in r.stdout + r.stderr
