"""One composition path: a run's saved config rebuilt by Hydra (snnrun.run.compose), and the
commands that use it (eval, resume, report) plus probe/bench/list on the command line."""

import hashlib
import json
import subprocess

import pytest
from omegaconf import OmegaConf

from snnrun.run.saved import load_run_config
from snnrun.errors import ConfigError
from snnrun.run.compose import compose_run_config
from tests.conftest import TINY, snnrun_exe, run_cli as run, tree as snapshot


@pytest.fixture
def saved_run(compose_cfg, tmp_path):
    """A run directory as `snnrun train` leaves it, as far as composition is concerned."""
    cfg = compose_cfg("+model=diehl_cook", *TINY)
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    return tmp_path, cfg


def test_no_overrides_is_the_saved_config(saved_run):
    run_dir, cfg = saved_run
    assert OmegaConf.to_container(compose_run_config(run_dir, [])) == OmegaConf.to_container(cfg)
    assert OmegaConf.to_container(load_run_config(run_dir)) == OmegaConf.to_container(cfg)  # the re-export


def test_group_and_key_overrides(saved_run):
    run_dir, cfg = saved_run
    out = compose_run_config(run_dir, ["logger=csv", "device=cpu", "data.n_test=7", "trainer.epochs=3"])
    assert out.device == "cpu" and out.data.n_test == 7 and out.trainer.epochs == 3
    assert out.logger.csv.file == "metrics.csv"  # the csv preset, from the conf tree
    assert out.model == cfg.model and out.data.type == "synthetic"  # the rest as saved
    # a group override replaces the saved subtree with the preset, as `snnrun train data=digits` would
    digits = compose_run_config(run_dir, ["data=digits"])
    assert digits.data.type == "digits" and list(digits.data.shape) == [1, 8, 8] and "n_train" not in digits.data
    # a preset inside the model: swapped at its package
    ai = compose_run_config(run_dir, ["neuron@model.network.groups.Ai=lif"])
    assert ai.model.network.groups.Ai.thresh == -52.0 and ai.model.network.groups.Ae == cfg.model.network.groups.Ae
    assert compose_run_config(run_dir, ["+extra=1"]).extra == 1


def test_the_saved_config_wins_over_changed_conf_files(saved_run):
    run_dir, _ = saved_run
    saved = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    # as if the run had used presets since edited or removed: values no conf file holds today
    saved.logger.progress = True
    saved.data.type = "synthetic"
    saved.model.name = "a_model_since_deleted"
    saved.model.network.groups.Ai.thresh = -33.0
    (run_dir / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(saved))
    out = compose_run_config(run_dir, ["device=cpu"])
    assert out.logger.progress is True and out.model.name == "a_model_since_deleted"
    assert out.model.network.groups.Ai.thresh == -33.0


@pytest.mark.parametrize("override, key, words", [
    ("trainer.epochs=two", "trainer.epochs", "could not be converted to Integer"),
    ("data=nope", "data", "no preset 'nope' in config group 'data'"),
    ("logger=plian", "logger", "Did you mean 'plain'"),
    ("trainer.epocs=3", "trainer.epocs", "Did you mean 'epochs'"),
    ("sed=1", "sed", "Did you mean 'seed'"),
    ("device=[cpu", "device", "cannot read the override"),
    ("logger=plain,csv", "logger", "Ambiguous"),
])
def test_bad_overrides_name_the_key(saved_run, override, key, words):
    run_dir, _ = saved_run
    with pytest.raises(ConfigError) as e:
        compose_run_config(run_dir, [override])
    assert e.value.key == key and words in str(e.value)


def test_not_a_run_dir(tmp_path):
    with pytest.raises(ConfigError, match="not a snnrun run directory") as e:
        compose_run_config(tmp_path, [])
    assert e.value.key == "run_dir"


# --- the command line -------------------------------------------------------------------------






@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import os

    env = dict(os.environ, COLUMNS="200")
    env.pop("HYDRA_FULL_ERROR", None)
    rd = tmp_path_factory.mktemp("trained") / "run"
    # logger=rich (progress bars) as trained: eval's logger=plain must replace it
    args = [a for a in TINY if not a.startswith("logger=")]
    r = run(["train", "+model=diehl_cook", *args, "logger=rich", f"hydra.run.dir={rd}"], env, rd.parent)
    assert r.returncode == 0, r.stdout + r.stderr
    return rd, env


