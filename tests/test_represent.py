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
    from snnrun.engine.loop import evaluate

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
