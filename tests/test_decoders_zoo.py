"""Readout decoders on hand-made spike trains and voltages."""

import pytest
import torch

from snnrun.components.decoders import Decoder, LabelAssignment
from snnrun.errors import ConfigError


def dec(name, **kw):
    return Decoder.build({"type": name, **kw})


# trains (T=4, B=2, n=3)
S = torch.tensor([
    [[0, 1, 0], [0, 0, 0]],
    [[1, 1, 0], [0, 0, 1]],
    [[0, 1, 0], [1, 0, 1]],
    [[0, 0, 1], [0, 0, 0]],
], dtype=torch.float)


def test_counts_rates_and_first_spikes():
    assert dec("spike_count").decode(S).tolist() == [[1, 3, 1], [1, 0, 2]]
    assert dec("spike_rate").decode(S, dt=0.5).tolist() == [[500, 1500, 500], [500, 0, 1000]]
    assert dec("first_spike").decode(S).tolist() == [[1, 0, 3], [2, 4, 1]]
    assert dec("first_spike").predict_trains(S).tolist() == [1, 2]
    assert dec("spike_count").predict_trains(S).tolist() == [1, 2]


def test_time_weighted_decoders():
    w = torch.tensor([1.0, 0.75, 0.5, 0.25])
    expected = (S * w.view(-1, 1, 1)).sum(0)
    assert torch.allclose(dec("time_spike_count").decode(S), expected)
    p = dec("time_softmax").decode(S)
    assert torch.allclose(p, torch.softmax(expected, 1)) and torch.allclose(p.sum(1), torch.ones(2))


def test_voltage_decoders():
    v = torch.arange(24, dtype=torch.float).view(4, 2, 3)
    assert dec("final_voltage").decode(v=v).tolist() == v[-1].tolist()
    assert dec("voltage_sum").decode(v=v).tolist() == v.sum(0).tolist()
    assert dec("v_trajectory").decode(v=v).shape == (2, 4, 3)
    with pytest.raises(ConfigError):
        dec("final_voltage").decode(spikes=S)


def test_population_scores_and_count_predict():
    counts = torch.tensor([[1.0, 2.0, 5.0, 0.0], [4.0, 0.0, 0.0, 1.0]])
    a = LabelAssignment(4, 2)
    assert dec("spike_count").predict(counts, a).tolist() == [1, 0]  # populations {0,1} vs {2,3}
    with pytest.raises(ConfigError):
        dec("first_spike").predict(counts, a)


def test_ngram_learns_firing_orders():
    d = dec("ngram", n=2)
    # class 0: neuron 0 then 1; class 1: neuron 1 then 0
    train = torch.zeros(3, 2, 2)
    train[0, 0, 0] = train[1, 0, 1] = 1
    train[0, 1, 1] = train[1, 1, 0] = 1
    d.update(train, torch.tensor([0, 1]), n_classes=2)
    assert d.scores[(0, 1)].tolist() == [1, 0] and d.scores[(1, 0)].tolist() == [0, 1]
    assert d.predict_trains(train).tolist() == [0, 1]