def test_eval_with_group_and_key_overrides(trained):
    rd, env = trained
    summary = json.loads((rd / "summary.json").read_text())
    r = run(["eval", f"run_dir={rd}", "logger=plain", "device=cpu"], env, rd.parent)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads((rd / "eval.json").read_text())
    assert out["test_accuracy"] == summary["test_accuracy"] and out["device"] == "cpu"
    assert (rd / ".hydra" / "config.yaml").read_text().count("progress: true") == 1  # the record stays


@pytest.mark.parametrize("override, key", [("trainer.epochs=two", "trainer.epochs"), ("data=nope", "data"),
                                           ("logger=nope", "logger"), ("device", "device")])
@pytest.mark.parametrize("cmd", ["eval", "resume", "report"])
def test_bad_override_is_exit_2_and_changes_nothing(trained, cmd, override, key):
    rd, env = trained
    before = snapshot(rd)
    r = run([cmd, f"run_dir={rd}", override], env, rd.parent)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"error: {key}:" in r.stdout and "Traceback" not in r.stdout + r.stderr
    assert snapshot(rd) == before


@pytest.mark.parametrize("cmd", ["eval", "resume", "report"])
def test_run_dir_commands_have_a_usage(cli_env, tmp_path, cmd):
    r = run([cmd, "--help"], cli_env, tmp_path)
    assert r.returncode == 0 and f"usage: snnrun {cmd} run_dir=DIR [overrides" in r.stdout
    assert "logger=plain" in r.stdout and "device=cpu" in r.stdout
    r = run([cmd], cli_env, tmp_path)
    assert r.returncode == 2 and "run_dir" in r.stdout


@pytest.mark.parametrize("cmd, groups", [("probe", ("neuron:", "input:", "sweep: fi")),
                                         ("bench", ("workload: csnn_train_step, dc_eval, dc_train",))])
def test_probe_and_bench_help_is_hydras(cli_env, tmp_path, cmd, groups):
    r = run([cmd, "--help"], cli_env, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "== Configuration groups ==" in r.stdout and "== Config ==" in r.stdout
    for g in groups:
        assert g in r.stdout
    assert list(tmp_path.iterdir()) == []  # --help writes nothing


def test_bench_cfg_job_and_bad_group(cli_env, tmp_path):
    r = run(["bench", "workload=lif_fwd_bwd", "workload.T=8", "--cfg", "job"], cli_env, tmp_path)
    assert r.returncode == 0 and "type: lif_fwd_bwd" in r.stdout and "T: 8" in r.stdout
    r = run(["bench", "workload=lif_fwd", "repeats=1"], cli_env, tmp_path)
    assert r.returncode == 2 and "error: workload:" in r.stdout and "Did you mean 'lif_fwd_bwd'" in r.stdout
    r = run(["bench", "workload=lif_fwd_bwd", "repeats=often"], cli_env, tmp_path)
    assert r.returncode == 2 and "error: repeats:" in r.stdout


def test_list_neurons_shows_presets_at_80_columns(cli_env, tmp_path):
    env = dict(cli_env, COLUMNS="80")
    r = run(["list", "neurons", "encoders", "connections", "learners"], env, tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert all(line == line.rstrip() for line in lines)
    assert "presets in conf/neuron/" in r.stdout and "presets in conf/learner/" in r.stdout
    row = next(line for line in lines if line.strip().startswith("dc_inhibitory"))
    assert "(type lif)" in row
    for name in ("dc_inhibitory", "diehl_cook_int", "dense", "one_to_one", "post_pre", "surrogate_bptt",
                 "poisson"):
        assert f"  {name} " in r.stdout, name
    # registered types that no connection@...=NAME can pick are marked (every neuron type has a
    # preset: tests/test_reachable.py)
    pool = next(line for line in lines if line.strip().startswith("max_pool"))
    assert "[no preset]" in pool
    # descriptions wrap rather than stop mid-sentence: the csrm preset's full comment is there
    text = " ".join(line.strip() for line in lines)
    assert "every past input and spike adds its kernel to the membrane." in text
