"""SPAIC's learning rules step by step against SPAIC's equations, written out here element by element
(spaic/Learning: RSTDP.py, Backprop_RSTDP.py, Conv_RSTDP.py, STDP_Learner.py's Meta_nearest_online_STDP
and PostPreInt, Rate_Modulation.py, STCA_Learner.py, STBP_Learner.py, Learner.py's optimiser names),
at dt = 1 and dt = 0.5, on fixed pre/post spike trains and rewards."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from snnrun.components.connections import Connection
from snnrun.components.learning import LearningRule
from snnrun.components.neurons import Input
from snnrun.components.neurons.trainable import TrainableNode
from snnrun.engine.network import build_network
from snnrun.errors import ConfigError

DTS = [1.0, 0.5]


def make(rule, n_pre=2, n_post=3, batch=2, dt=1.0, w0=None, wmin=None, wmax=None, **kw):
    pre, post = Input(n_pre, dt=dt), Input(n_post, dt=dt)
    init = w0 if w0 is not None else 0.5
    conn = Connection.build({"type": "dense", "source": "pre", "target": "post", "init": init,
                             "wmin": wmin, "wmax": wmax}, source_shape=(n_pre,), target_shape=(n_post,))
    if w0 is None:  # distinct weights, so per-neuron means differ
        with torch.no_grad():
            conn.w.copy_(torch.linspace(0.2, 0.8, n_pre * n_post).view(n_pre, n_post))
    r = LearningRule.build({"type": rule, **kw}, key="L", connection=conn, source=pre, target=post, dt=dt)
    for g in (pre, post, r):
        g.reset_state(batch)
    return pre, post, conn, r


def trains(T, batch, n, p, seed):
    """Fixed binary spike trains (T, batch, n)."""
    return (np.random.default_rng(seed).random((T, batch, n)) < p).astype(np.float64)


def drive(pre, post, rule, s_pre, s_post, rewards=None):
    """Step the rule through the trains; yields the weights (numpy, float64) after each step."""
    for t in range(s_pre.shape[0]):
        if rewards is not None:
            rule.reward = torch.as_tensor(rewards[t], dtype=torch.float32)
        pre(torch.tensor(s_pre[t], dtype=torch.float32))
        post(torch.tensor(s_post[t], dtype=torch.float32))
        rule.step()
        yield rule.connection.w.detach().double().numpy().copy()


# -- rstdp (SPAIC RSTDP.py) -----------------------------------------------------------------------------
@pytest.mark.parametrize("dt", DTS)
def test_rstdp_step_by_step(dt):
    T, B, npre, npost = 30, 2, 2, 3
    s_pre, s_post = trains(T, B, npre, 0.3, 1), trains(T, B, npost, 0.3, 2)
    rewards = np.random.default_rng(3).normal(size=(T,))
    pre, post, conn, r = make("rstdp", dt=dt, batch=B)
    assert r.lr == 0.1  # SPAIC's lr default
    w = conn.w.detach().double().numpy().copy()
    decay = math.exp(-dt / 20.0)
    p_plus, p_minus = np.zeros((B, npre)), np.zeros((B, npost))
    for t, got in enumerate(drive(pre, post, r, s_pre, s_post, rewards)):
        p_plus = p_plus * decay + 1.0 * s_pre[t]
        p_minus = p_minus * decay + (-1.0) * s_post[t]
        for i in range(npre):
            for j in range(npost):
                elig = sum(p_plus[b, i] * s_post[t, b, j] + s_pre[t, b, i] * p_minus[b, j] for b in range(B))
                w[i, j] += 0.1 * rewards[t] * elig
        np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)


def test_mstdp_keeps_its_own_default():
    assert make("mstdp")[3].lr == 0.01 and make("rstdp")[3].lr == 0.1


# -- bp_rstdp, bp_rstdpet (SPAIC Backprop_RSTDP.py) ------------------------------------------------------
def feedback_reference(n_post, n_r, gain, seed=0):
    if n_r == n_post:
        return np.eye(n_post)
    g = torch.Generator().manual_seed(seed)
    return np.clip(gain * torch.randn(n_post, n_r, generator=g).double().numpy(), -10.0, 10.0)


@pytest.mark.parametrize("dt", DTS)
@pytest.mark.parametrize("n_r", [3, 4])  # 3 = n_post: identity feedback; 4: SPAIC's random feedback
def test_bp_rstdp_step_by_step(dt, n_r):
    T, B, npre, npost = 25, 2, 2, 3
    s_pre, s_post = trains(T, B, npre, 0.35, 4), trains(T, B, npost, 0.35, 5)
    rewards = np.random.default_rng(6).normal(size=(T, B, n_r))
    pre, post, conn, r = make("bp_rstdp", dt=dt, batch=B)
    G = feedback_reference(npost, n_r, 0.2)
    w = conn.w.detach().double().numpy().copy()
    bp, bq = math.exp(-dt / 5.0), math.exp(-dt / 12.0)
    x_pre, x_post = np.zeros((B, npre)), np.zeros((B, npost))
    for t, got in enumerate(drive(pre, post, r, s_pre, s_post, rewards)):
        x_pre = bp * x_pre + (1 - bp) * s_pre[t]
        x_post = bq * x_post + (1 - bq) * s_post[t]
        rho = rewards[t] @ G.T  # (B, n_post)
        for i in range(npre):
            for j in range(npost):
                E = np.mean([1.0 * x_pre[b, i] * s_post[t, b, j] - 0.4 * s_pre[t, b, i] * x_post[b, j] for b in range(B)])
                H = np.mean([x_pre[b, i] * (x_post[b, j] - 0.1) for b in range(B)])
                w[i, j] += 0.1 * rho[:, j].mean() * E - 0.01 * H
        np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r.feedback.double().numpy(), G, atol=1e-6)


@pytest.mark.parametrize("dt", DTS)
def test_bp_rstdpet_step_by_step(dt):
    T, B, npre, npost, n_r = 25, 2, 2, 3, 2
    s_pre, s_post = trains(T, B, npre, 0.35, 7), trains(T, B, npost, 0.35, 8)
    rewards = np.random.default_rng(9).normal(size=(T, B, n_r))
    pre, post, conn, r = make("bp_rstdpet", dt=dt, batch=B)
    G = feedback_reference(npost, n_r, 1.0)
    w = conn.w.detach().double().numpy().copy()
    bp, bq, be = math.exp(-dt / 4.0), math.exp(-dt / 10.0), math.exp(-dt / 5.0)
    x_pre, x_post, e = np.zeros((B, npre)), np.zeros((B, npost)), np.zeros((npre, npost))
    for t, got in enumerate(drive(pre, post, r, s_pre, s_post, rewards)):
        x_pre = bp * x_pre + (1 - bp) * s_pre[t]
        x_post = bq * x_post + (1 - bq) * s_post[t]
        rho = rewards[t] @ G.T
        for i in range(npre):
            for j in range(npost):
                e[i, j] = be * e[i, j] + np.mean([x_pre[b, i] * s_post[t, b, j] for b in range(B)])
                H = np.mean([s_pre[t, b, i] * x_post[b, j] * (x_post[b, j] - 0.2) for b in range(B)])
                w[i, j] += 0.1 * rho[:, j].mean() * e[i, j] - 0.01 * H
        np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)


def test_bp_rstdp_averages_over_the_batch_only():
    with pytest.raises(ConfigError) as e:
        make("bp_rstdpet", reduction="sum")
    assert e.value.key == "L.reduction" and "mean" in str(e.value)


def test_bp_rstdp_one_reward_per_sample_reaches_every_neuron_and_none_skips():
    pre, post, conn, r = make("bp_rstdp", batch=1)
    steps = list(drive(pre, post, r, np.ones((2, 1, 2)), np.ones((2, 1, 3)), [[1.0], [1.0]]))
    assert r.feedback.shape == (3, 1) and bool((r.feedback == 1).all()) and not np.allclose(steps[0], steps[1])
    pre, post, conn, r = make("bp_rstdp", batch=1)
    before = conn.w.clone()
    list(drive(pre, post, r, np.ones((3, 1, 2)), np.ones((3, 1, 3)), None))  # external reward never set
    assert torch.equal(conn.w, before)


# -- conv2d_rstdp (SPAIC Conv_RSTDP.py) -----------------------------------------------------------------
@pytest.mark.parametrize("dt", DTS)
def test_conv2d_rstdp_step_by_step(dt):
    T, B, C, O, k, stride, pad = 12, 2, 2, 2, 2, 1, 1
    H = 3
    Ho = (H + 2 * pad - k) // stride + 1
    conn = Connection.build({"type": "conv2d", "source": "a", "target": "b", "kernel_size": k, "stride": stride,
                             "padding": pad, "init": 0.3}, key="c", source_shape=(C, H, H), target_shape=(O, Ho, Ho))
    pre, post = Input([C, H, H], dt=dt), Input([O, Ho, Ho], dt=dt)
    r = LearningRule.build({"type": "conv2d_rstdp"}, key="L", connection=conn, source=pre, target=post, dt=dt)
    for g in (pre, post, r):
        g.reset_state(B)
    rng = np.random.default_rng(10)
    s_pre = (rng.random((T, B, C, H, H)) < 0.3).astype(np.float64)
    s_post = (rng.random((T, B, O, Ho, Ho)) < 0.3).astype(np.float64)
    rewards = rng.normal(size=(T, B))
    w = conn.w.detach().double().numpy().copy()
    decay = math.exp(-dt / 20.0)
    p_plus, p_minus = np.zeros_like(s_pre[0]), np.zeros_like(s_post[0])

    def padded(a):
        return np.pad(a, ((0, 0), (0, 0), (pad, pad), (pad, pad)))

    for t in range(T):
        r.reward = torch.tensor(rewards[t], dtype=torch.float32)
        pre(torch.tensor(s_pre[t], dtype=torch.float32))
        post(torch.tensor(s_post[t], dtype=torch.float32))
        r.step()
        p_plus = p_plus * decay + s_pre[t]
        p_minus = p_minus * decay - s_post[t]
        pp, sp = padded(p_plus), padded(s_pre[t])
        for b in range(B):
            for o in range(O):
                for c in range(C):
                    for u in range(k):
                        for v in range(k):
                            z = 0.0
                            for y in range(Ho):
                                for x in range(Ho):
                                    z += s_post[t, b, o, y, x] * pp[b, c, y * stride + u, x * stride + v]
                                    z += p_minus[b, o, y, x] * sp[b, c, y * stride + u, x * stride + v]
                            w[o, c, u, v] += 0.1 * rewards[t, b] * z
        np.testing.assert_allclose(conn.w.detach().double().numpy(), w, rtol=1e-5, atol=1e-5)


def test_conv2d_rstdp_needs_a_conv_connection_and_a_reward_per_sample():
    with pytest.raises(ConfigError, match="4-D kernel"):
        make("conv2d_rstdp")
    conn = Connection.build({"type": "conv2d", "source": "a", "target": "b", "kernel_size": 2}, key="c",
                            source_shape=(1, 3, 3), target_shape=(1, 2, 2))
    pre, post = Input([1, 3, 3]), Input([1, 2, 2])
    r = LearningRule.build({"type": "conv2d_rstdp"}, key="L", connection=conn, source=pre, target=post)
    for g in (pre, post, r):
        g.reset_state(1)
    r.reward = torch.ones(1, 4)
    pre(torch.ones(1, 1, 3, 3))
    post(torch.ones(1, 1, 2, 2))
    with pytest.raises(ConfigError, match="one reward per sample") as e:
        r.step()
    assert e.value.key == "reward"


# -- meta_nearest_online_stdp (SPAIC STDP_Learner.py) ----------------------------------------------------
@pytest.mark.parametrize("dt", DTS)
def test_meta_nearest_online_stdp_step_by_step(dt):
    T, B, npre, npost = 40, 2, 3, 4
    s_pre, s_post = trains(T, B, npre, 0.3, 11), trains(T, B, npost, 0.25, 12)
    pre, post, conn, r = make("meta_nearest_online_stdp", n_pre=npre, n_post=npost, batch=B, dt=dt,
                              nu=[1e-3, 5e-2])
    a_pre, a_post = 1e-3, 5e-2
    w = conn.w.detach().double().numpy().copy()
    m = w.mean(0).copy()  # SPAIC's w_mean: mean of each postsynaptic neuron's incoming weights
    m0 = m.mean()
    dpre, dpost = math.exp(-dt / 30.0), math.exp(-dt / 200.0)
    x_pre, x_post = np.zeros((B, npre)), np.zeros((B, npost))
    half = T // 2
    for t, got in enumerate(drive(pre, post, r, s_pre[:half], s_post[:half])):
        pass
    r.reset_state(B)  # a new presentation: x_pre restarts, x_post and the means carry on
    pre.reset_state(B)
    post.reset_state(B)
    for t in range(T):
        if t == half:
            x_pre = np.zeros((B, npre))
        x_pre = dpre * x_pre * (s_pre[t] <= 0) + s_pre[t]
        x_post = dpost * x_post * (s_post[t] <= 0) + s_post[t]
        dw = np.zeros((npre, npost))
        for i in range(npre):
            for j in range(npost):
                dw[i, j] = a_post * sum(x_pre[b, i] * s_post[t, b, j] for b in range(B)) \
                    - a_pre * sum(s_pre[t, b, i] * x_post[b, j] for b in range(B))
        for _ in range(2):
            m = m - 0.1 * a_pre * (x_post.mean(0) - x_post.mean())
            m = m * m0 / m.mean()
        col_mean = w.mean(0)
        for i in range(npre):
            for j in range(npost):
                soft = (dw[i, j] < 0) * math.exp(-0.2 / max(w[i, j] - 0.0, 1e-4)) \
                    + (dw[i, j] > 0) * math.exp(-0.2 / max(1.0 - w[i, j], 1e-4))
                w[i, j] = w[i, j] * m[j] / max(col_mean[j], 1e-6) + dw[i, j] * soft
        if t == half - 1:
            np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)
    got = list(drive(pre, post, r, s_pre[half:], s_post[half:]))[-1]
    np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r.mean_target.double().numpy(), m, rtol=1e-5)


def test_meta_nearest_online_stdp_state_outlives_a_checkpoint():
    """Two presentations in a row equal one, a checkpoint of the rule's state, and the second in a
    fresh rule (x_post and the target means carry over, as in one run)."""
    s_pre, s_post = trains(10, 1, 2, 0.4, 17), trains(10, 1, 3, 0.4, 18)

    def presentation(pre, post, r, sl):
        for g in (pre, post, r):
            g.reset_state(1)
        return list(drive(pre, post, r, s_pre[sl], s_post[sl]))[-1]

    pre, post, conn, r = make("meta_nearest_online_stdp", batch=1, nu=[1e-2, 1e-1])
    presentation(pre, post, r, slice(0, 5))
    state, w = r.state_dict(), conn.w.clone()
    assert set(state) == {"mean_target", "mean_of_means", "x_post"} and float(state["x_post"].abs().sum()) > 0
    straight = presentation(pre, post, r, slice(5, 10))
    pre, post, conn2, r2 = make("meta_nearest_online_stdp", batch=1, nu=[1e-2, 1e-1])
    with torch.no_grad():
        conn2.w.copy_(w)
    r2.load_state_dict(state)
    np.testing.assert_allclose(presentation(pre, post, r2, slice(5, 10)), straight, rtol=1e-6)


def test_meta_nearest_online_stdp_each_step():
    """The same, comparing after every single step of one presentation (dt = 1)."""
    T, B, npre, npost = 15, 1, 2, 2
    s_pre, s_post = trains(T, B, npre, 0.4, 13), trains(T, B, npost, 0.4, 14)
    pre, post, conn, r = make("meta_nearest_online_stdp", n_pre=npre, n_post=npost, batch=B, nu=[1e-2, 1e-1])
    w = conn.w.detach().double().numpy().copy()
    m = w.mean(0).copy()
    m0 = m.mean()
    x_pre, x_post = np.zeros((B, npre)), np.zeros((B, npost))
    for t, got in enumerate(drive(pre, post, r, s_pre, s_post)):
        x_pre = math.exp(-1 / 30) * x_pre * (s_pre[t] <= 0) + s_pre[t]
        x_post = math.exp(-1 / 200) * x_post * (s_post[t] <= 0) + s_post[t]
        dw = 1e-1 * x_pre[0][:, None] * s_post[t, 0][None, :] - 1e-2 * s_pre[t, 0][:, None] * x_post[0][None, :]
        for _ in range(2):
            m = m - 0.1 * 1e-2 * (x_post.mean(0) - x_post.mean())
            m = m * m0 / m.mean()
        soft = (dw < 0) * np.exp(-0.2 / np.maximum(w, 1e-4)) + (dw > 0) * np.exp(-0.2 / np.maximum(1 - w, 1e-4))
        w = w * m / np.maximum(w.mean(0), 1e-6) + dw * soft
        np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)


# -- post_pre_int (SPAIC PostPreInt) -------------------------------------------------------------------
def int_trace_step(x, spike, decay, trace_max=127):
    return trace_max if spike else (decay * x) >> 15


@pytest.mark.parametrize("dt", DTS)
def test_post_pre_int_floor_step_by_step(dt):
    decay = math.floor(2 ** 15 * math.exp(-dt / 20.0))
    if dt == 1.0:
        assert decay == 31169  # SPAIC's trace_decay (with shift_spike_trace 15): exp(-1/20) to 3e-5
    T, B, npre, npost = 30, 2, 2, 3
    s_pre, s_post = trains(T, B, npre, 0.3, 15), trains(T, B, npost, 0.3, 16)
    pre, post, conn, r = make("post_pre_int", n_pre=npre, n_post=npost, batch=B, dt=dt, w0=0.5, wmin=0.0,
                              wmax=1.0, nu=[0.004, 0.02], rounding="floor")
    assert r.trace_decay == decay
    W = np.full((npre, npost), 500)
    X_pre, X_post = np.zeros((B, npre), dtype=np.int64), np.zeros((B, npost), dtype=np.int64)
    for t, got in enumerate(drive(pre, post, r, s_pre, s_post)):
        for b in range(B):
            X_pre[b] = [int_trace_step(int(X_pre[b, i]), s_pre[t, b, i], decay) for i in range(npre)]
            X_post[b] = [int_trace_step(int(X_post[b, j]), s_post[t, b, j], decay) for j in range(npost)]
        for i in range(npre):
            for j in range(npost):
                P = 0.02 * 1000 * sum(X_pre[b, i] * s_post[t, b, j] for b in range(B)) / 127
                D = 0.004 * 1000 * sum(s_pre[t, b, i] * X_post[b, j] for b in range(B)) / 127
                W[i, j] = min(max(W[i, j] + math.floor(P + 1e-9) - math.floor(D + 1e-9), 0), 1000)
        np.testing.assert_allclose(got * 1000, W, atol=1e-3)


def test_post_pre_int_stochastic_rounding_learns_sub_step_updates():
    """The default nu_pre = 1e-4 at scale 1000 is 0.1 weight step per pairing: floored it is 0, stochastically
    rounded it is 0 or 1 with mean 0.1 x trace / 127."""
    n_post = 4000
    pre, post, conn, r = make("post_pre_int", n_pre=1, n_post=n_post, batch=1, w0=0.5)
    assert r.rounding == "stochastic" and r.nu == [1e-4, 1e-2]
    # post spikes at t = 0, pre at t = 3: depression with X_post = trace after 3 decays
    got = list(drive(pre, post, r, np.array([[[0.0]], [[0.0]], [[0.0]], [[1.0]]]),
                     np.concatenate([np.ones((1, 1, n_post)), np.zeros((3, 1, n_post))])))
    X = 127
    for _ in range(3):
        X = (31169 * X) >> 15
    expected = 1e-4 * 1000 * X / 127  # weight steps, in (0, 1)
    dW = np.round((0.5 - got[-1][0]) * 1000)
    assert set(np.unique(dW)) <= {0.0, 1.0}
    assert abs(dW.mean() - expected) < 4 * math.sqrt(expected * (1 - expected) / n_post)
    # potentiation from the pre spike's trace: 1e-2 x 1000 x X / 127 = about 8.6 steps, rounded down or up
    pre, post, conn, r = make("post_pre_int", n_pre=1, n_post=n_post, batch=1, w0=0.5)
    got = list(drive(pre, post, r, np.array([[[1.0]], [[0.0]], [[0.0]], [[0.0]]]),
                     np.concatenate([np.zeros((3, 1, n_post)), np.ones((1, 1, n_post))])))
    up = 1e-2 * 1000 * X / 127
    dW = np.round((got[-1][0] - 0.5) * 1000)
    assert set(np.unique(dW)) <= {math.floor(up), math.floor(up) + 1}
    assert abs(dW.mean() - up) < 0.05


def test_post_pre_int_refuses_floor_rounding_that_learns_nothing():
    with pytest.raises(ConfigError) as e:
        make("post_pre_int", rounding="floor")  # default nu_pre 1e-4 x scale 1000 = 0.1 step
    assert e.value.key == "L.nu" and "rounding: stochastic" in str(e.value)
    with pytest.raises(ConfigError) as e:
        make("post_pre_int", rounding="nearest")
    assert e.value.key == "L.rounding"
    with pytest.raises(ConfigError) as e:
        make("post_pre_int", trace_decay=40000)
    assert e.value.key == "L.trace_decay"


def test_post_pre_int_draws_are_checkpointed():
    pre, post, conn, r = make("post_pre_int", n_pre=1, n_post=50, batch=1, w0=0.5)
    list(drive(pre, post, r, np.ones((3, 1, 1)), np.ones((3, 1, 50))))
    state = r.state_dict()
    assert state == {"draws": 3}
    w = conn.w.clone()
    nxt = list(drive(pre, post, r, np.ones((1, 1, 1)), np.ones((1, 1, 50))))[-1]
    pre, post, conn2, r2 = make("post_pre_int", n_pre=1, n_post=50, batch=1, w0=0.5)
    with torch.no_grad():
        conn2.w.copy_(w)
    r2.load_state_dict(state)
    for _ in range(3):  # the same traces as r at its fourth step
        pre(torch.ones(1, 1))
        post(torch.ones(1, 50))
        r2.spikes_and_traces()
    with torch.no_grad():
        conn2.w.copy_(w)
    again = list(drive(pre, post, r2, np.ones((1, 1, 1)), np.ones((1, 1, 50))))[-1]
    np.testing.assert_array_equal(again, nxt)


# -- stca, stbp: SPAIC's firing functions on every trainable node -------------------------------------
STBP = lambda x, a=0.5: torch.exp(-x ** 2 / (2 * a)) / (2 * math.pi * a)  # noqa: E731
STCA = lambda x, a=0.5: (x.abs() < a).double()  # noqa: E731


@pytest.mark.parametrize("dt", DTS)
@pytest.mark.parametrize("rule,formula", [("stca", STCA), ("stbp", STBP)])
def test_gradient_learners_apply_their_own_surrogate_and_fire_strictly(rule, formula, dt):
    """One LIF step from v = 0 (decay_input: true, k = dt / tau): v = k x, s = H(v - 1); ds/dx = k g'(k x - 1)
    whatever the node's own surrogate was, and v exactly at threshold does not fire (SPAIC: input.gt(thresh))."""
    net = build_network({"groups": {"X": {"type": "input", "n": 1},
                                    "Y": {"type": "surrogate_lif", "n": 1, "tau": 4.0, "surrogate": "atan"}},
                         "connections": {"XY": {"type": "dense", "source": "X", "target": "Y", "init": 1.0}},
                         "delay": 0}, dt=dt, learner={"type": rule, "optimizer": {"type": "SGD", "lr": 0.1}})
    learner = LearningRule.registry.build({"type": rule}, key="model.learner")
    learner.configure(net, epochs=1, steps_per_epoch=1)
    nodes = [m for m in net.modules() if isinstance(m, TrainableNode)]
    assert nodes and all(type(n.surrogate).__name__ == {"stca": "STCARect", "stbp": "STBPGaussian"}[rule]
                         for n in nodes)
    y = net.groups["Y"]
    k = dt / 4.0
    x = torch.linspace(0.0, 2.0 / k, 81, dtype=torch.float64)
    x[40] = 1.0 / k  # exactly at threshold
    x = x.view(-1, 1).requires_grad_()
    y.reset_state(81)
    y.v = y.v.double()
    s = y(x)
    s.sum().backward()
    xv = x.detach().view(-1)
    assert s.detach().view(-1).tolist() == (k * xv > 1.0).double().tolist() and s[40].item() == 0.0
    assert torch.allclose(x.grad.view(-1), k * formula(k * xv - 1.0), atol=1e-12)


