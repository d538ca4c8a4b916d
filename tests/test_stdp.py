"""PostPre STDP on hand-built spike pairs: sign, magnitude, bounds, batch reduction."""

import math

import pytest
import torch

from snnrun.components.connections import Connection
from snnrun.errors import ConfigError
from snnrun.components.learning import LearningRule
from snnrun.components.neurons import Input, LIFNodes


def make(w0=0.5, nu=(1e-2, 1e-1), wmin=None, wmax=None, reduction="sum", batch=1, tc=20.0):
    pre, post = Input(1, traces=True, tc_trace=tc), Input(1, traces=True, tc_trace=tc)
    conn = Connection.build({"type": "dense", "source": "pre", "target": "post", "init": w0,
                             "wmin": wmin, "wmax": wmax}, source_shape=(1,), target_shape=(1,))
    rule = LearningRule.build({"type": "post_pre", "nu": list(nu), "reduction": reduction},
                              connection=conn, source=pre, target=post)
    pre.reset_state(batch)
    post.reset_state(batch)
    return pre, post, conn, rule


def play(pre, post, rule, pre_times, post_times, steps, batch=1):
    for t in range(steps):
        pre(torch.full((batch, 1), float(t in pre_times)))
        post(torch.full((batch, 1), float(t in post_times)))
        rule.step()


@pytest.mark.parametrize("delta", [1, 5, 20])
def test_pre_then_post_potentiates_by_nu_post_times_trace(delta):
    pre, post, conn, rule = make()
    play(pre, post, rule, {0}, {delta}, delta + 1)
    assert conn.w.item() == pytest.approx(0.5 + 1e-1 * math.exp(-delta / 20.0), rel=1e-6)


@pytest.mark.parametrize("delta", [1, 5, 20])
def test_post_then_pre_depresses_by_nu_pre_times_trace(delta):
    pre, post, conn, rule = make()
    play(pre, post, rule, {delta}, {0}, delta + 1)
    assert conn.w.item() == pytest.approx(0.5 - 1e-2 * math.exp(-delta / 20.0), rel=1e-6)


def test_simultaneous_spikes_apply_both_terms():
    pre, post, conn, rule = make()
    play(pre, post, rule, {0}, {0}, 1)
    assert conn.w.item() == pytest.approx(0.5 - 1e-2 + 1e-1)


def test_hard_bounds_clamp_after_update():
    pre, post, conn, rule = make(w0=0.95, nu=(0.0, 1.0), wmax=1.0)
    play(pre, post, rule, {0}, {1}, 2)
    assert conn.w.item() == 1.0
    pre, post, conn, rule = make(w0=0.01, nu=(1.0, 0.0), wmin=0.0)
    play(pre, post, rule, {1}, {0}, 2)
    assert conn.w.item() == 0.0


@pytest.mark.parametrize("reduction,factor", [("sum", 3.0), ("mean", 1.0)])
def test_batch_reduction(reduction, factor):
    pre, post, conn, rule = make(reduction=reduction, batch=3)
    play(pre, post, rule, {0}, {2}, 3, batch=3)
    assert conn.w.item() == pytest.approx(0.5 + factor * 1e-1 * math.exp(-2 / 20.0), rel=1e-6)


def test_post_pre_needs_traces():
    pre, post = Input(1, traces=False), LIFNodes(1)
    conn = Connection.build({"type": "dense", "source": "a", "target": "b"}, source_shape=(1,),
                            target_shape=(1,))
    with pytest.raises(ConfigError, match="traces: true"):
        LearningRule.build({"type": "post_pre"}, key="model.network.learners.s", connection=conn,
                           source=pre, target=post)


def test_bad_nu_and_reduction():
    pre, post, conn, _ = make()
    with pytest.raises(ConfigError) as e:
        LearningRule.build({"type": "post_pre", "reduction": "max"}, key="L", connection=conn,
                           source=pre, target=post)
    assert e.value.key == "L.reduction" and "sum, mean" in str(e.value)
    with pytest.raises(ConfigError) as e:
        LearningRule.build({"type": "post_pre", "nu": [1, 2, 3]}, key="L", connection=conn,
                           source=pre, target=post)
    assert e.value.key == "L.nu"


