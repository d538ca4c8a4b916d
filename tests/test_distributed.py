"""Data-parallel training (snnrun/engine/data_parallel.py): torchrun with 2 CPU processes (gloo) learns the
same weights as one process with the same global batch and seed, and only rank 0 writes files.

"Same" is checked with a tight tolerance, not bit equality: the ranks' weight updates (STDP) or
gradients (DDP) are summed in a different order than one process sums the whole batch, which
moves the last bits of float32 (~1e-7 relative per step). Spikes (thresholds on those weights)
make such differences grow only when a membrane lands within them of a threshold; on these tiny
runs none does, and a wrong sharding, random stream or reduction shows up as differences of
order 1e-2 or more.
"""

import json
import os
import re
import shutil
import time
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from snnrun.components.learning import LearningRule
from tests import ddp_rules_driver
from tests.conftest import TINY, snnrun_exe

TORCHRUN = [str(Path(sys.executable).with_name("torchrun"))]
if not Path(TORCHRUN[0]).exists():
    TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def _env(cli_env):
    env = dict(cli_env, OMP_NUM_THREADS="1")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def run_single(cwd, overrides, env):
    out = subprocess.run([*snnrun_exe(), "train", *overrides, "hydra.run.dir=single"], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return cwd / "single"


def run_ddp(cwd, overrides, env, name="ddp"):
    out = subprocess.run([*TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", "snnrun", "train",
                          *overrides, "trainer.strategy=ddp", f"hydra.run.dir={name}"],
                         cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    return cwd / name, out.stdout


def tensors(run_dir: Path, key: str) -> dict[str, torch.Tensor]:
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)[key]
    return {k: v for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point()}


def assert_same_run(single: Path, ddp: Path, key: str):
    a, b = tensors(single, key), tensors(ddp, key)
    assert a.keys() == b.keys() and a
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6, msg=lambda m: f"{k}: {m}")
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (single, ddp))
    assert sb["test_accuracy"] == sa["test_accuracy"] and sb["n_test"] == sa["n_test"]
    # one writer: as many metric records as the single run (rank 1 logged none)
    assert len((ddp / "metrics.jsonl").read_text().splitlines()) == \
        len((single / "metrics.jsonl").read_text().splitlines())


def only_run_dirs(cwd: Path, *names: str):
    """Nothing but the run dirs was written in the working directory (rank 1 ran there too)."""
    assert sorted(p.name for p in cwd.iterdir()) == sorted(names)


def test_ddp_stdp_matches_single_process(tmp_path, cli_env):
    # Diehl & Cook: owner reduction, adaptive thresholds, random one-spike choice, Poisson input
    ov = ["+model=diehl_cook", *TINY, "trainer.batch_size=8", "trainer.checkpoint_every=16",
          "trainer.checkpoint_min_s=0", "device=cpu"]
    env = _env(cli_env)
    single = run_single(tmp_path, ov, env)
    ddp, stdout = run_ddp(tmp_path, ov, env)
    assert stdout.count("done in") == 1  # one console
    assert_same_run(single, ddp, "network")
    only_run_dirs(tmp_path, "single", "ddp")
    assert (ddp / ".hydra" / "config.yaml").is_file()


@pytest.mark.slow  # two torchrun processes (~13 s on 2 cores); the STDP and every-learner cases run by default
def test_ddp_gradient_matches_single_process(tmp_path, cli_env):
    # snn_mlp without batch norm and dropout: on CPU there is no SyncBatchNorm (GPUs get it), and
    # dropout masks are drawn per rank
    ov = ["+model=snn_mlp", "data=synthetic", "data.n_train=40", "data.n_test=20", "model.hidden=16",
          "model.T=4", "model.dropout=0",
          "model.network.connections.fc1.ops=[{type:flatten},{type:dense,out_features:16,bias:true,init:fan_in}]",
          "trainer.epochs=2", "trainer.batch_size=8",
          "trainer.eval_batch_size=64", "logger=plain", "device=cpu"]
    env = _env(cli_env)
    single = run_single(tmp_path, ov, env)
    ddp, printed = run_ddp(tmp_path, ov, env)
    assert_same_run(single, ddp, "network")
    only_run_dirs(tmp_path, "single", "ddp")
    # the epoch lines print the loss over all ranks' rows, as metrics.jsonl records it
    last = [json.loads(r) for r in (ddp / "metrics.jsonl").read_text().splitlines()]
    epoch_loss = {r["epoch"]: r["loss"] for r in last if r.get("phase") == "train"}  # each epoch's last line
    shown = [float(m) for m in re.findall(r"^epoch \d+:.*?, loss ([0-9.]+),", printed, flags=re.M)]
    assert shown == pytest.approx([round(epoch_loss[e], 4) for e in (1, 2)], abs=1e-4)