def test_stbp_is_its_own_learner_not_an_alias():
    assert LearningRule.registry.get("stbp") is not LearningRule.registry.get("surrogate_bptt")
    assert LearningRule.registry.build({"type": "stbp"}).surrogate.alpha == 0.5


# -- SPAIC's optimiser and schedule names ----------------------------------------------------------------
def test_spaic_optimiser_and_schedule_names():
    from snnrun.components.learning.gradient import SPAIC_OPTIMIZERS, SPAIC_SCHEDULERS

    model = torch.nn.Linear(3, 2)
    for name in SPAIC_OPTIMIZERS:
        if name in ("LBFGS", "SparseAdam"):
            with pytest.raises(ConfigError) as e:
                LearningRule.registry.build({"type": "stca", "optimizer": {"type": name, "lr": 0.1}},
                                            key="model.learner")
            assert e.value.key == "model.learner.optimizer.type"
            continue
        lr = LearningRule.registry.build({"type": "stca", "optimizer": {"type": name, "lr": 0.1}}, key="model.learner")
        lr.configure(model, epochs=2, steps_per_epoch=1)
        assert type(lr.optimizer) is getattr(torch.optim, {"Rpop": "Rprop"}.get(name, name))
    options = {"StepLR": {"step_size": 1}, "MultiStepLR": {"milestones": [1]}, "ExponentialLR": {"gamma": 0.5},
               "CyclicLR": {"base_lr": 0.01, "max_lr": 0.1}, "CosineAnnealingWarmRestarts": {"T_0": 2}}
    for name in SPAIC_SCHEDULERS:
        if name == "LambdaLR":  # takes a Python function: not from YAML
            continue
        lr = LearningRule.registry.build({"type": "stbp", "optimizer": {"type": "SGD", "lr": 0.1},
                                          "scheduler": {"type": name, **options.get(name, {})}}, key="model.learner")
        lr.configure(model, epochs=2, steps_per_epoch=1)
        assert type(lr.scheduler).__name__ == name
    with pytest.raises(ConfigError) as e:
        LearningRule.registry.build({"type": "stca", "optimizer": {"type": "Rpopp"}}, key="model.learner")
    assert e.value.key == "model.learner.optimizer.type" and "Did you mean 'Rpop'" in str(e.value)
    with pytest.raises(ConfigError) as e:
        LearningRule.registry.build({"type": "stca", "scheduler": {"type": "StepLr"}}, key="model.learner")
    assert e.value.key == "model.learner.scheduler.type" and "Did you mean 'StepLR'" in str(e.value)