def test_owner_reduction_lets_only_the_first_firing_sample_teach_a_neuron():
    # sample 0: pre at t=0, post at t=3; sample 1: pre at t=0, post at t=1 (fires first: owner)
    pre, post, conn, rule = make(reduction="owner", batch=2)
    rule.reset_state(2)
    for t in range(4):
        pre(torch.tensor([[float(t == 0)], [float(t == 0)]]))
        post(torch.tensor([[float(t == 3)], [float(t == 1)]]))
        rule.step()
    # only sample 1's pairing (delta = 1) counts; sample 0's (delta = 3) is ignored
    assert conn.w.item() == pytest.approx(0.5 + 1e-1 * math.exp(-1 / 20.0), rel=1e-6)
    assert rule.owner.tolist() == [1]


def test_owner_terms_equal_the_batch_sums_when_each_neuron_has_one_owner():
    # the gather in owner_terms must equal the masked matrix products it replaces
    g = torch.Generator().manual_seed(1)
    pre, post, conn, rule = make(batch=4)
    rule.reset_state(4)
    s_pre = (torch.rand(4, 1, generator=g) < 0.5).float()
    x_pre = torch.rand(4, 1, generator=g)
    s_post = torch.tensor([[0.0], [1.0], [1.0], [0.0]])  # samples 1 and 2 fire it: 1 owns it
    x_post = torch.rand(4, 1, generator=g)
    pot, dep = rule.owner_terms(s_pre, x_pre, s_post, x_post)
    mask = torch.tensor([[0.0], [1.0], [0.0], [0.0]])
    assert torch.allclose(pot, x_pre.t() @ (s_post * mask))
    assert torch.allclose(dep, s_pre.t() @ (x_post * mask))


def test_owner_equals_sum_for_a_single_sample():
    torch.manual_seed(0)
    results = []
    for reduction in ("sum", "owner"):
        g = torch.Generator().manual_seed(1)
        pre, post = Input(5, traces=True), Input(3, traces=True)
        conn = Connection.build({"type": "dense", "source": "a", "target": "b", "init": 0.5},
                                source_shape=(5,), target_shape=(3,))
        rule = LearningRule.build({"type": "post_pre", "reduction": reduction}, connection=conn,
                                  source=pre, target=post)
        for grp in (pre, post, rule):
            grp.reset_state(1)
        for _ in range(30):
            pre((torch.rand(1, 5, generator=g) < 0.3).float())
            post((torch.rand(1, 3, generator=g) < 0.2).float())
            rule.step()
        results.append(conn.w.clone())
    assert torch.equal(results[0], results[1])


def test_owner_is_refused_by_rules_without_it():
    from snnrun.components.learning.base import LearningRule as Base

    assert not Base.supports_owner


def owners_rule(batch: int, n_post: int = 2, **opts):
    pre, post = Input(3, traces=True), Input(n_post, traces=True)
    conn = Connection.build({"type": "dense", "source": "a", "target": "b", "init": 0.5, "wmin": 0.0, "wmax": 10.0},
                            source_shape=(3,), target_shape=(n_post,))
    rule = LearningRule.build({"type": "post_pre", "reduction": "owner", "nu": [0.0, 1.0], **opts}, connection=conn,
                              source=pre, target=post)
    for grp in (pre, post, rule):
        grp.reset_state(batch)
    return pre, post, conn, rule


def test_owners_k_lets_each_neuron_learn_from_its_first_k_samples():
    # 4 samples; neuron 0 fired by samples 3 (t=0), 1 and 2 (t=1), 0 (t=2); K=2: samples 3 and 1 own it
    pre, post, conn, rule = owners_rule(batch=4, owners=2)
    x = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 1.0, 1.0]])  # each sample's input pattern
    fires = {0: [3], 1: [1, 2], 2: [0]}
    for t in range(3):
        pre(x)  # a spike at every step: the pre trace is 1 (set to 1 at a spike, BindsNET's traces)
        post(torch.tensor([[float(b in fires[t]), 0.0] for b in range(4)]))
        rule.step()
    # potentiation of column 0: sample 3's pattern at t=0, sample 1's at t=1 (sample 2 comes after
    # sample 1 among the t=1 claimants and finds no room, sample 0 at t=2 neither)
    expected = 0.5 + 1.0 * x[3] + 1.0 * x[1]  # nu_post = 1, trace 1
    assert torch.allclose(conn.w[:, 0], expected)
    assert torch.equal(conn.w[:, 1], torch.full((3,), 0.5))
    assert rule.members[:, 0].tolist() == [0.0, 1.0, 0.0, 1.0]


