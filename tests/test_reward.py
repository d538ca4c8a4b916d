"""Reward-modulated rules (MSTDP, MSTDPET, reward-switch STDP), reward sources, the tempotron, and a
reward-only classifier that learns above chance."""

import math

import pytest
import torch

from snnrun.components.connections import Connection
from snnrun.errors import ConfigError
from snnrun.components.learning import LearningRule
from snnrun.components.learning.reward import LabelMatch, set_labels
from snnrun.engine.network import build_network
from snnrun.components.neurons import Input

TAU = 20.0


def make(rule, w0=0.5, n_pre=1, n_post=1, batch=1, **kw):
    pre, post = Input(n_pre), Input(n_post)
    conn = Connection.build({"type": "dense", "source": "pre", "target": "post", "init": w0},
                            source_shape=(n_pre,), target_shape=(n_post,))
    r = LearningRule.build({"type": rule, **kw}, key="L", connection=conn, source=pre, target=post)
    for g in (pre, post, r):
        g.reset_state(batch)
    return pre, post, conn, r


def step(pre, post, rule, s_pre, s_post, reward=None):
    rule.reward = None if reward is None else torch.as_tensor(reward, dtype=torch.float32)
    pre(torch.tensor(s_pre, dtype=torch.float32).reshape(1, -1))
    post(torch.tensor(s_post, dtype=torch.float32).reshape(1, -1))
    rule.step()


# -- MSTDP ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reward", [1.0, -0.5])
@pytest.mark.parametrize("delta", [1, 4])
def test_mstdp_pre_then_post_is_scaled_by_reward(reward, delta):
    pre, post, conn, r = make("mstdp", nu=0.1)
    for t in range(delta + 1):
        step(pre, post, r, [float(t == 0)], [float(t == delta)], reward)
    # zeta at the post spike: p_plus = a_plus exp(-delta / tc_plus); earlier steps have zeta = 0
    assert conn.w.item() == pytest.approx(0.5 + 0.1 * reward * math.exp(-delta / TAU), rel=1e-6)


def test_mstdp_post_then_pre_and_simultaneous():
    pre, post, conn, r = make("mstdp", nu=0.1)
    for t in range(4):
        step(pre, post, r, [float(t == 3)], [float(t == 0)], 1.0)
    # post at 0: zeta(0) = p_plus(0) s_post = 0 (no pre yet) + s_pre p_minus = 0; pre at 3: a_minus e^-3/tau
    assert conn.w.item() == pytest.approx(0.5 - 0.1 * math.exp(-3 / TAU), rel=1e-6)
    pre, post, conn, r = make("mstdp", nu=0.1)
    step(pre, post, r, [1.0], [1.0], 1.0)  # both traces include the current spikes: +1 - 1
    assert conn.w.item() == pytest.approx(0.5)


def test_mstdp_without_reward_does_not_learn():
    pre, post, conn, r = make("mstdp", nu=0.1)
    for t in range(3):
        step(pre, post, r, [float(t == 0)], [float(t == 2)], None)
    assert conn.w.item() == 0.5
    pre, post, conn, r = make("mstdp", nu=0.1)
    for t in range(3):
        step(pre, post, r, [float(t == 0)], [float(t == 2)], 0.0)
    assert conn.w.item() == 0.5


def test_per_neuron_reward():
    pre, post, conn, r = make("mstdp", nu=0.1, n_post=2)
    for t in range(3):
        step(pre, post, r, [float(t == 0)], [float(t == 2), float(t == 2)], [[1.0, -1.0]])
    d = 0.1 * math.exp(-2 / TAU)
    assert conn.w[0].tolist() == pytest.approx([0.5 + d, 0.5 - d])


# -- MSTDPET -------------------------------------------------------------------------------------------
def test_mstdpet_eligibility_trace_decays_as_specified():
    tc_e = 25.0
    pre, post, conn, r = make("mstdpet", nu=0.2, tc_e_trace=tc_e)
    step(pre, post, r, [1.0], [0.0])          # t=0: pre
    step(pre, post, r, [0.0], [1.0])          # t=1: post -> zeta = a_plus e^{-1/tc_plus}
    zeta = math.exp(-1 / TAU)
    z1 = zeta / tc_e
    assert r.z.item() == pytest.approx(z1, rel=1e-6)
    for k in range(1, 30):                    # no spikes, no reward: z decays exponentially
        step(pre, post, r, [0.0], [0.0])
        assert r.z.item() == pytest.approx(z1 * math.exp(-k / tc_e), rel=1e-5)
    assert conn.w.item() == 0.5               # nothing learned without reward
    # a delayed reward credits the pairing through the trace: dw = nu dt r z
    step(pre, post, r, [0.0], [0.0], 2.0)
    z = z1 * math.exp(-30 / tc_e)
    assert r.z.item() == pytest.approx(z, rel=1e-5)
    assert conn.w.item() == pytest.approx(0.5 + 0.2 * 1.0 * 2.0 * z, rel=1e-5)


