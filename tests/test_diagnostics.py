"""Learning diagnostics (snnrun/engine/diagnostics.py): the figures of known readout counts, and a
Diehl & Cook run logs them per metrics window and draws diagnostics.png."""

import json

import pytest
import torch

from snnrun.engine.diagnostics import LearningDiagnostics
from snnrun.engine.experiment import build_experiment
from snnrun.engine.loop import train
from tests.conftest import TINY


def test_window_figures_of_known_counts(compose_cfg):
    exp = build_experiment(compose_cfg("+model=diehl_cook", *TINY))  # 10 Ae neurons
    d = LearningDiagnostics(exp.network, exp.readout, exp.device)
    c1 = torch.zeros(4, 10, device=exp.device)
    c1[0, 3], c1[1, 3], c1[1, 5], c1[2, 5] = 2, 4, 1, 1   # winners: 3, 3, 5; sample 3 silent
    c2 = torch.zeros(2, 10, device=exp.device)
    c2[0, 7], c2[1, 3] = 1, 3                             # winners: 7, 3
    d.observe(c1)
    d.observe(c2)
    w = LearningDiagnostics.summary(d.window())
    assert w["winners"] == 3                       # neurons 3, 5, 7
    assert w["top_win_share"] == pytest.approx(3 / 6, abs=1e-4)  # neuron 3 won 3 of the 6 samples
    assert w["learning_per_batch"] == pytest.approx((2 + 2) / 2)  # neurons that fired: {3, 5}, {3, 7}
    assert w["silent"] == pytest.approx(1 / 6, abs=1e-4)
    theta = exp.network.groups["Ae"].theta
    assert w["theta"]["Ae"] == {"mean": pytest.approx(float(theta.mean()), abs=1e-4),
                                "max": pytest.approx(float(theta.max()), abs=1e-4)}
    wx = exp.network.connections["X_Ae"].w
    assert w["weights"]["X_Ae"]["l2_mean"] == pytest.approx(float(wx.norm(dim=0).mean()), abs=1e-4)
    assert w["weights"]["X_Ae"]["change"] == 0.0  # nothing learned between the window's start and end
    wx.mul_(1.1)
    assert LearningDiagnostics.summary(d.window()) == {}  # an empty window reports nothing
    d.observe(c2)
    assert LearningDiagnostics.summary(d.window())["weights"]["X_Ae"]["change"] == pytest.approx(0.1, rel=1e-3)
    assert d.finish()["wins_per_neuron"] == [0, 0, 0, 4, 0, 1, 0, 2, 0, 0]


def test_a_diehl_cook_run_logs_diagnostics_and_draws_them(compose_cfg, tmp_path):
    cfg = compose_cfg("+model=diehl_cook", *TINY, "trainer.batch_size=4")
    summary = train(cfg, tmp_path)
    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    diag = [l["diagnostics"] for l in lines if l["phase"] == "train"]
    assert diag and all({"winners", "learning_per_batch", "samples_learned", "silent", "theta", "weights"} <= set(d)
                        for d in diag)
    assert all(0 < d["learning_per_batch"] <= 10 and 0 <= d["samples_learned"] <= 1 for d in diag)
    wins = json.loads((tmp_path / "diagnostics.json").read_text())["wins_per_neuron"]
    # every training sample with a readout spike has one winner
    silent = sum(round(d["silent"] * n) for d, n in zip(diag, [20, 20]))
    assert len(wins) == 10 and sum(wins) == summary["train_samples"] - silent
    assert (tmp_path / "diagnostics.png").stat().st_size > 0


def test_diagnostics_are_off_for_gradient_models_and_can_be_forced(compose_cfg, tmp_path):
    cfg = compose_cfg("+model=snn_mlp", "data=synthetic", "data.n_train=20", "data.n_test=10", "trainer.epochs=1",
                      "logger=plain")
    train(cfg, tmp_path / "a")
    assert not (tmp_path / "a" / "diagnostics.json").exists()
    cfg = compose_cfg("+model=diehl_cook", *TINY, "trainer.diagnostics=false")
    train(cfg, tmp_path / "b")
    assert not (tmp_path / "b" / "diagnostics.png").exists()
    lines = [json.loads(l) for l in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert not any("diagnostics" in l for l in lines)


def test_samples_learned_counts_owners_and_overflow_placements(compose_cfg, tmp_path):
    # 10 neurons, batch 20: owners auto = 2 per neuron. A sample may own several neurons (it fires
    # one after another), so the owners leave some samples out; overflow: nearest places them on
    # neurons with room left, and the share of samples learned from counts them
    shares = {}
    for overflow in ("none", "nearest"):
        cfg = compose_cfg("+model=diehl_cook", *TINY, "trainer.batch_size=20", "trainer.cpu_kernel=false",
                          f"model.learner.overflow={overflow}")
        train(cfg, tmp_path / overflow)
        lines = [json.loads(l) for l in (tmp_path / overflow / "metrics.jsonl").read_text().splitlines()]
        diag = [l["diagnostics"] for l in lines if l["phase"] == "train"]
        shares[overflow] = [d["samples_learned"] for d in diag]
    assert all(a <= b for a, b in zip(shares["none"], shares["nearest"]))
    assert sum(shares["nearest"]) > sum(shares["none"])


def test_owner_by_spike_count_trains_and_bounds_the_samples_learned(compose_cfg, tmp_path):
    # whole runs at batch 20 over 5 neurons, one owner each: each batch teaches at most 5 of its
    # 20 samples; the same seed with first_spike owners learns other weights (the option is used)
    weights = {}
    for by in ("spike_count", "first_spike"):
        cfg = compose_cfg("+model=diehl_cook", *TINY, "model.n_neurons=5", "trainer.batch_size=20",
                          "model.learner.owners=1", f"model.learner.owner_by={by}")
        summary = train(cfg, tmp_path / by)
        lines = [json.loads(l) for l in (tmp_path / by / "metrics.jsonl").read_text().splitlines()]
        shares = [l["diagnostics"]["samples_learned"] for l in lines if l["phase"] == "train"]
        assert shares and all(0 < s <= 5 / 20 for s in shares), by
        assert summary["train_samples"] == 40
        weights[by] = torch.load(tmp_path / by / "checkpoint.pt", weights_only=True)["network"]["connections.X_Ae.w"]
    assert weights["spike_count"].shape == (64, 5)
    assert not torch.equal(weights["spike_count"], weights["first_spike"])