def test_owners_one_and_auto_resolve_as_documented():
    _, _, _, rule = owners_rule(batch=4, n_post=3, owners="auto")
    assert rule.owners_per_neuron(4) == 2 and rule.owners_per_neuron(3) == 1 and rule.owners_per_neuron(256) == 86
    # owners: 1 through the K path equals the gather (owner_terms) path
    g = torch.Generator().manual_seed(2)
    ws = []
    for owners in (1, 2):
        pre, post, conn, rule = owners_rule(batch=5, n_post=4, owners=owners)
        g.manual_seed(2)
        for _ in range(20):
            pre((torch.rand(5, 3, generator=g) < 0.4).float())
            post((torch.rand(5, 4, generator=g) < 0.2).float())
            if owners == 2:  # K = 1 through claim_many
                x_pre, s_post = pre.x, post.s
                m = rule.claim_many(s_post, 1)
                conn.w.add_(x_pre.t() @ (s_post * m))
            else:
                rule.step()
        ws.append(conn.w.clone())
    assert torch.allclose(ws[0], ws[1])
    with pytest.raises(ConfigError) as e:
        owners_rule(batch=1, owners=0)
    assert e.value.key == "owners"


def strongest_run(owners, steps, nu=(0.0, 1.0)):
    """Presents ``steps`` (a list of (pre spikes (B, 3), post spikes (B, n_post))) to a post_pre rule
    with owner_by: spike_count and returns (w before, w after, the rule, the equation's expected w)."""
    b, n = steps[0][1].shape
    pre, post, conn, rule = owners_rule(batch=b, n_post=n, owners=owners, owner_by="spike_count", nu=list(nu))
    w0 = conn.w.clone()
    P, D, C = torch.zeros(b, 3), torch.zeros(b, 3), torch.zeros(b, n)
    for s_pre, s_post in steps:
        pre(s_pre)
        post(s_post)
        P += pre.x * post.s.sum(1, keepdim=True)
        D += pre.s * post.x.sum(1, keepdim=True)
        C += post.s
        rule.step()
    assert torch.equal(conn.w, w0)  # nothing is learned before the end of the presentation
    rule.end_presentation()
    return w0, conn.w.clone(), rule, (P, D, C)


def test_owner_by_spike_count_teaches_each_neuron_the_sample_that_fired_it_most():
    # neuron 0: samples 0 and 1 fire it at t=0 (first_spike would pick sample 0), sample 1 again at
    # t=1 -> sample 1 owns it; neuron 1: only sample 2 fires it. Sample 1 fires neuron 1 once as well:
    # c = [[1, 0], [2, 1], [0, 1]]; sample 1's column-0 share is 2/3; neuron 1's owner (K=1, tie 1-1)
    # is the lower index, sample 1 (share 1/3)
    x = torch.tensor([[1.0, 0, 0], [0, 1.0, 1.0], [1.0, 1.0, 0]])
    steps = [(x, torch.tensor([[1.0, 0], [1.0, 0], [0, 0]])),
             (x, torch.tensor([[0.0, 0], [1.0, 1.0], [0, 1.0]]))]
    w0, w, rule, (P, D, C) = strongest_run(1, steps, nu=(0.5, 1.0))
    assert torch.allclose(w[:, 0], w0[:, 0] + 1.0 * P[1] * 2 / 3 - 0.5 * D[1] * 2 / 3)
    assert torch.allclose(w[:, 1], w0[:, 1] + 1.0 * P[1] * 1 / 3 - 0.5 * D[1] * 1 / 3)
    assert rule.learned_from(3).tolist() == [0.0, 1.0, 0.0]


