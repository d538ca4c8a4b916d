"""snnrun probe: traces, f-I curves, and the CLI command writing PNGs."""

import subprocess

import pytest
import torch

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
    assert "time" in str(e.value)
    with pytest.raises(ConfigError):
        parse_args(["input=step"])


def test_run_probe_writes_pngs(tmp_path):
    p = run_probe(["neuron=lif", "input=sin", "input.amplitude=3", "input.offset=2", "time=100"], cwd=tmp_path)
    q = run_probe(["neuron=adex", "sweep=fi", "sweep.max=1000", "sweep.points=5", "time=200"], cwd=tmp_path)
    assert p.read_bytes()[:4] == b"\x89PNG" and q.read_bytes()[:4] == b"\x89PNG"


def test_cli_probe(tmp_path, cli_env):
    r = subprocess.run([*snnrun_exe(), "probe", "neuron=izhikevich", "input=step", "input.amplitude=10",
                        "time=200"], cwd=tmp_path, env=cli_env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr + r.stdout
    assert (tmp_path / "probe_izhikevich.png").exists()
    bad = subprocess.run([*snnrun_exe(), "probe", "neuron=izhikevich", "neuron.tresh=3"], cwd=tmp_path,
                         env=cli_env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "thresh" in bad.stdout and "Traceback" not in bad.stderr