# -- rate_modulate (SPAIC Rate_Modulation.py) ------------------------------------------------------------
def rate_net(dt, extra=None):
    """X -> H -> Y of trainable LIF nodes; with ``extra``, the learners {bp: surrogate_bptt, rate: extra}."""
    torch.manual_seed(0)
    learner = None
    if extra:
        learner = {"bp": {"type": "surrogate_bptt"}, "rate": extra}
    net = build_network({"groups": {"X": {"type": "input", "n": 4},
                                    "H": {"type": "surrogate_lif", "n": 6, "tau": 2.0},
                                    "Y": {"type": "surrogate_lif", "n": 3, "tau": 2.0}},
                         "connections": {"XH": {"type": "dense", "source": "X", "target": "H", "init": "fan_in"},
                                         "HY": {"type": "dense", "source": "H", "target": "Y", "init": "fan_in"}},
                         "delay": 0}, dt=dt, learner=learner)
    return net


@pytest.mark.parametrize("dt", DTS)
def test_rate_modulate_adds_alpha_norm_of_count_error_to_the_loss(dt):
    from snnrun.engine.learners import build_learners

    x = (torch.rand(8, 5, 4, generator=torch.Generator().manual_seed(1)) < 0.6).float()  # (T, B, n)
    y = torch.tensor([0, 1, 2, 0, 1])
    m_r, alpha = 2.0, 0.05
    spec = {"type": "rate_modulate", "connection": "XH", "m_r": m_r, "alpha": alpha}
    updates, extra_losses = [], []
    for extra in (None, spec):
        net = rate_net(dt)
        learners = build_learners({"bp": {"type": "surrogate_bptt", "optimizer": {"type": "SGD", "lr": 1.0}},
                                   **({"rate": extra} if extra else {})}, net, dt)
        grad = learners["bp"]
        grad.configure(net, epochs=1, steps_per_epoch=1)
        net.train()
        w0 = net.connections["XH"].w.detach().clone()
        counts = {}

        def forward():
            out = net({"X": x}, count=("Y", "H"), record=("Y",))
            counts.update(out["counts"])
            return {"out": out["spikes"]["Y"]}

        loss, _ = grad.train_step(forward, y, torch.device("cpu"))
        updates.append(net.connections["XH"].w.detach() - w0)
        if extra:
            rule = learners["rate"]
            n = counts["H"].detach()
            assert torch.allclose(rule.counts.detach(), n)  # the rule counted the target's spikes
            extra_losses.append(float(rule.extra_loss().detach()))
            assert extra_losses[0] == pytest.approx(alpha * float(((n - m_r) ** 2).sum().sqrt()), rel=1e-6)
            # the connection stays trained by the gradient learner
            assert net.connections["XH"].w.requires_grad
    # the reference: the same network, the same forward, grad of alpha ||n - m_r|| alone (SGD lr 1)
    net = rate_net(dt)
    build_learners({"bp": {"type": "surrogate_bptt"}}, net, dt)
    net.train()
    out = net({"X": x}, count=("H",))
    penalty = alpha * torch.linalg.vector_norm(out["counts"]["H"] - m_r)
    (g,) = torch.autograd.grad(penalty, net.connections["XH"].w)
    assert penalty.item() == pytest.approx(extra_losses[0], rel=1e-6)
    assert g.abs().max() > 0
    torch.testing.assert_close(updates[1] - updates[0], -g, rtol=1e-4, atol=1e-6)