def test_mstdpet_trace_resets_per_presentation_and_per_sample_rewards():
    pre, post, conn, r = make("mstdpet", nu=1.0, batch=2, n_post=1)
    rule_in = torch.tensor([[1.0], [1.0]])
    r.reward = None
    pre(rule_in)
    post(torch.zeros(2, 1))
    r.step()
    pre(torch.zeros(2, 1))
    post(rule_in)
    r.reward = torch.tensor([1.0, -1.0])  # one reward per sample: they cancel
    r.step()
    assert conn.w.item() == pytest.approx(0.5, abs=1e-7)
    r.reset_state(2)
    assert r.z is None and r.p_plus is None


# -- reward-switch STDP ----------------------------------------------------------------------------------
@pytest.mark.parametrize("reward,amp_post,amp_pre", [(1.0, 5e-3, -4e-3), (-1.0, -5e-3, 4e-3), (0.0, 0.0, 0.0)])
def test_reward_switch_stdp(reward, amp_post, amp_pre):
    pre, post, conn, r = make("reward_switch_stdp")
    for t in range(4):
        step(pre, post, r, [float(t == 0)], [float(t == 3)], reward)
    assert conn.w.item() == pytest.approx(0.5 + amp_post * math.exp(-3 / TAU), rel=1e-6)
    pre, post, conn, r = make("reward_switch_stdp")
    for t in range(4):
        step(pre, post, r, [float(t == 3)], [float(t == 0)], reward)
    assert conn.w.item() == pytest.approx(0.5 + amp_pre * math.exp(-3 / TAU), rel=1e-6)


# -- reward sources ------------------------------------------------------------------------------------
def test_label_match_rewards_the_label_population():
    src = LabelMatch(n_classes=2)
    pre, post, conn, r = make("mstdp", n_post=4, batch=2, reward={"type": "label_match", "n_classes": 2})
    r.labels = torch.tensor([1, 0])
    post(torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0]]))
    # neurons 0,1 -> class 0; 2,3 -> class 1
    assert r.reward_source(r).tolist() == [[-1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, -1.0]]
    assert src.classes(4, "cpu").tolist() == [0, 0, 1, 1]
    sample = LabelMatch(n_classes=2, scope="sample", hit=2.0, miss=-0.5)
    assert sample(r).tolist() == [[3.5], [1.5]]


def test_reward_source_errors():
    with pytest.raises(ConfigError) as e:
        make("mstdp", reward={"type": "label_macth", "n_classes": 2})
    assert e.value.key == "L.reward.type" and "label_match" in str(e.value)
    pre, post, conn, r = make("mstdp", reward={"type": "label_match", "n_classes": 2}, n_post=2)
    with pytest.raises(ConfigError, match="set_labels"):
        step(pre, post, r, [1.0], [1.0, 0.0])
    with pytest.raises(ConfigError, match="unknown scope"):
        make("mstdp", reward={"type": "label_match", "n_classes": 2, "scope": "batch"})


def constant_two(rule):
    return torch.tensor(2.0)


def test_callable_reward_target():
    pre, post, conn, r = make("mstdp", nu=0.1, reward={"_target_": "tests.test_reward.constant_two"})
    for t in range(2):
        pre(torch.tensor([[float(t == 0)]]))
        post(torch.tensor([[float(t == 1)]]))
        r.step()
    assert conn.w.item() == pytest.approx(0.5 + 0.1 * 2.0 * math.exp(-1 / TAU), rel=1e-6)


def test_set_labels_updates_in_place():
    net = build_network({"groups": {"X": {"type": "input", "n": 2}, "Y": {"type": "input", "n": 2}},
                         "connections": {"XY": {"type": "dense", "source": "X", "target": "Y"}}}, dt=1.0, learner={"r": {"type": "mstdpet", "connection": "XY",
                                            "reward": {"type": "label_match", "n_classes": 2}}})
    set_labels(net, torch.tensor([0, 1]))
    first = net.learners["r"].labels
    set_labels(net, torch.tensor([1, 1]))
    assert net.learners["r"].labels is first and first.tolist() == [1, 1]
    # a smaller last batch gets its own tensor; the full-batch tensor (captured in a CUDA graph
    # for that batch size) is reused, not replaced, when full batches come back
    set_labels(net, torch.tensor([0]))
    assert net.learners["r"].labels is not first
    set_labels(net, torch.tensor([0, 0]))
    assert net.learners["r"].labels is first and first.tolist() == [0, 0]


# -- tempotron -----------------------------------------------------------------------------------------
def tempotron_net(thresh, w=2.0):
    net = build_network({
        "groups": {"X": {"type": "input", "n": 2}, "Y": {"type": "lif", "n": 2, "thresh": thresh, "refrac": 0.0}},
        "connections": {"XY": {"type": "dense", "source": "X", "target": "Y", "init": w}}}, dt=1.0, learner={"t": {"type": "tempotron", "connection": "XY", "n_classes": 2, "nu": 0.1}})
    net.train()
    return net


def kernel(age, tau=20.0, tau_s=5.0):
    t_peak = tau * tau_s * math.log(tau / tau_s) / (tau - tau_s)
    v0 = 1 / (math.exp(-t_peak / tau) - math.exp(-t_peak / tau_s))
    return v0 * (math.exp(-age / tau) - math.exp(-age / tau_s))