def test_owner_by_spike_count_with_k_owners_sums_the_k_strongest():
    # 4 samples fire neuron 0 with counts 1, 3, 2, 0 (one neuron: each sample's share is 1): K=2
    # -> samples 1 and 2, whatever fired first
    x = torch.eye(3)[[0, 1, 2, 0]]
    counts = [1, 3, 2, 0]
    steps = [(x, torch.tensor([[1.0 if c > t else 0.0] for c in counts])) for t in range(3)]
    w0, w, rule, (P, D, C) = strongest_run(2, steps)
    assert torch.allclose(w[:, 0], w0[:, 0] + P[1] + P[2])
    assert rule.learned_from(4).tolist() == [0.0, 1.0, 1.0, 0.0]


def test_owner_by_is_checked_and_refused_where_it_cannot_work():
    with pytest.raises(ConfigError) as e:
        owners_rule(batch=2, owner_by="most")
    assert e.value.key == "owner_by" and "spike_count" in e.value.message
    with pytest.raises(ConfigError) as e:
        owners_rule(batch=2, owner_by="spike_count", overflow="nearest")
    assert e.value.key == "owner_by" and "overflow" in e.value.message
    from snnrun.engine.data_parallel import DataParallel
    from snnrun.engine.experiment import build_experiment
    from tests.conftest import TINY, compose_config

    exp = build_experiment(compose_config("+model=diehl_cook", *TINY, "device=cpu",
                                          "model.learner.owner_by=spike_count", "trainer.batch_size=4"))
    with pytest.raises(ConfigError) as e:
        DataParallel(rank=0, world=2, local_rank=0, device=torch.device("cpu")).attach(exp)
    assert e.value.key == "owner_by" and "one process" in e.value.message


def test_overflow_nearest_places_a_sample_without_a_neuron_on_the_closest_free_one():
    # 3 samples, 3 neurons, one owner each. Samples 0 and 1 both fire neuron 0 at t=0: sample 0
    # owns it, sample 1 taught nothing. Neuron 1 is closer to sample 1's pattern than neuron 2,
    # so sample 1 teaches neuron 1: w[:, 1] += nu_post * P_1, with P_1 = its pre traces summed
    # over the steps where its layer spiked. Sample 2 never fired: it has nothing to teach.
    pre, post, conn, rule = owners_rule(batch=3, n_post=3, owners=1, overflow="nearest")
    with torch.no_grad():
        conn.w.copy_(torch.tensor([[0.5, 0.9, 0.1], [0.5, 0.1, 0.9], [0.5, 0.5, 0.5]]))
    w0 = conn.w.clone()
    x = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    for t in range(2):
        pre(x)
        post(torch.tensor([[1.0, 0, 0], [1.0, 0, 0], [0, 0, 0]]) if t == 0 else torch.zeros(3, 3))
        rule.step()
    before_end = conn.w.clone()
    # the owner path: neuron 0 learned from sample 0 only
    assert torch.allclose(before_end[:, 0], w0[:, 0] + x[0])
    rule.end_presentation()
    p1 = x[1]  # one spike of sample 1's layer, at t=0, pre trace 1
    assert torch.allclose(conn.w[:, 1], w0[:, 1] + 1.0 * p1)
    assert torch.equal(conn.w[:, 2], w0[:, 2])
    assert torch.equal(conn.w[:, 0], before_end[:, 0])
    assert rule.learned_from(3).tolist() == [1.0, 1.0, 0.0]


def test_overflow_respects_room_and_batch_order():
    # four samples all fire neuron 0 (owned by sample 0); neurons 1 and 2 are free, one owner each;
    # all three waiting samples prefer neuron 1: sample 1 gets it, sample 2 the next best (2), sample 3 nothing
    pre, post, conn, rule = owners_rule(batch=4, n_post=3, owners=1, overflow="nearest")
    with torch.no_grad():
        conn.w.copy_(torch.tensor([[0.5, 0.9, 0.4], [0.5, 0.9, 0.4], [0.5, 0.9, 0.4]]))
    w0 = conn.w.clone()
    x = torch.eye(3)[[0, 0, 1, 2]]
    pre(x)
    post(torch.tensor([[1.0, 0, 0]] * 4))
    rule.step()
    rule.end_presentation()
    assert torch.allclose(conn.w[:, 1], w0[:, 1] + x[1])
    assert torch.allclose(conn.w[:, 2], w0[:, 2] + x[2])
    assert rule.learned_from(4).tolist() == [1.0, 1.0, 1.0, 0.0]