def test_rate_modulate_errors():
    with pytest.raises(ConfigError) as e:
        rate_net(1.0, {"type": "rate_modulate", "connection": "XH"})
    assert e.value.key == "model.learner.rate.m_r"
    with pytest.raises(ConfigError) as e:
        rate_net(1.0, {"type": "rate_modulate", "connection": "XH", "m_r": [1.0, 2.0]})
    assert e.value.key == "model.learner.rate.m_r" and "6" in str(e.value)
    net_node = {"groups": {"X": {"type": "input", "n": 2}, "Y": {"type": "surrogate_lif", "n": 2}},
                "connections": {"XY": {"type": "dense", "source": "X", "target": "Y"}}}
    with pytest.raises(ConfigError) as e:
        build_network(net_node, dt=1.0, learner={"type": "rate_modulate", "connection": "XY", "m_r": 1.0})
    assert e.value.key == "model.learner" and "gradient learner" in str(e.value)


# -- each rule from YAML in a real model: a tiny training run on digits -----------------------------------
MSTDP_DIGITS = ("+model=mstdp_digits", "model.time=20", "model.per_class=2")
NO_MSTDP_KEYS = ("~model.learner.tc_plus", "~model.learner.tc_minus", "~model.learner.tc_e_trace")
DIGITS_RUNS = {  # rule -> (overrides, the connection it changes)
    "rstdp": ((*MSTDP_DIGITS, "model.learner.type=rstdp", "~model.learner.tc_e_trace"), "X_Y"),
    "bp_rstdp": ((*MSTDP_DIGITS, "model.learner.type=bp_rstdp", *NO_MSTDP_KEYS), "X_Y"),
    "bp_rstdpet": ((*MSTDP_DIGITS, "model.learner.type=bp_rstdpet", *NO_MSTDP_KEYS), "X_Y"),
    "meta_nearest_online_stdp": ((*MSTDP_DIGITS, "model.learner.type=meta_nearest_online_stdp", *NO_MSTDP_KEYS,
                                  "~model.learner.reward", "model.learner.nu=[0.001,0.01]"), "X_Y"),
    "conv2d_rstdp": (("+model=conv_stdp", "model.time=20", "model.channels=2", "learner@model.learner=conv2d_rstdp"),
                     "X_F"),
    "post_pre_int": (("+model=diehl_cook", "model.n_neurons=10", "model.time=20", "learner@model.learner=post_pre_int",
                      "model.learner.connection=X_Ae", "model.learner.reduction=sum"), "X_Ae"),
    "rate_modulate": (("+model=stdp_features_readout", "model.n_neurons=8", "model.time=20",
                       "+learner@model.learner.rate=rate_modulate", "+model.learner.rate.connection=H_Y"), "H_Y"),
    "stca": (("+model=snn_mlp", "model.T=4", "model.hidden=16", "learner@model.learner=stca"), "fc1"),
    "stbp": (("+model=snn_mlp", "model.T=4", "model.hidden=16", "learner@model.learner=stbp",
              "model.learner.optimizer.type=Rpop"), "fc1"),
}
DIGITS = ("data=digits", "data.limit_train=40", "data.limit_test=20", "trainer.epochs=1", "logger=plain", "seed=0",
          "device=cpu")


