"""Sweeps end with a results table and sweep_summary.csv; compare, Optuna search, launcher presets."""

import csv
import json
import statistics
import subprocess

import pytest
from omegaconf import OmegaConf

from snnrun.run.sweep import compare
from tests.conftest import TINY, snnrun_exe, run_cli as run, cli_environ




def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def env():
    return cli_environ()


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, env):
    """2 sizes x 2 seeds on tiny settings."""
    root = tmp_path_factory.mktemp("sweep")
    r = run(["-m", "train", "+model=diehl_cook", *TINY, "model.n_neurons=4,10", "seed=0,1",
             f"hydra.sweep.dir={root / 'sweep'}"], env, root)
    assert r.returncode == 0, r.stdout + r.stderr
    return root / "sweep", r.stdout


def test_sweep_ends_with_table_and_csv(sweep):
    sweep_dir, out = sweep
    assert "model.n_neurons" in out and "seeds" in out and "mean ± std (ddof=1) over seeds" in out
    rows = read_csv(sweep_dir / "sweep_summary.csv")
    assert [r["model.n_neurons"] for r in rows] == ["4", "10"]
    for row in rows:
        assert row["seeds"] == "0,1" and row["finished"] == "2/2"
        jobs = [sweep_dir / d for d in row["runs"].split()]
        accs = [json.loads((j / "summary.json").read_text())["test_accuracy"] for j in jobs]
        assert {OmegaConf.load(j / ".hydra" / "config.yaml").model.n_neurons for j in jobs} == \
            {int(row["model.n_neurons"])}
        assert float(row["test_accuracy"]) == pytest.approx(statistics.mean(accs))
        assert float(row["test_accuracy_std"]) == pytest.approx(statistics.stdev(accs))
        assert f"{statistics.mean(accs):.4f} ± {statistics.stdev(accs):.4f}" in out


def test_compare_rebuilds_the_table_and_marks_unfinished_runs(sweep, env, tmp_path):
    sweep_dir, _ = sweep
    r = run(["compare", str(sweep_dir), f"csv={tmp_path / 'c.csv'}"], env, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert read_csv(tmp_path / "c.csv") == read_csv(sweep_dir / "sweep_summary.csv")

    # one job of the first group without a summary (crashed): counted as unfinished, not averaged
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(sweep_dir, copy)
    first = read_csv(copy / "sweep_summary.csv")[0]["runs"].split()
    (copy / first[1] / "summary.json").unlink()
    _, rows = compare([copy])
    assert rows[0]["finished"] == "1/2" and rows[0]["test_accuracy_std"] is None
    assert rows[0]["test_accuracy"] == json.loads((copy / first[0] / "summary.json").read_text())["test_accuracy"]


def test_compare_of_a_directory_without_runs(env, tmp_path):
    r = run(["compare", str(tmp_path)], env, tmp_path)
    assert r.returncode == 2 and "holds no snnrun runs" in r.stdout and "Traceback" not in r.stdout + r.stderr


def test_joblib_launcher_runs_a_sweep_in_parallel(env, tmp_path):
    r = run(["-m", "train", "+model=diehl_cook", *TINY, "seed=0,1", "hydra/launcher=joblib",
             "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={tmp_path / 's'}"], env, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Joblib.Parallel(n_jobs=2" in r.stdout
    rows = read_csv(tmp_path / "s" / "sweep_summary.csv")
    assert len(rows) == 1 and rows[0]["finished"] == "2/2" and rows[0]["seeds"] == "0,1"


def test_submitit_slurm_preset_composes(env, tmp_path):
    r = run(["train", "+model=diehl_cook", "hydra/launcher=submitit_slurm", "--cfg", "hydra"], env, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    launcher = OmegaConf.create(r.stdout).hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert launcher.timeout_min == 120 and launcher.gpus_per_node == 1
    assert "deprecated" not in r.stderr  # the preset's schema matching warning is silenced on purpose
    # partition from the environment
    env2 = dict(env, SNNRUN_SLURM_PARTITION="gpu-test")
    r = run(["train", "+model=diehl_cook", "hydra/launcher=submitit_slurm", "--cfg", "hydra", "--resolve"],
            env2, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert OmegaConf.create(r.stdout).hydra.launcher.partition == "gpu-test"


def test_optuna_preset_composes(compose_cfg):
    from hydra import compose, initialize_config_dir

    from snnrun.config import config_dir

    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=["+model=diehl_cook", "hparams_search=diehl_cook_optuna"],
                      return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert set(params) == {"model.intensity", "model.inh", "model.theta_plus"}
    assert cfg.hydra.sweeper.direction == "maximize" and cfg.hydra.mode.name == "MULTIRUN"
    for key in params:  # every tuned key exists in the model
        assert OmegaConf.select(cfg, key) is not None


@pytest.mark.slow
def test_optuna_search_runs_four_trials(env, tmp_path):
    tiny = [o for o in TINY if not o.startswith("model.intensity")]  # a fixed value would leave the search
    r = run(["train", "+model=diehl_cook", *tiny, "hparams_search=diehl_cook_optuna", "hydra.sweeper.n_trials=4",
             f"hydra.sweep.dir={tmp_path / 'opt'}"], env, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    result = OmegaConf.load(tmp_path / "opt" / "optimization_results.yaml")
    rows = read_csv(tmp_path / "opt" / "sweep_summary.csv")
    assert len(rows) == 4 and all(r["finished"] == "1/1" for r in rows)
    assert result.best_value == max(float(r["test_accuracy"]) for r in rows)
    assert set(result.best_params) == {"model.intensity", "model.inh", "model.theta_plus"}
