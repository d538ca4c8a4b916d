"""The STDP family on hand-built spike pairs: sign, magnitude, bounds, traces, integer and conv forms."""

import math

import pytest
import torch
import torch.nn.functional as F

from snnrun.components.connections import Connection
from snnrun.errors import ConfigError
from snnrun.components.learning import LearningRule
from snnrun.engine.network import build_network
from snnrun.components.neurons import Input

TAU = 20.0


def make(rule, w0=0.5, nu=(1e-2, 1e-1), wmin=None, wmax=None, batch=1, traces=True, **kw):
    pre, post = Input(1, traces=traces, tc_trace=TAU), Input(1, traces=traces, tc_trace=TAU)
    conn = Connection.build({"type": "dense", "source": "pre", "target": "post", "init": w0,
                             "wmin": wmin, "wmax": wmax}, source_shape=(1,), target_shape=(1,))
    r = LearningRule.build({"type": rule, "nu": list(nu), **kw}, key="L", connection=conn, source=pre, target=post)
    for g in (pre, post):
        g.reset_state(batch)
    r.reset_state(batch)
    return pre, post, conn, r


def play(pre, post, rule, pre_times, post_times, steps, batch=1):
    for t in range(steps):
        pre(torch.full((batch, 1), float(t in pre_times)))
        post(torch.full((batch, 1), float(t in post_times)))
        rule.step()


def trace(*ages):
    return sum(math.exp(-a / TAU) for a in ages)


# -- weight_dependent_post_pre (soft bounds) -------------------------------------------------------
@pytest.mark.parametrize("delta", [1, 5, 20])
def test_weight_dependent_post_pre(delta):
    pre, post, conn, r = make("weight_dependent_post_pre", w0=0.3, wmin=0.0, wmax=1.0)
    play(pre, post, r, {0}, {delta}, delta + 1)
    assert conn.w.item() == pytest.approx(0.3 + 0.1 * trace(delta) * (1.0 - 0.3), rel=1e-6)
    pre, post, conn, r = make("weight_dependent_post_pre", w0=0.3, wmin=0.0, wmax=1.0)
    play(pre, post, r, {delta}, {0}, delta + 1)
    assert conn.w.item() == pytest.approx(0.3 - 0.01 * trace(delta) * (0.3 - 0.0), rel=1e-6)


def test_soft_bounds_approach_but_never_cross():
    pre, post, conn, r = make("weight_dependent_post_pre", w0=0.5, nu=(0.0, 0.5), wmin=0.0, wmax=1.0)
    ws = []
    for _ in range(10):
        play(pre, post, r, {0}, {0}, 1)
        ws.append(conn.w.item())
    assert all(a < b for a, b in zip(ws, ws[1:])) and ws[-1] < 1.0
    # each pairing closes the same fraction of the gap: 1 - w_k = (1 - w0)(1 - nu)^k
    assert 1 - ws[9] == pytest.approx(0.5 * 0.5 ** 10, rel=1e-3)


def test_soft_bounds_need_finite_limits():
    with pytest.raises(ConfigError) as e:
        make("weight_dependent_post_pre", wmin=0.0)
    assert e.value.key == "L.bounds" and "wmax" in str(e.value)
    with pytest.raises(ConfigError, match="hard, soft"):
        make("hebbian", bounds="medium")


@pytest.mark.parametrize("rule", ["hebbian", "nearest_online_stdp", "full_online_stdp"])
def test_every_rule_takes_soft_bounds(rule):
    pre, post, conn, r = make(rule, w0=0.75, wmin=0.0, wmax=1.0, bounds="soft")
    play(pre, post, r, {0}, {3}, 4)
    assert conn.w.item() == pytest.approx(0.75 + 0.1 * trace(3) * 0.25, rel=1e-6)


# -- hebbian -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("delta", [2, 10])
def test_hebbian_potentiates_both_orders(delta):
    pre, post, conn, r = make("hebbian")
    play(pre, post, r, {0}, {delta}, delta + 1)
    assert conn.w.item() == pytest.approx(0.5 + 0.1 * trace(delta), rel=1e-6)
    pre, post, conn, r = make("hebbian")
    play(pre, post, r, {delta}, {0}, delta + 1)
    assert conn.w.item() == pytest.approx(0.5 + 0.01 * trace(delta), rel=1e-6)


def test_group_trace_rules_need_traces():
    with pytest.raises(ConfigError, match="traces: true"):
        make("hebbian", traces=False)


# -- SPAIC's online rules: own traces, nearest vs all pairs --------------------------------------------
def test_nearest_pairs_only_the_last_spike():
    pre, post, conn, r = make("nearest_online_stdp", traces=False)
    play(pre, post, r, {0, 2}, {5}, 6)
    assert conn.w.item() == pytest.approx(0.5 + 0.1 * trace(3), rel=1e-6)