def run_tempotron(net, label, spikes_x, T):
    set_labels(net, torch.tensor([label]))
    net.reset_state(1)
    vs, fired = [], []
    for t in range(T):
        net.step({"X": spikes_x[t].reshape(1, 2)})
        vs.append(net.groups["Y"].v[0].clone())
        fired.append(net.groups["Y"].s[0].clone())
    net.learners["t"].end_presentation()
    return torch.stack(vs), torch.stack(fired)


def test_tempotron_potentiates_a_silent_target_at_its_voltage_peak():
    net = tempotron_net(thresh=100.0)  # never fires
    x = torch.zeros(30, 2)
    x[2, 0] = x[5, 1] = x[9, 0] = 1.0
    vs, _ = run_tempotron(net, 1, x, 30)
    t_max = int(vs[:, 1].argmax())  # neuron 1 is class 1: should have fired
    expected_in0 = sum(kernel(t_max - t) for t in (2, 9) if t <= t_max)
    expected_in1 = sum(kernel(t_max - t) for t in (5,) if t <= t_max)
    w = net.connections["XY"].w
    assert w[0, 1].item() == pytest.approx(2.0 + 0.1 * expected_in0, rel=1e-5)
    assert w[1, 1].item() == pytest.approx(2.0 + 0.1 * expected_in1, rel=1e-5)
    assert w[:, 0].tolist() == [2.0, 2.0]  # neuron 0 (class 0) was right to stay silent


def test_tempotron_depresses_a_wrong_spike_at_its_first_spike():
    net = tempotron_net(thresh=-64.0, w=1.5)  # fires quickly
    x = torch.zeros(12, 2)
    x[1, 0] = x[3, 1] = 1.0
    _, fired = run_tempotron(net, 1, x, 12)
    t_first = int(fired[:, 0].nonzero()[0])  # neuron 0 (class 0) fired on a class-1 sample
    w = net.connections["XY"].w
    assert w[0, 0].item() == pytest.approx(1.5 - 0.1 * kernel(t_first - 1), rel=1e-5)
    expected_1 = kernel(t_first - 3) if t_first >= 3 else 0.0
    assert w[1, 0].item() == pytest.approx(1.5 - 0.1 * expected_1, rel=1e-5, abs=1e-7)
    assert fired[:, 1].any() and w[:, 1].tolist() == [1.5, 1.5]  # neuron 1 fired, as it should


# -- learns from the reward alone -----------------------------------------------------------------------
def test_mstdp_digits_learns_above_chance_from_reward_alone(compose_cfg, tmp_path):
    from snnrun.engine.loop import train

    over = ["+model=mstdp_digits", "logger=plain", "seed=0", "data.limit_train=480", "trainer.epochs=1"]
    untrained = train(compose_cfg(*over, "trainer.epochs=0"), tmp_path / "before")
    trained = train(compose_cfg(*over), tmp_path / "after")
    # spike_count reads the fixed class populations: no label assignment is involved
    before = untrained["decoders"]["spike_count"]["test_accuracy"]
    after = trained["decoders"]["spike_count"]["test_accuracy"]
    assert before < 0.2 and after >= 0.35, (before, after)  # 10 classes: chance is 0.1


def test_tempotron_errors():
    with pytest.raises(ConfigError) as e:
        make("tempotron", n_classes=1, tau=5.0, tau_s=5.0)
    assert e.value.key == "L.tau" and "tau > tau_s" in str(e.value)
    pre, post, conn, r = make("tempotron", n_classes=1)
    with pytest.raises(ConfigError, match="membrane potential v"):
        r.step()  # Input nodes have no v
    net = tempotron_net(thresh=100.0)
    net.reset_state(1)
    net.step({"X": torch.ones(1, 2)})
    with pytest.raises(ConfigError, match="set_labels"):
        net.learners["t"].end_presentation()


def test_labels_of_another_batch_size_are_a_config_error():
    # e.g. a data-parallel rank handed the whole batch's labels instead of its rows
    net = tempotron_net(thresh=-64.0)
    set_labels(net, torch.tensor([0, 1, 1]))
    net.reset_state(2)
    net.step({"X": torch.ones(2, 2)})
    with pytest.raises(ConfigError, match="labels for 3 samples but simulates 2"):
        net.learners["t"].end_presentation()
    net = build_network({
        "groups": {"X": {"type": "input", "n": 2}, "Y": {"type": "lif", "n": 2, "thresh": -64.0}},
        "connections": {"XY": {"type": "dense", "source": "X", "target": "Y", "init": 2.0}}}, dt=1.0,
        learner={"r": {"type": "mstdp", "connection": "XY", "reward": {"type": "label_match", "n_classes": 2}}})
    net.train()
    set_labels(net, torch.tensor([0, 1, 1]))
    net.reset_state(2)
    with pytest.raises(ConfigError, match="label_match got labels for 3 samples"):
        net.step({"X": torch.ones(2, 2)})
