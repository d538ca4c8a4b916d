"""Neuron dynamics against their equations (BindsNET semantics)."""

import math

import pytest
import torch

from snnrun.errors import ConfigError
from snnrun.components.neurons import AdaptiveLIFNodes, DiehlCookNodes, Input, LIFNodes, NeuronModel


def run_constant(group, current, steps):
    group.reset_state(1)
    spikes, volts = [], []
    for _ in range(steps):
        spikes.append(group(torch.full((1, group.n), current)).clone())
        volts.append(group.v.clone())
    return torch.stack(spikes)[:, 0, 0], torch.stack(volts)[:, 0, 0]


def test_lif_decays_to_rest_with_tc_decay():
    g = LIFNodes(1, rest=-65.0, tc_decay=100.0, dt=1.0)
    g.reset_state(1)
    g.v.fill_(-55.0)
    for _ in range(50):
        g(torch.zeros(1, 1))
    expected = -65.0 + 10.0 * math.exp(-50 / 100.0)
    assert g.v.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("current,tc", [(0.5, 100.0), (1.0, 20.0), (2.0, 10.0)])
def test_lif_first_spike_time_matches_closed_form(current, tc):
    g = LIFNodes(1, rest=-65.0, thresh=-52.0, tc_decay=tc, dt=1.0)
    s, _ = run_constant(g, current, 400)
    d = math.exp(-1.0 / tc)
    # v_k = rest + I (1 - d^k) / (1 - d): first k with v_k >= thresh
    k = next(k for k in range(1, 1000) if current * (1 - d ** k) / (1 - d) >= 13.0 - 1e-9)
    assert int(torch.nonzero(s)[0]) + 1 == k


def test_lif_below_rheobase_never_fires():
    # steady state I / (1 - d) below thresh - rest: never spikes
    g = LIFNodes(1, tc_decay=10.0)
    d = math.exp(-0.1)
    current = 0.99 * 13.0 * (1 - d)
    s, v = run_constant(g, current, 500)
    assert s.sum() == 0
    assert v[-1].item() == pytest.approx(-65.0 + current / (1 - d), abs=0.05)


def test_lif_rate_with_refractory_period():
    g = LIFNodes(1, rest=-65.0, reset=-65.0, thresh=-52.0, refrac=5.0, tc_decay=20.0)
    current = 2.0
    s, _ = run_constant(g, current, 1000)
    d = math.exp(-1 / 20.0)
    k = next(k for k in range(1, 1000) if current * (1 - d ** k) / (1 - d) >= 13.0)
    # after a spike: refractory steps ignore input (v just leaks at rest), then k steps to fire
    times = torch.nonzero(s).flatten()
    isi = (times[1:] - times[:-1]).unique()
    assert isi.tolist() == [k + 5]


def test_lif_lbound_clamps_voltage():
    g = LIFNodes(1, lbound=-70.0)
    s, v = run_constant(g, -5.0, 10)
    assert v.min().item() == -70.0


def test_adaptive_threshold_rises_by_theta_plus_and_freezes_in_eval():
    g = AdaptiveLIFNodes(3, theta_plus=0.5, tc_theta_decay=1e12)
    g.reset_state(2)
    g.train()
    s = g(torch.tensor([[20.0, 0.0, 20.0], [20.0, 0.0, 0.0]]))
    assert s.tolist() == [[1, 0, 1], [1, 0, 0]]
    # theta is shared by the batch and summed over it (BindsNET)
    assert g.theta.tolist() == pytest.approx([1.0, 0.0, 0.5])
    g.eval()
    g.reset_state(1)
    for _ in range(20):
        g(torch.full((1, 3), 20.0))
    assert g.theta.tolist() == pytest.approx([1.0, 0.0, 0.5])


def test_adaptive_threshold_blocks_firing():
    g = AdaptiveLIFNodes(1, tc_decay=1e9, refrac=0.0)
    g.theta.fill_(10.0)
    g.eval()
    g.reset_state(1)
    g(torch.full((1, 1), 20.0))  # v = -45: above thresh -52 but below thresh + theta = -42
    assert g.s.item() == 0


def test_diehl_cook_one_spike_per_step_and_theta_counts_crossings():
    torch.manual_seed(0)
    g = DiehlCookNodes(50, theta_plus=0.05)
    g.reset_state(4)
    g.train()
    s = g(torch.full((4, 50), 30.0))  # every neuron crosses threshold
    assert s.sum(1).tolist() == [1, 1, 1, 1]
    assert (g.v == -65.0).all()  # all crossing neurons reset ...
    assert (g.refrac_count > 0).all()  # ... and refractory
    assert g.theta.tolist() == pytest.approx([0.2] * 50)
    # the chosen neuron is uniform among those crossing
    picks = torch.zeros(50)
    for _ in range(200):
        g.reset_state(8)
        picks += g(torch.full((8, 50), 30.0)).sum(0)
    assert picks.min() > 0


def test_diehl_cook_without_one_spike_fires_all():
    g = DiehlCookNodes(5, one_spike=False)
    g.reset_state(1)
    assert g(torch.full((1, 5), 30.0)).sum() == 5


def test_traces_set_to_one_and_additive():
    g = Input(1, traces=True, tc_trace=20.0)
    g.reset_state(1)
    g(torch.ones(1, 1))
    g(torch.ones(1, 1))
    assert g.x.item() == 1.0
    g(torch.zeros(1, 1))
    assert g.x.item() == pytest.approx(math.exp(-1 / 20))
    a = Input(1, traces=True, traces_additive=True, tc_trace=20.0, trace_scale=0.5)
    a.reset_state(1)
    a(torch.ones(1, 1))
    a(torch.ones(1, 1))
    assert a.x.item() == pytest.approx(0.5 * math.exp(-1 / 20) + 0.5)


def test_sum_input_accumulates():
    g = LIFNodes(2, sum_input=True)
    g.reset_state(1)
    for _ in range(3):
        g(torch.tensor([[1.0, 2.0]]))
    assert g.summed.tolist() == [[3.0, 6.0]]


def test_build_from_config_and_errors():
    g = NeuronModel.build({"type": "lif", "n": 4, "thresh": -50}, key="model.network.groups.Ae", dt=0.5)
    assert isinstance(g, LIFNodes) and g.thresh == -50.0 and g.decay == pytest.approx(math.exp(-0.5 / 100))
    with pytest.raises(ConfigError) as e:
        NeuronModel.build({"type": "lfi", "n": 4}, key="model.network.groups.Ae")
    assert e.value.key == "model.network.groups.Ae.type"
    assert "Did you mean 'lif'" in str(e.value) and "diehl_cook" in str(e.value)
    with pytest.raises(ConfigError) as e:
        NeuronModel.build({"type": "lif", "n": 4, "tresh": -50}, key="g")
    assert e.value.key == "g.tresh" and "Did you mean 'thresh'" in str(e.value)