def test_full_online_pairs_every_spike():
    pre, post, conn, r = make("full_online_stdp", traces=False)
    play(pre, post, r, {0, 2}, {5}, 6)
    assert conn.w.item() == pytest.approx(0.5 + 0.1 * trace(5, 3), rel=1e-6)
    pre, post, conn, r = make("full_online_stdp", traces=False)
    play(pre, post, r, {6}, {0, 4}, 7)  # depression: pre after two post spikes
    assert conn.w.item() == pytest.approx(0.5 - 0.01 * trace(6, 2), rel=1e-6)


def test_online_rules_default_to_spaic_rates_and_reset_per_presentation():
    pre, post, conn, r = make("nearest_online_stdp", traces=False, nu=(1e-4, 1e-2))
    play(pre, post, r, {0}, {1}, 2)
    assert conn.w.item() == pytest.approx(0.5 + 1e-2 * trace(1), rel=1e-6)
    r.reset_state(1)  # a new presentation: the earlier pre spike is forgotten
    before = conn.w.item()
    play(pre, post, r, set(), {0}, 1)
    assert conn.w.item() == before


def test_reset_happens_through_the_network():
    net = build_network({
        "groups": {"X": {"type": "input", "n": 1}, "Y": {"type": "input", "n": 1}},
        "connections": {"XY": {"type": "dense", "source": "X", "target": "Y", "init": 0.5}}}, dt=1.0, learner={"l": {"type": "full_online_stdp", "connection": "XY", "nu": [0.0, 0.1]}})
    net.train()
    net.run({"X": torch.tensor([[[1.0]], [[0.0]]]), "Y": torch.zeros(2, 1, 1)})
    w = net.connections["XY"].w.item()
    net.run({"X": torch.zeros(2, 1, 1), "Y": torch.tensor([[[1.0]], [[0.0]]])})
    assert net.connections["XY"].w.item() == w  # no pairing across presentations


@pytest.mark.parametrize("reduction,factor", [("sum", 3.0), ("mean", 1.0)])
def test_family_batch_reduction(reduction, factor):
    pre, post, conn, r = make("full_online_stdp", traces=False, batch=3, reduction=reduction)
    play(pre, post, r, {0}, {2}, 3, batch=3)
    assert conn.w.item() == pytest.approx(0.5 + factor * 0.1 * trace(2), rel=1e-6)


# -- post_pre_int: integer arithmetic (step by step at two dt: tests/test_spaic_rules.py) -------------------
def int_trace(age, trace_max=127, decay=31169):
    x = trace_max
    for _ in range(age):
        x = (decay * x) >> 15
    return x