@pytest.mark.slow  # three torchrun launches (~13 s on 2 cores)
def test_ddp_resume_from_rank_zero_checkpoint(tmp_path, cli_env):
    """A run checkpointed by one process resumes under torchrun (read on rank 0, broadcast) and
    ends where the uninterrupted run ends."""
    ov = ["+model=diehl_cook", *TINY, "trainer.batch_size=8", "trainer.epochs=2", "device=cpu"]
    env = _env(cli_env)
    single = run_single(tmp_path, ov, env)
    # the checkpoint before the last one (end of learning, before the label pass), as if the
    # run had been stopped there: the label pass and test rerun on 2 processes
    part = tmp_path / "part"
    part.mkdir()
    shutil.copytree(single / ".hydra", part / ".hydra")
    shutil.copy(single / "checkpoint.prev.pt", part / "checkpoint.pt")
    shutil.copy(single / "metrics.jsonl", part / "metrics.jsonl")  # cut back to the checkpoint on resume
    assert torch.load(part / "checkpoint.pt", weights_only=True)["progress"]["stage"] == "train"
    ddp, _ = run_ddp(tmp_path, [*ov, "resume=true"], env, name="part")
    assert_same_run(single, ddp, "network")


def test_ddp_every_learner_matches_single_process(tmp_path, cli_env):
    """Every registered learning rule (some in several settings: reductions, bounds, reward
    sources, a last batch smaller than the world), both gradient learners and STDP beside a
    gradient learner, trained on 2 processes in one torchrun launch
    (tests/ddp_rules_driver.py), learn what one process learns from the same global batches."""
    cases = ddp_rules_driver.CASES
    missing = {LearningRule.registry.get(n) for n in LearningRule.registry.names()} - \
        {LearningRule.registry.get(n) for n in ddp_rules_driver.learner_types()}
    assert not missing, f"add a case for {sorted(c.__name__ for c in missing)} to tests/ddp_rules_driver.py"
    env = _env(cli_env)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    t0 = time.perf_counter()
    out = subprocess.run([*TORCHRUN, "--standalone", "--nproc_per_node=2", ddp_rules_driver.__file__, str(tmp_path)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    t_ddp = time.perf_counter() - t0
    saved = torch.load(tmp_path / "ddp_rules.pt", weights_only=False)
    assert saved["world"] == 2 and saved["results"].keys() == cases.keys()
    t0 = time.perf_counter()
    for name in cases:
        ref, got = ddp_rules_driver.run_case(name), saved["results"][name]
        assert got.keys() == ref.keys(), name
        learnt = [k for k in ref if k.startswith("init.") and not torch.equal(ref[k], ref[k[len("init."):]])]
        assert learnt, f"{name}: no weight changed (the case does not test learning)"
        for k in ref:
            torch.testing.assert_close(got[k], ref[k], rtol=1e-5, atol=1e-6, msg=lambda m: f"{name} {k}: {m}")
    print(f"torchrun (2 processes, {len(cases)} cases): {t_ddp:.1f} s; one process: {time.perf_counter() - t0:.1f} s")


@pytest.mark.slow  # the README's torchrun command (~7 s on 2 cores)
def test_ddp_preset_runs_as_the_readme_shows(tmp_path, cli_env):
    """`torchrun --standalone --nproc_per_node=2 -m snnrun train +model=diehl_cook trainer=ddp`:
    the preset's global batch splits over 2 processes without further overrides."""
    env = _env(cli_env)
    out = subprocess.run([*TORCHRUN, "--standalone", "--nproc_per_node=2", "-m", "snnrun", "train",
                          "+model=diehl_cook", "trainer=ddp", *TINY, "device=cpu", "hydra.run.dir=ddp"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["train_samples"] == 40 and summary["n_test"] == 20
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(tmp_path / "ddp" / ".hydra" / "config.yaml")
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.batch_size >= 2
