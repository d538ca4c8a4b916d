"""Encoders and generators against their definitions."""

import math

import pytest
import torch

from snnrun.components.encoders import Encoder
from snnrun.components.generators import Generator


def enc(node, **kw):
    return Encoder.build({**node, **kw})


def test_bernoulli_rate():
    torch.manual_seed(0)
    s = enc({"type": "bernoulli", "time": 1000, "max_prob": 0.5})(torch.tensor([[0.0, 0.2, 1.0]]).repeat(20, 1))
    assert s.float().mean((0, 1)).tolist() == pytest.approx([0.0, 0.1, 0.5], abs=0.01)


def test_latency_orders_spike_times_by_intensity():
    x = torch.tensor([[1.0, 0.75, 0.5, 0.1, 0.0]])
    s = enc({"type": "latency", "time": 101})(x)
    assert s.sum(0).tolist() == [[1, 1, 1, 1, 0]]  # one spike each; zero stays silent
    t = s.float().argmax(0)[0, :4].tolist()
    assert t == [0, 25, 50, 90] and t == sorted(t)
    log = enc({"type": "latency", "time": 100, "method": "log", "threshold": 0.2, "tau": 5.0})(x)
    t_log = log.float().argmax(0)[0, :3].tolist()
    assert t_log == [round(5 * math.log(v / (v - 0.2))) for v in (1.0, 0.75, 0.5)]


def test_relative_latency_is_rank_order_per_sample():
    x = torch.tensor([[0.2, 0.3, 0.25], [0.9, 0.1, 0.5]])
    s = enc({"type": "rank_order", "time": 11})(x)
    t = s.float().argmax(0)
    assert t[0].tolist() == [10, 0, 5] and t[1].tolist() == [0, 10, 5]


def test_uniform_is_regular_with_exact_count():
    s = enc({"type": "uniform", "time": 100, "max_rate": 200})(torch.tensor([[0.25, 1.0]]))
    assert s.sum(0).tolist() == [[5, 20]]
    t = torch.nonzero(s[:, 0, 0]).flatten()
    assert set((t[1:] - t[:-1]).tolist()) == {20}


def test_constant_current_and_float():
    x = torch.tensor([[0.5, -1.0]])
    assert enc({"type": "constant_current", "time": 4, "amplitude": 3})(x).tolist() == [[[1.5, -3.0]]] * 4
    assert enc({"type": "float", "time": 3})(x).tolist() == [[[0.5, -1.0]]] * 3


def test_spike_times_to_binary():
    s = enc({"type": "single_spike_to_binary", "time": 10, "dt": 1})(torch.tensor([[3.0, -1.0, float("nan"), 9.0]]))
    assert s[:, 0].float().argmax(0).tolist()[0::3] == [3, 9] and s.sum().item() == 2


def test_generators():
    g = Generator.build({"type": "sin", "amplitude": 2.0, "freq": 50.0, "offset": 1.0}, time=20, dt=1)
    x = g(batch_size=2, shape=(3,))
    assert x.shape == (20, 2, 3)
    assert x[:, 0, 0].tolist() == pytest.approx([1 + 2 * math.sin(2 * math.pi * 50 * k / 1000) for k in range(20)], abs=1e-5)
    ramp = Generator.build({"type": "ramp", "start": 1.0, "stop": 3.0}, time=5, dt=1)(1, 1)
    assert ramp.flatten().tolist() == pytest.approx([1.0, 1.5, 2.0, 2.5, 3.0])
    step = Generator.build({"type": "step", "amplitude": 4, "onset": 2, "offset": 4}, time=6, dt=1)(1, 1)
    assert step.flatten().tolist() == [0, 0, 4, 4, 0, 0]
    assert Generator.build({"type": "constant", "amplitude": 2}, time=3, dt=1)(1, 1).flatten().tolist() == [2] * 3
    torch.manual_seed(0)
    p = Generator.build({"type": "poisson_generator", "rate": 50.0}, time=1000, dt=1)(batch_size=10, shape=(20,))
    assert p.mean().item() * 1000 == pytest.approx(50.0, abs=3.0)
