"""Quiet samples presented again at a higher input rate (Diehl & Cook 2015; snnrun/engine/represent.py)."""

import pytest
import torch

from snnrun.components.decoders import Readout
from snnrun.components.encoders import PoissonEncoder
from snnrun.engine.represent import Represent


def poisson_counts(encoder):
    """present(x): the input spike counts of each row (the 'readout' is the input layer itself)."""
    return lambda x: Readout(counts=encoder(x).sum(0).flatten(1).sum(1, keepdim=True).float())


@pytest.mark.parametrize("add_hz, expected", [(90.0, 100.0), (10.0, 20.0)])
def test_a_quiet_row_is_presented_at_intensity_plus_k_times_add_hz(add_hz, expected):
    # 1,000 pixels per row, I = 10 Hz, 1 s: a row of p = 0.01 expects 100 spikes (not quiet at 50),
    # a row of p = 0.001 expects 10 (quiet). One try at I + add_hz: 0.001 * 1000 * (10 + add_hz) spikes.
    torch.manual_seed(0)
    enc = PoissonEncoder(time=1000.0, dt=1.0, intensity=10.0)
    x = torch.tensor([[0.01] * 1000, [0.001] * 1000])
    present = poisson_counts(enc)
    first = present(x)
    again = Represent(below=50, add_hz=add_hz, tries=1, intensity=10.0)(present, x, first)
    assert again.counts[0].item() == first.counts[0].item()  # a row that was loud keeps its counts
    sd = expected ** 0.5
    assert abs(again.counts[1].item() - expected) < 4 * sd, again.counts  # try 1 at 10 + add_hz Hz (or its last try)


def test_tries_stop_at_the_first_rate_that_is_loud_enough():
    torch.manual_seed(1)
    enc = PoissonEncoder(time=1000.0, dt=1.0, intensity=10.0)
    x = torch.full((1, 1000), 0.001)  # 10 spikes at I; 20, 30, 40 ... at I + k * 10 Hz
    rp = Represent(below=35, add_hz=10.0, tries=8, intensity=10.0)
    seen = []

    def present(xb):
        seen.append(round(float(xb.max()) / 0.001, 3))  # the rate factor of this presentation
        return poisson_counts(enc)(xb)

    out = rp(present, x, present(x))
    assert out.counts.item() >= 35 or len(seen) == 9
    assert seen[:3] == [1.0, 2.0, 3.0]  # (I + k * add_hz) / I for k = 0, 1, 2
    assert len(seen) < 9  # about 40 spikes are expected at k = 3: it stops well before 8 tries


def test_evaluation_presents_quiet_samples_again(compose_cfg):
    """A real (untrained) Diehl & Cook network at an input rate where some samples fire one readout
    spike and some two: with represent_below=2 the quiet ones are presented again at 112, 144 ...
    Hz; the others keep their counts (the same first presentation)."""
    from snnrun.engine.experiment import build_experiment
    from snnrun.engine.evaluation import evaluate

    def counts(below):
        cfg = compose_cfg("+model=diehl_cook", "data=digits", "data.limit_train=64", "data.limit_test=64",
                          "model.n_neurons=20", "model.time=250", "model.intensity=80", "logger=plain",
                          f"trainer.represent_below={below}", "trainer.represent_tries=4")
        exp = build_experiment(cfg)
        torch.manual_seed(0)
        return evaluate(exp, exp.data.test, 64, predict=False).counts.sum(1)

    plain, again = counts(0), counts(2)
    quiet = plain < 2
    assert 5 <= quiet.sum() <= 59, plain  # a mix of quiet and loud samples
    assert torch.equal(again[~quiet], plain[~quiet])
    assert (again[quiet] >= 2).all(), again[quiet]  # a higher rate drives every one of them


