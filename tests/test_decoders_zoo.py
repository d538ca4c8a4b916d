"""Class-population decoders (SPAIC's) on hand-made spike trains and voltages, through the one
interface ``predict(Readout, assignment, n_classes)``; plus ``needs`` and ``check`` for all."""

from math import exp

import pytest
import torch

from snnrun.components.decoders import Decoder, LabelAssignment, Readout, decoder_needs
from snnrun.errors import ConfigError


def dec(name, **kw):
    return Decoder.build({"type": name, **kw})


# trains (T=4, B=3, n=4): two classes of k=2 neurons, class 0 = neurons {0, 1}, class 1 = {2, 3}
S = torch.zeros(4, 3, 4)
for t, b, i in [(1, 0, 0), (2, 0, 0), (1, 0, 1), (0, 0, 2), (3, 0, 3),   # counts [2, 1, 1, 1]
                (1, 1, 0), (2, 1, 2), (3, 1, 2), (2, 1, 3), (3, 1, 3),   # counts [1, 0, 2, 2]
                (0, 2, 0), (1, 2, 2), (2, 2, 3)]:                        # counts [1, 0, 1, 1]
    S[t, b, i] = 1.0
COUNTS = S.sum(0)


def readout(**kw):
    return Readout(COUNTS, spikes=S, **kw)


def test_spike_count():
    assert COUNTS.tolist() == [[2, 1, 1, 1], [1, 0, 2, 2], [1, 0, 1, 1]]
    d = dec("spike_count")
    # class sums [3, 2], [1, 4], [1, 2]; counts alone suffice
    assert d.class_scores(Readout(COUNTS), None, 2).tolist() == [[3, 2], [1, 4], [1, 2]]
    assert d.predict(Readout(COUNTS), None, 2).tolist() == [0, 1, 1]


def test_spike_rate_in_hz_from_counts_steps_and_dt():
    d = dec("spike_rate")
    # r = 1000 c / (T dt) = 1000 c / (4 * 0.5) = 500 c
    assert d.decode(Readout(COUNTS, dt=0.5, steps=4)).tolist() == (500 * COUNTS).tolist()
    assert d.predict(Readout(COUNTS, dt=0.5, steps=4), None, 2).tolist() == [0, 1, 1]
    assert d.decode(readout(dt=0.5)).tolist() == (500 * COUNTS).tolist()  # T taken from the trains
    with pytest.raises(ValueError, match="steps"):
        d.decode(Readout(COUNTS))


def test_first_spike_reads_the_spike_vector_at_the_first_spike_step():
    d = dec("first_spike")
    # t* = 0, 1, 0: s[t*] = [0,0,1,0], [1,0,0,0], [1,0,0,0]
    assert d.decode(readout()).tolist() == [[0, 0, 1, 0], [1, 0, 0, 0], [1, 0, 0, 0]]
    assert d.predict(readout(), None, 2).tolist() == [1, 0, 0]  # earliest class, not the most active
    # two neurons of class 1 firing together at t* beat one of class 0
    s = torch.zeros(3, 1, 4)
    s[1, 0, 0] = s[1, 0, 2] = s[1, 0, 3] = 1
    assert d.predict(Readout(s.sum(0), spikes=s), None, 2).tolist() == [1]
    silent = torch.zeros(3, 1, 4)
    assert d.predict(Readout(silent.sum(0), spikes=silent), None, 2).tolist() == [0]


def test_time_spike_count_weights_early_spikes_exponentially():
    d = dec("time_spike_count")
    w = [0.1 * exp(-t / (0.5 * 4)) for t in range(4)]  # w[t] = 0.1 exp(-t / (T/2))
    expected = [[w[1] + w[2], w[1], w[0], w[3]],
                [w[1], 0, w[2] + w[3], w[2] + w[3]],
                [w[0], 0, w[1], w[2]]]
    assert torch.allclose(d.decode(readout()), torch.tensor(expected))
    # sample 2: class 0 = w0 = 0.1 > class 1 = w1 + w2 = 0.0975 (a linear (T-t)/T weight would give 1.25 > 1)
    assert d.predict(readout(), None, 2).tolist() == [0, 1, 0]