@pytest.mark.parametrize("rule", sorted(DIGITS_RUNS))
def test_rule_trains_on_digits_from_yaml(rule, compose_cfg, tmp_path):
    from snnrun.engine.experiment import build_experiment
    from snnrun.engine.loop import train
    from snnrun.run.checkpoint import load_checkpoint

    overrides, conn = DIGITS_RUNS[rule]
    cfg = compose_cfg(*DIGITS, *overrides)
    exp = build_experiment(cfg)
    assert type(exp.learners[next(n for n, l in exp.learners.items()
                                  if type(l) is LearningRule.registry.get(rule))]) is LearningRule.registry.get(rule)
    before = {k: v.detach().clone() for k, v in exp.network.state_dict().items() if k.startswith(f"connections.{conn}.")}
    summary = train(cfg, tmp_path)
    after = load_checkpoint(tmp_path, fallback=False)["network"]
    assert 0.0 <= summary["test_accuracy"] <= 1.0 and summary["n_test"] == 20
    assert any(not torch.allclose(before[k].float(), after[k].float(), atol=1e-7) for k in before), \
        f"{rule} did not change {conn}"


@pytest.mark.slow
def test_bp_rstdp_hidden_layer_reads_the_readout_reward_through_the_cli(tmp_path, cli_env):
    """bp_rstdp on a hidden layer fed the readout's class reward (label_match with group), from the command line."""
    from tests.conftest import run_cli

    args = ["train", *DIGITS, "+model=mstdp_digits", "model.time=20", "model.per_class=1",
            "model.learner.type=bp_rstdp", *NO_MSTDP_KEYS, "model.learner.reward.scope=neuron",
            "+model.learner.reward.group=Y", "model.learner.reward.hit=1.0", f"hydra.run.dir={tmp_path / 'run'}"]
    out = run_cli(args, cli_env, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    bad = run_cli([*args[:-1], "model.learner.reward.group=Nope", f"hydra.run.dir={tmp_path / 'bad'}"], cli_env, tmp_path)
    assert bad.returncode == 2 and "model.learner.reward.group" in bad.stderr + bad.stdout
    assert not (tmp_path / "bad").exists()