def test_a_blank_image_changes_nothing_while_learning(compose_cfg):
    """What the re-presentation while learning relies on: the rows that are not presented again are
    blank, and a blank image moves no weight and no threshold of a learning Diehl & Cook network."""
    from snnrun.engine.experiment import build_experiment

    exp = build_experiment(compose_cfg("+model=diehl_cook", "data=digits", "data.limit_train=16",
                                       "data.limit_test=16", "model.n_neurons=10", "model.time=50", "logger=plain"))
    exp.network.train()
    x = exp.train.x[:8].to(exp.device)
    exp.begin_presentation(exp.train.y[:8])
    exp.present(x)  # learn from something first: traces, thresholds and weights off their start
    state = {k: v.clone() for k, v in exp.network.state_dict().items()}
    exp.begin_presentation(exp.train.y[:8])
    assert exp.present(torch.zeros_like(x)).counts.sum() == 0
    after = exp.network.state_dict()
    # the same up to the thresholds' decay over 50 ms (time constant 1e7 ms: a relative 5e-6, in
    # float32 steps) and the float rounding of the weight normalisation
    theta = "groups.Ae.theta"
    assert state[theta].max() > 0.1
    torch.testing.assert_close(after[theta], state[theta] * torch.exp(torch.tensor(-50 / 1e7)), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(after["connections.X_Ae.w"], state["connections.X_Ae.w"], rtol=0, atol=1e-7)


def test_training_presents_quiet_samples_again_and_learns_from_them(compose_cfg, tmp_path):
    """At an input rate too weak for an untrained network, a run without re-presentation leaves
    almost every sample silent and so learns almost nothing; with represent_below=1 the quiet
    samples are presented again at higher rates while learning (represent_learning=true)."""
    import json

    from tests.conftest import train_like_cli

    def run(below, learning=True):
        cfg = compose_cfg("+model=diehl_cook", "data=digits", "data.limit_train=96", "data.limit_test=32",
                          "model.n_neurons=10", "model.time=100", "model.intensity=24", "logger=plain",
                          "trainer.batch_size=16", "trainer.assign_every=32", "trainer.diagnostics=true",
                          f"trainer.represent_below={below}", "trainer.represent_tries=4",
                          f"trainer.represent_learning={learning}")
        run_dir = tmp_path / f"{below}_{learning}"
        train_like_cli(cfg, run_dir)
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        silent = [r["diagnostics"]["silent"] for r in rows if r.get("phase") == "train" and "diagnostics" in r]
        assign = [r["silent_train_samples"] for r in rows if r.get("phase") == "assign"]
        return sum(silent) / len(silent), assign[-1]

    (silent0, assign0), (silent1, assign1) = run(0), run(1)
    assert silent0 > 0.5 and silent1 < 0.1, (silent0, silent1)  # while learning
    assert assign1 < assign0  # and in the label pass
    silent_eval_only, assign_eval_only = run(1, learning=False)  # the default: evaluation only
    assert silent_eval_only == silent0 and assign_eval_only < assign0


def test_snnrun_eval_with_represent_assigns_labels_again_and_tests(compose_cfg, tmp_path):
    """``snnrun eval run_dir=DIR trainer.represent_below=N``: a trained run re-evaluated with quiet
    samples presented again, its labels assigned the same way (a fresh label pass)."""
    from snnrun.engine.evaluation import evaluate_run
    from tests.conftest import train_like_cli

    cfg = compose_cfg("+model=diehl_cook", "data=digits", "data.limit_train=64", "data.limit_test=64",
                      "model.n_neurons=10", "model.time=100", "model.intensity=24", "logger=plain",
                      "trainer.batch_size=16")
    run = tmp_path / "run"
    trained = train_like_cli(cfg, run)
    plain = evaluate_run(run, ["logger=plain"])
    again = evaluate_run(run, ["logger=plain", "trainer.represent_below=1", "trainer.represent_tries=4"])
    assert plain["silent_test_samples"] == trained["silent_test_samples"] > 32  # the weak rate: mostly silent
    assert again["silent_test_samples"] < plain["silent_test_samples"] // 4
