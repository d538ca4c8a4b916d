"""The compiled CPU loop of Diehl & Cook presentations (snnrun/engine/cpu_loop.py,
snnrun/engine/kernels/dc_presentation.c) against the eager step-by-step path it replaces.

Same seed, same batches: the loop must give the eager path's spike counts, weights, adaptive
thresholds and torch random stream. Bit for bit where the eager path's arithmetic has one order
(one sample per batch, where the BLAS sums the input product in index order; the ``owner`` and
``mean`` reductions); with ``sum`` over a batch the BLAS adds the samples' outer products in an
order of its own, so there the weights agree to float32 rounding (1e-6). The same holds at MNIST
size on a BLAS that blocks the 784-long input sums or fuses multiply-adds in ``addmm_`` (MKL on
the GPU machine): the spike counts and the random stream stay identical, the weights agree to 1e-6.
"""

from __future__ import annotations

import pytest
import torch

from snnrun.engine import cpu_loop
from snnrun.engine.kernels import c_library
from snnrun.engine.experiment import build_experiment
from snnrun.errors import ConfigError
from tests.conftest import TINY, run_cli

needs_cc = pytest.mark.skipif(cpu_loop.compiler() is None, reason="no C compiler to build the CPU loop")

DIGITS = ["+model=diehl_cook", "data=digits", "device=cpu", "logger=plain"]
MNIST_SIZE = ["+model=diehl_cook", "data=synthetic", "data.shape=[1,28,28]", "data.intensity=128.0",
              "data.n_train=64", "data.n_test=1", "device=cpu", "logger=plain"]


def present(compose_cfg, overrides, kernel: str, batch: int, batches: int, train: bool = True):
    """Present ``batches`` batches; return (counts per batch, network state, torch RNG state, exp)."""
    exp = build_experiment(compose_cfg(*overrides, f"trainer.cpu_kernel={kernel}"))
    assert (exp.network.cpu_loop is not None) == (kernel != "false")
    exp.network.train(train)
    torch.manual_seed(11)
    counts = [exp.simulate(exp.train.x[k * batch:(k + 1) * batch]) for k in range(batches)]
    return counts, {k: v.clone() for k, v in exp.network.state_dict().items()}, torch.get_rng_state(), exp


def assert_same(a, b, atol: float = 0.0):
    counts_a, state_a, rng_a, _ = a
    counts_b, state_b, rng_b, _ = b
    for ca, cb in zip(counts_a, counts_b):
        assert torch.equal(ca, cb)
    assert state_a.keys() == state_b.keys()
    for k in state_a:
        if atol:
            torch.testing.assert_close(state_a[k], state_b[k], atol=atol, rtol=0)
        else:
            assert torch.equal(state_a[k], state_b[k]), k
    assert torch.equal(rng_a, rng_b)  # the random stream continues where the eager path leaves it


@needs_cc
@pytest.mark.parametrize("overrides, batch, reduction, atol", [
    (DIGITS + ["model.n_neurons=30"], 1, "owner", 0.0),          # the default run: batch 1
    (MNIST_SIZE + ["model.n_neurons=20", "model.time=60"], 1, "sum", 1e-6),
    (DIGITS + ["model.n_neurons=30"], 8, "owner", 0.0),
    (MNIST_SIZE + ["model.n_neurons=40", "model.time=100"], 16, "owner", 1e-6),
    (DIGITS + ["model.n_neurons=30"], 8, "mean", 0.0),
    # owners K > 1 (auto: ceil(32 / 10) = 4; or set): the loop claims one owner, so these run step by step
    (DIGITS + ["model.n_neurons=10"], 32, "owner", 0.0),
    (DIGITS + ["model.n_neurons=30", "model.learner.owners=3"], 8, "owner", 0.0),
    (DIGITS + ["model.n_neurons=30", "model.learner.overflow=nearest"], 8, "owner", 0.0),
    (DIGITS + ["model.n_neurons=30", "model.learner.owner_by=spike_count"], 8, "owner", 0.0),
])
def test_learning_equals_the_eager_path(compose_cfg, overrides, batch, reduction, atol):
    args = overrides + [f"model.learner.reduction={reduction}"]
    eager = present(compose_cfg, args, "false", batch, 4)
    loop = present(compose_cfg, args, "auto", batch, 4)
    assert_same(eager, loop, atol=atol)
    # it learned: weights and thresholds moved, the excitatory layer fired
    assert float(loop[1]["groups.Ae.theta"].abs().sum()) > 0
    assert sum(float(c.sum()) for c in loop[0]) > 0


@needs_cc
def test_summed_batch_agrees_to_rounding(compose_cfg):
    args = DIGITS + ["model.n_neurons=30", "model.learner.reduction=sum"]
    assert_same(present(compose_cfg, args, "false", 8, 3), present(compose_cfg, args, "auto", 8, 3), atol=1e-6)