def test_overflow_needs_the_owner_reduction_and_a_known_value():
    with pytest.raises(ConfigError) as e:
        owners_rule(batch=2, overflow="closest")
    assert e.value.key == "overflow" and "nearest" in e.value.message
    pre, post = Input(3, traces=True), Input(2, traces=True)
    conn = Connection.build({"type": "dense", "source": "a", "target": "b"}, source_shape=(3,), target_shape=(2,))
    with pytest.raises(ConfigError) as e:
        LearningRule.build({"type": "post_pre", "reduction": "sum", "overflow": "nearest"}, connection=conn,
                           source=pre, target=post)
    assert e.value.key == "overflow" and "reduction: owner" in e.value.message


def test_overflow_is_refused_across_processes():
    from snnrun.engine.data_parallel import DataParallel
    from snnrun.engine.experiment import build_experiment
    from tests.conftest import TINY, compose_config

    exp = build_experiment(compose_config("+model=diehl_cook", *TINY, "device=cpu", "model.learner.overflow=nearest",
                                          "trainer.batch_size=4"))
    with pytest.raises(ConfigError) as e:
        DataParallel(rank=0, world=2, local_rank=0, device=torch.device("cpu")).attach(exp)
    assert e.value.key == "overflow" and "one process" in e.value.message
    assert exp.network.learners["learner"].data_parallel is None  # refused before anything was handed over


def test_baseline_running_mean_potentiates_from_the_trace_minus_its_running_mean():
    # 2 samples, 2 inputs, 1 post neuron, nu_pre = 0: one step where both samples' post neuron fires.
    # m <- m + r (mean_b x_pre - m) with r = dt / baseline_tc = 0.5; dw = nu_post sum_b (x_pre,b - m) s_post,b
    pre, post = Input(2, traces=True), Input(1, traces=True)
    conn = Connection.build({"type": "dense", "source": "a", "target": "b", "init": 0.5, "wmin": -10.0, "wmax": 10.0},
                            source_shape=(2,), target_shape=(1,))
    rule = LearningRule.build({"type": "post_pre", "nu": [0.0, 1.0], "baseline": "running_mean", "baseline_tc": 2.0},
                              connection=conn, source=pre, target=post)
    for g in (pre, post, rule):
        g.reset_state(2)
    x = torch.tensor([[1.0, 0.0], [1.0, 1.0]])  # input 0 fires for both samples, input 1 for one
    pre(x)
    post(torch.ones(2, 1))
    rule.step()
    m = 0.5 * x.mean(0)  # from 0 towards the batch mean [1, 0.5]
    assert torch.allclose(conn.pre_mean, m)
    expected = 0.5 + ((x - m) * 1.0).sum(0)  # both samples fired the post neuron (sum reduction)
    assert torch.allclose(conn.w[:, 0], expected)
    # a second identical step: m moves on towards the mean, the constant input 0 potentiates less
    pre(x)
    post(torch.ones(2, 1))
    rule.step()
    m2 = m + 0.5 * (x.mean(0) - m)
    assert torch.allclose(conn.pre_mean, m2)
    assert "pre_mean" in dict(conn.named_buffers())  # saved with the network's state


def test_baseline_bad_values_and_no_split_across_processes():
    from snnrun.engine.data_parallel import DataParallel
    from snnrun.engine.experiment import build_experiment
    from tests.conftest import TINY, compose_config

    for node, key in (({"baseline": "median"}, "baseline"), ({"baseline": "running_mean", "baseline_tc": 0}, "baseline_tc")):
        with pytest.raises(ConfigError) as e:
            owners_rule(batch=2, **node)
        assert e.value.key == key
    exp = build_experiment(compose_config("+model=diehl_cook", *TINY, "device=cpu", "+model.learner.baseline=running_mean",
                                          "trainer.batch_size=4"))
    assert exp.network.cpu_loop is None  # the C loop has no baseline: the step-by-step path runs it
    with pytest.raises(ConfigError) as e:
        DataParallel(rank=0, world=2, local_rank=0, device=torch.device("cpu")).attach(exp)
    assert e.value.key == "baseline"