@pytest.mark.parametrize("delta", [1, 3, 12])
def test_post_pre_int(delta):
    pre, post, conn, r = make("post_pre_int", traces=False, w0=0.25, nu=(0.004, 0.02), rounding="floor")
    assert r.trace_decay == 31169  # SPAIC's: floor(2^15 exp(-1 ms / 20 ms))
    play(pre, post, r, {0}, {delta}, delta + 1)
    dW = (20 * int_trace(delta)) // 127  # nu_post x scale = 20 steps per full trace
    assert conn.w.item() == pytest.approx((250 + dW) / 1000)
    assert round(conn.w.item() * 1000) == pytest.approx(conn.w.item() * 1000, abs=1e-4)  # on the grid
    pre, post, conn, r = make("post_pre_int", traces=False, w0=0.25, nu=(0.004, 0.02), rounding="floor")
    play(pre, post, r, {delta}, {0}, delta + 1)
    assert conn.w.item() == pytest.approx((250 - (4 * int_trace(delta)) // 127) / 1000)


def test_post_pre_int_bounds_and_options():
    pre, post, conn, r = make("post_pre_int", traces=False, w0=0.999, nu=(0.0, 0.5), wmax=1.0)
    play(pre, post, r, {0}, {0}, 1)
    assert conn.w.item() == 1.0
    with pytest.raises(ConfigError, match="hard bounds only"):
        make("post_pre_int", traces=False, bounds="soft", wmin=0.0, wmax=1.0)
    with pytest.raises(ConfigError) as e:
        make("post_pre_int", traces=False, reduction="mean")
    assert e.value.key == "L.reduction"


# -- conv2d connections and conv2d_stdp ----------------------------------------------------------------------
def conv(init=0.5, **kw):
    node = {"type": "conv2d", "source": "a", "target": "b", "kernel_size": 2, "init": init, **kw}
    return Connection.build(node, key="c", source_shape=(1, 3, 3), target_shape=(2, 2, 2))


def test_conv2d_connection():
    c = conv(init={"type": "uniform", "low": 0.0, "high": 1.0})
    s = (torch.rand(4, 9) < 0.5).float()
    assert torch.allclose(c(s), F.conv2d(s.view(4, 1, 3, 3), c.w))
    with pytest.raises(ConfigError) as e:
        Connection.build({"type": "conv2d", "source": "a", "target": "b", "kernel_size": 2}, key="c",
                         source_shape=(1, 3, 3), target_shape=(2, 3, 3))
    assert e.value.key == "c" and "needs n: [2, 2, 2]" in str(e.value)
    n = conv(init={"type": "uniform", "low": 0.0, "high": 1.0}, norm=2.0)
    assert torch.allclose(n.w.abs().sum((1, 2, 3)), torch.full((2,), 2.0))


def make_conv(nu=(1e-2, 1e-1), **kw):
    pre, post = Input([1, 3, 3]), Input([2, 2, 2])
    c = conv(**{k: v for k, v in kw.items() if k in ("wmin", "wmax")})
    r = LearningRule.build({"type": "conv2d_stdp", "nu": list(nu), **{k: v for k, v in kw.items()
                                                                        if k not in ("wmin", "wmax")}},
                           key="L", connection=c, source=pre, target=post)
    return pre, post, c, r


def test_conv2d_stdp_pair():
    pre, post, c, r = make_conv()
    for g in (pre, post, r):
        g.reset_state(1)
    for t in range(4):
        x = torch.zeros(1, 1, 3, 3)
        y = torch.zeros(1, 2, 2, 2)
        if t == 0:
            x[0, 0, 1, 1] = 1  # centre pixel
        if t == 3:
            y[0, 1, 0, 0] = 1  # channel 1, output (0, 0): its 2x2 patch holds the centre at (1, 1)
        pre(x)
        post(y)
        r.step()
    expected = torch.full_like(c.w, 0.5)
    expected[1, 0, 1, 1] += 0.1 * trace(3)
    assert torch.allclose(c.w, expected)


def test_conv2d_stdp_matches_brute_force():
    torch.manual_seed(0)
    pre, post, c, r = make_conv(nu=(0.03, 0.05))
    B, T = 2, 5
    S_pre = (torch.rand(T, B, 1, 3, 3) < 0.4).float()
    S_post = (torch.rand(T, B, 2, 2, 2) < 0.4).float()
    for g in (pre, post, r):
        g.reset_state(B)
    w0 = c.w.clone()
    xp, xq = torch.zeros(B, 1, 3, 3), torch.zeros(B, 2, 2, 2)
    dw = torch.zeros_like(c.w)
    d = math.exp(-1 / TAU)
    for t in range(T):
        xp = torch.where(S_pre[t] > 0, 1.0, xp * d)
        xq = torch.where(S_post[t] > 0, 1.0, xq * d)
        for b in range(B):
            for o in range(2):
                for i in range(2):
                    for j in range(2):
                        dw[o, 0] += 0.05 * S_post[t, b, o, i, j] * xp[b, 0, i:i + 2, j:j + 2]
                        dw[o, 0] -= 0.03 * xq[b, o, i, j] * S_pre[t, b, 0, i:i + 2, j:j + 2]
        pre(S_pre[t])
        post(S_post[t])
        r.step()
    assert torch.allclose(c.w, w0 + dw, atol=1e-6)


def test_conv2d_stdp_needs_a_conv_connection():
    pre, post, conn, _ = make("hebbian")
    with pytest.raises(ConfigError, match="conv2d connections"):
        LearningRule.build({"type": "conv2d_stdp"}, key="L", connection=conn, source=pre, target=post)
    with pytest.raises(ConfigError, match="dense connections"):
        make_conv_dense = conv()
        LearningRule.build({"type": "nearest_online_stdp"}, key="L", connection=make_conv_dense,
                           source=Input([1, 3, 3]), target=Input([2, 2, 2]))


def test_conv_stdp_network_runs_and_normalises():
    net = build_network({
        "groups": {"X": {"type": "input", "n": [1, 8, 8]}, "Y": {"type": "lif", "n": [4, 6, 6], "thresh": -64.0}},
        "connections": {"XY": {"type": "conv2d", "source": "X", "target": "Y", "kernel_size": 3,
                               "wmin": 0.0, "wmax": 1.0, "norm": 2.0}}}, dt=1.0, learner={"l": {"type": "conv2d_stdp", "connection": "XY", "nu": [1e-3, 1e-2]}})
    net.train()
    w0 = net.connections["XY"].w.clone()
    out = net.run({"X": (torch.rand(20, 3, 1, 8, 8) < 0.3).float()}, count=("Y",))
    assert out["counts"]["Y"].sum() > 0 and not torch.equal(net.connections["XY"].w, w0)
    assert torch.allclose(net.connections["XY"].w.sum((1, 2, 3)), torch.full((4,), 2.0), atol=1e-5)


def test_post_pre_takes_soft_bounds():
    for rule, extra in (("post_pre", {"bounds": "soft"}), ("weight_dependent_post_pre", {})):
        pre, post, conn, r = make(rule, w0=0.3, wmin=0.0, wmax=1.0, **extra)
        play(pre, post, r, {0, 6}, {4}, 7)  # potentiation at t=4, depression at t=6
        w = 0.3 + 0.1 * trace(4) * 0.7
        w = w - 0.01 * trace(2) * w
        assert conn.w.item() == pytest.approx(w, rel=1e-6), rule
    with pytest.raises(ConfigError) as e:
        make("post_pre", bounds="soft")
    assert e.value.key == "L.bounds"