def test_time_softmax_scores_relative_to_the_first_spike():
    d = dec("time_softmax")  # scale 5, tau 50 ms
    dt = 10.0
    f = [5 * exp(-lag * dt / 50) for lag in range(4)]  # x = 5 exp(-(t - t*) dt / tau)
    # t* = 0, 1, 0
    x = [[f[1] + f[2], f[1], f[0], f[3]],
         [f[0], 0, f[1] + f[2], f[1] + f[2]],
         [f[0], 0, f[1], f[2]]]
    assert torch.allclose(d.decode(readout(dt=dt)), torch.tensor(x))
    p = d.class_scores(readout(dt=dt), None, 2)
    expected = torch.softmax(torch.tensor([[r[0] + r[1], r[2] + r[3]] for r in x]), 1)
    assert torch.allclose(p, expected) and torch.allclose(p.sum(1), torch.ones(3))
    assert d.predict(readout(dt=dt), None, 2).tolist() == [0, 1, 1]
    with pytest.raises(ConfigError) as e:
        Decoder.build({"type": "time_softmax", "tau": 0}, key="model.decoders.0")
    assert e.value.key == "model.decoders.0.tau"


# membrane potentials (T=3, B=2, n=4)
V = torch.tensor([
    [[0.0, 1.0, 0.0, 1.0], [5.0, 0.0, 0.0, 0.0]],
    [[0.0, 1.0, 3.0, 0.0], [-1.0, -1.0, 1.0, 1.0]],
    [[2.0, 0.0, -1.0, 0.0], [-2.0, -2.0, -1.0, 0.0]],
])


def vreadout():
    return Readout(torch.zeros(2, 4), v=V)


def test_final_voltage():
    d = dec("final_voltage")
    assert d.decode(vreadout()).tolist() == [[2, 0, -1, 0], [-2, -2, -1, 0]]
    assert d.class_scores(vreadout(), None, 2).tolist() == [[2, -1], [-4, -1]]
    assert d.predict(vreadout(), None, 2).tolist() == [0, 1]


def test_voltage_sum():
    d = dec("voltage_sum")
    assert d.decode(vreadout()).tolist() == [[2, 2, 2, 1], [2, -3, 0, 1]]
    assert d.predict(vreadout(), None, 2).tolist() == [0, 1]  # [4, 3], [-1, 1]


def test_v_trajectory_reads_the_peak():
    d = dec("v_trajectory")
    assert d.decode(vreadout()).tolist() == [[2, 1, 3, 1], [5, 0, 1, 1]]
    assert d.predict(vreadout(), None, 2).tolist() == [1, 0]  # [3, 4], [5, 2]


def test_readout_with_a_shape_is_flattened():
    s = S.reshape(4, 3, 2, 2)
    r = Readout(COUNTS.reshape(3, 2, 2), spikes=s)
    assert dec("first_spike").predict(r, None, 2).tolist() == [1, 0, 0]
    assert dec("spike_count").predict(r, None, 2).tolist() == [0, 1, 1]


def test_missing_recording_is_an_engine_error():
    with pytest.raises(ValueError, match="readout.spikes"):
        dec("first_spike").predict(Readout(COUNTS), None, 2)
    with pytest.raises(ValueError, match="readout.v"):
        dec("final_voltage").predict(Readout(COUNTS, spikes=S), None, 2)


NEEDS = {
    "all_activity": {"assignment"}, "proportion_weighting": {"assignment"},
    "spike_count": set(), "spike_rate": set(),
    "first_spike": {"spikes"}, "time_spike_count": {"spikes"}, "time_softmax": {"spikes"},
    "final_voltage": {"v"}, "voltage_sum": {"v"}, "v_trajectory": {"v"},
}


def test_every_registered_decoder_is_tested_and_declares_its_needs():
    assert set(Decoder.registry.names()) == set(NEEDS)
    for name, needs in NEEDS.items():
        assert dec(name).needs == needs, name
    assert decoder_needs([dec("spike_count"), dec("first_spike"), dec("all_activity")]) == {"spikes", "assignment"}


@pytest.mark.parametrize("name", sorted(n for n, need in NEEDS.items() if "assignment" not in need))
def test_check_rejects_a_readout_that_does_not_split_into_classes(name):
    d = dec(name)
    d.check(20, 10)
    for n, classes in [(5, 2), (3, 10)]:
        with pytest.raises(ConfigError) as e:
            d.check(n, classes)
        assert e.value.key == "model.decoders" and name in str(e.value)
    # and the same at predict time, if the engine skipped check
    r = Readout(torch.zeros(2, 5), spikes=torch.zeros(3, 2, 5), v=torch.zeros(3, 2, 5), steps=3)
    with pytest.raises(ConfigError) as e:
        d.predict(r, None, 2)
    assert e.value.key == "model.decoders"


def test_ngram_is_gone():
    with pytest.raises(ConfigError, match="unknown decoder 'ngram'"):
        dec("ngram")


def test_spike_count_ignores_an_assignment_it_is_given():
    a = LabelAssignment(4, 2)
    assert dec("spike_count").predict(Readout(COUNTS), a, 2).tolist() == [0, 1, 1]
