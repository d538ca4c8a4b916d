"""The installed `snnrun` command in a subprocess, on tiny settings."""

import json
import subprocess

import pytest

from tests.conftest import TINY, snnrun_exe, run_cli as run




def test_bare_train_asks_for_a_model(cli_env, tmp_path):
    r = run(["train", f"hydra.run.dir={tmp_path}/r"], cli_env, tmp_path)
    assert r.returncode == 2
    assert "choose a model: +model=<one of" in r.stdout and "diehl_cook" in r.stdout
    assert "Traceback" not in r.stdout + r.stderr


def test_train_then_eval(cli_env, tmp_path):
    rd = tmp_path / "run"
    r = run(["train", "+model=diehl_cook", *TINY, f"hydra.run.dir={rd}"], cli_env, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "test_accuracy" in r.stdout
    summary = json.loads((rd / "summary.json").read_text())
    assert (rd / ".hydra" / "config.yaml").exists()
    e = run(["eval", f"run_dir={rd}"], cli_env, tmp_path)
    assert e.returncode == 0, e.stdout + e.stderr
    assert json.loads((rd / "eval.json").read_text())["test_accuracy"] == summary["test_accuracy"]


def test_unknown_type_is_one_clear_error(cli_env, tmp_path):
    r = run(["train", "+model=diehl_cook", *TINY, "model.network.groups.Ae.type=diehl_cok",
             f"hydra.run.dir={tmp_path}/r"], cli_env, tmp_path)
    assert r.returncode == 2
    assert "model.network.groups.Ae.type" in r.stdout and "Did you mean 'diehl_cook'" in r.stdout
    assert "Traceback" not in r.stdout + r.stderr


def test_unknown_option_is_one_clear_error(cli_env, tmp_path):
    r = run(["train", "+model=diehl_cook", *TINY, "+model.network.groups.Ai.tresh=3",
             f"hydra.run.dir={tmp_path}/r"], cli_env, tmp_path)
    assert r.returncode == 2
    assert "model.network.groups.Ai.tresh" in r.stdout and "Did you mean 'thresh'" in r.stdout
    assert "Traceback" not in r.stdout + r.stderr


def test_bad_data_root_is_one_clear_error(cli_env, tmp_path):
    r = run(["train", "+model=diehl_cook", "data=mnist", f"data.root={tmp_path}", "data.download=false",
             f"hydra.run.dir={tmp_path}/r"], cli_env, tmp_path)
    assert r.returncode == 2
    assert "data.root" in r.stdout and "train-images-idx3-ubyte" in r.stdout
    assert "Traceback" not in r.stdout + r.stderr


def test_eval_without_run_dir(cli_env, tmp_path):
    r = run(["eval"], cli_env, tmp_path)
    assert r.returncode == 2 and "run_dir" in r.stdout


def test_list_shows_every_registry(cli_env, tmp_path):
    r = run(["list"], cli_env, tmp_path)
    assert r.returncode == 0
    for word in ("neurons", "diehl_cook", "poisson", "lateral", "post_pre", "proportion_weighting",
                 "digits", "models"):
        assert word in r.stdout
    r = run(["list", "neurns"], cli_env, tmp_path)
    assert r.returncode == 2 and "Did you mean 'neurons'" in r.stdout


def list_in_process(capsys, *args) -> tuple[int, str]:
    """``snnrun list ARGS`` in this process (the listing reads only the registries and conf/):
    exit code and output."""
    from snnrun.cli import _list
    from snnrun.run.console import console

    width, console.width = console.width, 120
    try:
        _list(list(args))
        code = 0
    except SystemExit as e:
        code = e.code
    finally:
        console.width = width
    return code, capsys.readouterr().out


def test_list_shows_and_filters_sources(capsys):
    code, out = list_in_process(capsys, "neurons", "source=brainstate")
    assert code == 0 and "[brainstate]" in out and "brainstate.lif" in out and "alif" in out
    assert "[bindsnet]" not in out and "[spaic]" not in out
    code, out = list_in_process(capsys, "neurons")
    assert all(f"[{s}]" in out for s in ("bindsnet", "brainstate", "spaic", "snngrow", "snnrun"))
    code, out = list_in_process(capsys, "neurons", "source=spaci")
    assert code == 2 and "error: source:" in out and "Did you mean 'spaic'" in out
    code, out = list_in_process(capsys, "models", "source=spaic")
    assert code == 2 and "models have no source" in out
    code, out = list_in_process(capsys, "learners", "source=")
    assert code == 2 and "say which source" in out


# SPAIC 0.6.3's neuron registry (spaic/Neuron/Neuron.py NeuronModel.register; names lower-cased there)
SPAIC_NEURONS = ["clif", "clif2k", "pclif", "aclif", "if", "ifsoftreset", "ifb", "nonspikingifb", "null", "qlif",
                 "selif", "slif", "lif", "plif", "constantcurrentlif", "nonspikinglif", "lifm", "izh", "aeif", "adex",
                 "glif", "hh", "lifstdp_ex", "alifstdp_ex", "lifstdp_ih", "diehlandcook", "lifint", "cann_field",
                 "meanfield", "darwin_clif", "darwin_alif", "darwin_random"]


def test_list_shows_every_spaic_neuron_name(capsys):
    from snnrun.components.neurons import NeuronModel

    reg = NeuronModel.registry
    assert all(reg.source_of(f"spaic.{name}") == "spaic" for name in SPAIC_NEURONS)
    code, out = list_in_process(capsys, "neurons", "source=spaic")
    assert code == 0
    words = set(out.replace("(", " ").replace(")", " ").replace(",", " ").split())
    assert not [n for n in SPAIC_NEURONS if f"spaic.{n}" not in words]
    assert "[bindsnet]" not in out and "[spaic]" in out


def test_cfg_job_prints_config(cli_env, tmp_path):
    r = run(["train", "+model=diehl_cook", "model.n_neurons=400", "--cfg", "job"], cli_env, tmp_path)
    assert r.returncode == 0 and "n_neurons: 400" in r.stdout


def test_multirun_sweep(cli_env, tmp_path):
    sweep = tmp_path / "sweep"
    r = run(["-m", "train", "+model=diehl_cook", *TINY, "model.n_neurons=5,10", "seed=0",
             f"hydra.sweep.dir={sweep}"], cli_env, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    summaries = sorted(sweep.glob("*/summary.json"))
    assert len(summaries) == 2
    assert {json.loads(p.read_text())["seed"] for p in summaries} == {0}


def test_unknown_command(cli_env, tmp_path):
    r = run(["trian"], cli_env, tmp_path)
    assert r.returncode == 2 and "Did you mean 'train'" in r.stdout


def test_help_lists_every_command_with_its_arguments(cli_env, tmp_path):
    r = run(["--help"], cli_env, tmp_path)
    assert r.returncode == 0
    for text in ("snnrun list [neurons|", "[input=step", "snnrun bench workload=dc_train", "snnrun resume"):
        assert text in r.stdout


def test_error_messages_keep_bracketed_values(cli_env, tmp_path):
    # rich markup must not swallow "[1, 9, 9]" in the message
    r = run(["train", "+model=diehl_cook", "data.shape=[1,9,9]", f"hydra.run.dir={tmp_path}/r"], cli_env, tmp_path)
    assert r.returncode == 2
    assert "[1, 9, 9]" in r.stdout and "[1, 8, 8]" in r.stdout


def test_an_added_model_key_nothing_reads_is_an_error(cli_env, tmp_path):
    """`+model.n_neuron=10` (a typo, in the form Hydra's hint suggests) is refused, naming the key
    and the closest one the model has; no run dir is left."""
    r = run(["train", "+model=diehl_cook", *TINY, "+model.n_neuron=10", "hydra.run.dir=run"], cli_env, tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stdout + r.stderr
    assert "model.n_neuron" in r.stdout and "Did you mean 'n_neurons'" in r.stdout
    assert not (tmp_path / "run").exists()


def test_ctrl_c_before_training_is_one_line_and_exit_130(monkeypatch, capsys):
    import snnrun.cli as cli

    def interrupted(_args):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.COMMANDS, "train", interrupted)
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "+model=diehl_cook"])
    assert e.value.code == 130
    out = capsys.readouterr()
    assert "interrupted" in out.out + out.err and "Traceback" not in out.out + out.err