@needs_cc
@pytest.mark.parametrize("overrides", [DIGITS + ["model.n_neurons=40"], MNIST_SIZE + ["model.n_neurons=20",
                                                                                      "model.time=60"]])
def test_inference_equals_the_eager_path(compose_cfg, overrides):
    """Learning off (label pass, test): thresholds frozen, weights untouched, same counts."""
    eager = present(compose_cfg, overrides, "false", 16, 2, train=False)
    loop = present(compose_cfg, overrides, "auto", 16, 2, train=False)
    assert_same(eager, loop)
    assert torch.equal(loop[1]["groups.Ae.theta"], torch.zeros_like(loop[1]["groups.Ae.theta"]))


@needs_cc
def test_one_spike_per_sample_and_step(compose_cfg):
    """Diehl & Cook's excitatory layer emits at most one spike per sample and step; recorded
    trains come from the eager path (the loop only counts), and they agree with the loop's counts."""
    exp = build_experiment(compose_cfg(*DIGITS, "model.n_neurons=30", "model.intensity=1024"))
    exp.network.eval()
    x = exp.train.x[:8]
    torch.manual_seed(3)
    counts = exp.simulate(x)
    torch.manual_seed(3)
    out = exp.network(exp.inputs(x)[0], count=("Ae",), record=("Ae",))  # recording: the eager path
    trains = out["spikes"]["Ae"]
    assert trains.sum(-1).max() <= 1
    assert torch.equal(trains.sum(0), counts)
    assert float(counts.sum()) > 0


def test_off_switches(compose_cfg, monkeypatch):
    exp = build_experiment(compose_cfg(*DIGITS, "model.n_neurons=10", "trainer.cpu_kernel=false"))
    assert exp.network.cpu_loop is None
    monkeypatch.setenv("SNNRUN_CPU_KERNEL", "0")
    exp = build_experiment(compose_cfg(*DIGITS, "model.n_neurons=10"))
    assert exp.network.cpu_loop is None


def test_bad_values_name_the_key(compose_cfg):
    with pytest.raises(ConfigError, match="auto, true or false") as e:
        build_experiment(compose_cfg(*DIGITS, "model.n_neurons=10", "trainer.cpu_kernel=fast"))
    assert e.value.key == "trainer.cpu_kernel"
    # required for a model the loop does not cover: says why
    with pytest.raises(ConfigError, match="cannot run this model") as e:
        build_experiment(compose_cfg("+model=snn_mlp", "data=digits", "device=cpu", "trainer.cpu_kernel=true"))
    assert e.value.key == "trainer.cpu_kernel"


def test_other_networks_run_step_by_step(compose_cfg):
    """A swapped inhibitory neuron model is not the loop's network: auto leaves it to the eager path."""
    exp = build_experiment(compose_cfg(*DIGITS, "model.n_neurons=10", "neuron@model.network.groups.Ai=izhikevich"))
    assert exp.network.cpu_loop is None
    assert "lif" in cpu_loop.network_misfit(exp.network)


@pytest.fixture
def no_compiler(monkeypatch, tmp_path):
    """A machine without a C compiler: $CC names a missing one and the kernel cache is empty."""
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("SNNRUN_CACHE", str(tmp_path / "cache"))
    c_library._reset_library_cache()
    yield
    c_library._reset_library_cache()


def test_without_a_compiler_the_eager_path_runs(compose_cfg, no_compiler, capsys):
    exp = build_experiment(compose_cfg(*DIGITS, "model.n_neurons=10"))
    assert exp.network.cpu_loop is None
    err = capsys.readouterr().err
    assert err.count("snnrun: info:") == 1 and "no C compiler" in err
    build_experiment(compose_cfg(*DIGITS, "model.n_neurons=10"))  # said once per process
    assert "snnrun: info:" not in capsys.readouterr().err
    exp.network.train()
    assert exp.simulate(exp.train.x[:1]).shape == (1, 10)


@pytest.mark.slow  # two CLI runs (~20 s on 2 busy cores); the fallback itself is tested above
def test_train_without_a_compiler(tmp_path, cli_env):
    """The CLI on a machine without a C compiler: one info line, and the same metrics as with it."""
    args = ["train", "+model=diehl_cook", *TINY, "seed=2"]
    env = dict(cli_env, CC=str(tmp_path / "no-such-cc"), SNNRUN_CACHE=str(tmp_path / "cache"))
    plain = run_cli([*args, f"hydra.run.dir={tmp_path / 'a'}"], env, tmp_path)
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert plain.stderr.count("snnrun: info:") == 1 and "no C compiler" in plain.stderr
    if cpu_loop.compiler() is None:
        return
    fused = run_cli([*args, f"hydra.run.dir={tmp_path / 'b'}"], cli_env, tmp_path)
    assert fused.returncode == 0, fused.stderr[-2000:]
    assert "snnrun: info:" not in fused.stderr
    import json

    a, b = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("a", "b"))
    assert a["decoders"] == b["decoders"] and a["confusion"] == b["confusion"]
