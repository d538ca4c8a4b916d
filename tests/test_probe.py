"""snnrun probe: traces, f-I curves, and the CLI command writing PNGs."""

import subprocess

import pytest
import torch

from snnrun.config import config_dir
from snnrun.errors import ConfigError
from snnrun.commands.probe import fi_curve, parse_args, run_probe, simulate
from tests.conftest import snnrun_exe


def test_simulate_izhikevich_step():
    tr = simulate({"type": "izhikevich", "cell": "rs"}, {"type": "step", "amplitude": 10, "onset": 100},
                  time=300, dt=1.0)
    assert tr["v"].shape == (300,) and tr["s"][:100].sum() == 0 and tr["s"][100:].sum() > 2


def test_fi_curve_is_monotone_for_lif():
    rates = fi_curve({"type": "lif", "tc_decay": 20.0}, torch.linspace(0, 10, 11), time=500)
    assert rates[0] == 0 and torch.all(rates[1:] >= rates[:-1])


def test_parse_args_errors():
    with pytest.raises(ConfigError) as e:
        parse_args(["neuron=lif", "tme=5"])
    assert e.value.key == "tme" and "Did you mean 'time'" in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_args(["input=step"])
    assert e.value.key == "neuron"
    with pytest.raises(ConfigError) as e:
        parse_args(["neuron=lif", "input=stpe"])
    assert e.value.key == "input" and "Did you mean 'step'" in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_args(["neuron=lif", "sweep=fi", "sweep.points=many"])
    assert e.value.key == "sweep.points"


def test_parse_args_composes_presets():
    cfg = parse_args(["neuron=dc_inhibitory", "neuron.thresh=-41", "input=sin", "input.freq=5"])
    assert cfg.neuron.type == "lif" and cfg.neuron.thresh == -41 and cfg.input.type == "sin"
    assert cfg.input.freq == 5 and cfg.input.amplitude == 1.0  # the preset's other values stay
    assert parse_args(["+neuron.type=lif"]).neuron.type == "lif"  # a type without a preset


def test_run_probe_writes_pngs(tmp_path):
    p = run_probe(["neuron=lif", "input=sin", "input.amplitude=3", "input.offset=2", "time=100"], cwd=tmp_path)
    q = run_probe(["neuron=adex", "sweep=fi", "sweep.max=1000", "sweep.points=5", "time=200"], cwd=tmp_path)
    assert p.read_bytes()[:4] == b"\x89PNG" and q.read_bytes()[:4] == b"\x89PNG"
    assert p.name == "probe_lif.png" and q.name == "probe_adex_fi.png"


def test_out_creates_missing_parents(tmp_path):
    p = run_probe(["neuron=lif", "time=50", "out=figures/deep/lif.png"], cwd=tmp_path)
    assert p == tmp_path / "figures" / "deep" / "lif.png" and p.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ConfigError) as e:
        run_probe(["neuron=lif", "time=50", "out=figures/lif.txt"], cwd=tmp_path)
    assert e.value.key == "out"


def probe_cli(args, cwd, env):
    return subprocess.run([*snnrun_exe(), "probe", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def test_cli_probe_writes_into_a_run_dir(tmp_path, cli_env):
    r = probe_cli(["neuron=izhikevich", "input=step", "input.amplitude=10", "time=200"], tmp_path, cli_env)
    assert r.returncode == 0, r.stderr + r.stdout
    assert list(tmp_path.glob("*.png")) == []  # not into the current directory
    (png,) = tmp_path.glob("outputs/probe/*/*_izhikevich/probe_izhikevich.png")
    assert (png.parent / ".hydra" / "config.yaml").is_file()  # the probe's config, as for a run
    bad = probe_cli(["neuron=izhikevich", "neuron.tresh=3"], tmp_path, cli_env)
    assert bad.returncode == 2 and "neuron.tresh" in bad.stdout and "Did you mean 'thresh'" in bad.stdout
    assert "Traceback" not in bad.stderr + bad.stdout


def test_cli_probe_out_creates_parents_and_nothing_else(tmp_path, cli_env):
    r = probe_cli(["neuron=lif", "sweep=fi", "sweep.max=5", "sweep.points=3", "time=50", "out=figs/a/lif_fi.png"],
                  tmp_path, cli_env)
    assert r.returncode == 0, r.stderr + r.stdout
    assert (tmp_path / "figs" / "a" / "lif_fi.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in (tmp_path / "figs" / "a").iterdir()) == ["lif_fi.png"]
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow  # eight CLI processes (~14 s on 2 cores); probe's config checks are tested in-process above
def test_cli_probe_bad_input_creates_nothing(tmp_path, cli_env):
    for args in (["neuron=nope"], ["input=sin"], ["neuron=lif", "input.amplitud=3"], ["neuron=lif", "dt=fast"]):
        r = probe_cli(args, tmp_path, cli_env)
        assert r.returncode == 2 and "error:" in r.stdout and "Traceback" not in r.stdout + r.stderr, args
    assert list(tmp_path.iterdir()) == []


def test_cli_probe_help_shows_groups(tmp_path, cli_env):
    r = probe_cli(["--help"], tmp_path, cli_env)
    assert r.returncode == 0, r.stderr
    for text in ("== Configuration groups ==", "neuron: ", "dc_inhibitory", "input: ", "sweep: fi", "== Config ==",
                 "snnrun probe neuron=izhikevich"):
        assert text in r.stdout, text
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("preset", sorted(p.stem for p in (config_dir() / "input").glob("*.yaml")))
def test_every_input_preset_drives_a_probe(preset, tmp_path):
    """Every file in conf/input/ names a registered generator that a probe runs."""
    p = run_probe(["neuron=lif", f"input={preset}", "time=20", f"out={tmp_path / preset}.png"], cwd=tmp_path)
    assert p.read_bytes()[:4] == b"\x89PNG"
