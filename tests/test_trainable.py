"""Trainable (surrogate-gradient) nodes: equations, BPTT gradients, multi-step == single-step."""

import math

import pytest
import torch

from snnrun.errors import ConfigError
from snnrun.engine.network import build_network
from snnrun.components.neurons import NeuronModel
from snnrun.components.surrogates import build_surrogate

TRAINABLE = ["surrogate_if", "surrogate_lif", "plif", "leaky_integrator"]


def node(name, n=1, **kw):
    return NeuronModel.build({"type": name, **kw}, n=n)


def test_registered_without_clashing_with_bindsnet_models():
    names = NeuronModel.registry.names()
    for n in TRAINABLE:
        assert n in names
    assert type(NeuronModel.build({"type": "lif"})).__name__ == "LIFNodes"  # mV-based model untouched


def test_if_integrates_exactly_and_fires_every_ceil_theta_over_x():
    n = node("surrogate_if")
    out = torch.stack([n(torch.full((1, 1), 0.3)) for _ in range(12)]).flatten()
    # v: .3 .6 .9 1.2 -> spike, hard reset to 0; period ceil(1 / 0.3) = 4
    assert out.tolist() == [0, 0, 0, 1] * 3
    soft = node("surrogate_if", v_reset=None)
    counts = sum(soft(torch.full((1, 1), 0.3)) for _ in range(20))
    assert counts.item() == math.floor(20 * 0.3 / 1.0)
    assert soft.v.item() == pytest.approx(20 * 0.3 - 6.0, abs=1e-5)


@pytest.mark.parametrize("decay_input", [True, False])
def test_lif_charge_equation(decay_input):
    tau, x = 4.0, 0.5
    n = node("surrogate_lif", tau=tau, decay_input=decay_input, v_threshold=100.0)
    v = 0.0
    for _ in range(10):
        n(torch.full((1, 1), x))
        v = v + (x - v) / tau if decay_input else v - v / tau + x
        assert n.v.item() == pytest.approx(v)
    # closed form of the linear recurrence: v_k = v_inf (1 - (1 - 1/tau)^k)
    v_inf = x if decay_input else x * tau
    assert v == pytest.approx(v_inf * (1 - (1 - 1 / tau) ** 10))


def test_lif_hard_and_soft_reset_values():
    hard = node("surrogate_lif", tau=2.0, v_reset=-0.1)
    s = hard(torch.full((1, 1), 2.5))  # v = -0.1 + (2.5 + 0.1) / 2 = 1.2 -> spike
    assert s.item() == 1 and hard.v.item() == pytest.approx(-0.1)
    soft = node("surrogate_lif", tau=2.0, v_reset=None)
    s = soft(torch.full((1, 1), 2.4))  # v = 1.2 -> spike, v - 1 = 0.2
    assert s.item() == 1 and soft.v.item() == pytest.approx(0.2)


def test_plif_learns_its_time_constant():
    n = node("plif", n=3, init_tau=3.0)
    assert n.tau_now == pytest.approx(3.0)
    assert torch.sigmoid(n.w).item() == pytest.approx(1 / 3)
    x = torch.rand(5, 4, 3) * 2
    n.store_v_seq = True
    n.forward_multi(x)
    n.v_seq.sum().backward()
    assert n.w.grad is not None and n.w.grad.abs().item() > 0
    assert list(dict(n.named_parameters())) == ["w"]


def test_leaky_integrator_never_spikes():
    n = node("leaky_integrator", n=2, store_v_seq=True)
    s = n.forward_multi(torch.full((6, 1, 2), 5.0))
    assert s.abs().sum() == 0 and n.v_seq[-1, 0, 0].item() == pytest.approx(5.0 * (1 - 0.5 ** 6))


# -- gradients: autograd through the surrogate vs finite differences ------------------------------
def unrolled_lif_reference(w, b, x, tau, v_reset, decay_input, sg, ref, detach_reset):
    """A one-neuron LIF written out by hand, with the spike H(u) replaced by
    H(u_ref) + g(u) - g(u_ref): equal to the real spike on the trajectory u_ref of the unperturbed
    run, with derivative g'(u) (the surrogate) — so its finite differences at that point are what
    BPTT through the surrogate must return."""
    v_rest = 0.0 if v_reset is None else v_reset
    v = torch.tensor(v_rest, dtype=torch.float64)
    total = 0.0
    for t in range(len(x)):
        i = w * x[t] + b
        v = v + (i - (v - v_rest)) / tau if decay_input else v - (v - v_rest) / tau + i
        u = v - 1.0
        s = (ref[t] >= 0).double() + sg.primitive(u) - sg.primitive(ref[t])
        s_reset = (ref[t] >= 0).double() if detach_reset else s
        v = v - s_reset * 1.0 if v_reset is None else v - s_reset * (v - v_reset)
        total = total + (t + 1) * s + 0.1 * v  # a loss that weighs spike timing and voltage
    return total


@pytest.mark.parametrize("surrogate", ["sigmoid", "atan", "erf", "fast_sigmoid"])
@pytest.mark.parametrize("v_reset", [0.0, None])
@pytest.mark.parametrize("decay_input", [True, False])
@pytest.mark.parametrize("detach_reset", [False, True])
def test_one_neuron_bptt_matches_finite_differences(surrogate, v_reset, decay_input, detach_reset):
    torch.manual_seed(0)
    tau, T = 2.5, 12
    x = torch.rand(T, dtype=torch.float64) * (3.0 if decay_input else 0.9)
    w0, b0 = 1.3, 0.1
    n = node("surrogate_lif", tau=tau, v_reset=v_reset, decay_input=decay_input, surrogate=surrogate,
             detach_reset=detach_reset).double()
    w = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(b0, dtype=torch.float64, requires_grad=True)
    n.reset_state(1)
    total, ref = 0.0, []
    for t in range(T):
        s = n((w * x[t] + b).reshape(1, 1))
        total = total + (t + 1) * s.sum() + 0.1 * n.v.sum()
    # record the unperturbed trajectory u_t with a second (no-grad) run
    with torch.no_grad():
        m = node("surrogate_lif", tau=tau, v_reset=v_reset, decay_input=decay_input, v_threshold=1.0).double()
        m.reset_state(1)
        for t in range(T):
            m.neuronal_charge((w0 * x[t] + b0).reshape(1, 1))
            ref.append((m.v - 1.0).reshape(()))
            m.neuronal_reset(m.neuronal_fire())
    assert any(r >= 0 for r in ref) and any(r < 0 for r in ref)  # it spikes, and not always
    total.backward()
    sg = build_surrogate(surrogate)
    args = (x, tau, v_reset, decay_input, sg, ref, detach_reset)
    ref_value = unrolled_lif_reference(torch.tensor(w0, dtype=torch.float64), torch.tensor(b0, dtype=torch.float64), *args)
    assert ref_value.item() == pytest.approx(total.item(), rel=1e-12)
    eps = 1e-6
    for name, grad, (dw, db) in (("w", w.grad, (eps, 0)), ("b", b.grad, (0, eps))):
        up = unrolled_lif_reference(torch.tensor(w0 + dw, dtype=torch.float64),
                                    torch.tensor(b0 + db, dtype=torch.float64), *args)
        down = unrolled_lif_reference(torch.tensor(w0 - dw, dtype=torch.float64),
                                      torch.tensor(b0 - db, dtype=torch.float64), *args)
        fd = (up - down) / (2 * eps)
        assert grad.item() == pytest.approx(fd.item(), rel=1e-5, abs=1e-8), name


def test_detach_reset_changes_the_gradient():
    grads = []
    for detach in (False, True):
        n = node("surrogate_lif", n=4, detach_reset=detach).double()
        x = (torch.arange(8 * 4, dtype=torch.float64).reshape(8, 1, 4) % 5 / 2).requires_grad_()
        n.forward_multi(x).sum().backward()
        grads.append(x.grad.clone())
    assert not torch.allclose(*grads)


# -- multi-step == single-step ------------------------------------------------------------------
@pytest.mark.parametrize("name", TRAINABLE)
@pytest.mark.parametrize("v_reset", [0.0, None])
def test_multi_step_equals_step_by_step_outputs_and_gradients(name, v_reset):
    torch.manual_seed(1)
    kw = dict(v_reset=v_reset, surrogate="atan") if name != "leaky_integrator" else {}
    a = node(name, n=[2, 3], **kw)
    b = node(name, n=[2, 3], **kw)
    b.load_state_dict(a.state_dict())
    x = (torch.rand(10, 4, 2, 3) * 2).requires_grad_()
    y = x.detach().clone().requires_grad_()
    a.store_v_seq = True
    out_multi = a.forward_multi(x)
    out_single, vs = [], []
    for t in range(10):
        out_single.append(b(y[t]))
        vs.append(b.v)
    out_single, vs = torch.stack(out_single), torch.stack(vs)
    assert torch.equal(out_multi, out_single)
    assert torch.equal(a.v_seq, vs)
    weight = torch.rand_like(out_multi)
    ((out_multi * weight).sum() + a.v_seq.pow(2).sum()).backward()
    ((out_single * weight).sum() + vs.pow(2).sum()).backward()
    assert torch.allclose(x.grad, y.grad, rtol=1e-6, atol=1e-7)
    for (pa, ga), (pb, gb) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.allclose(ga.grad, gb.grad, rtol=1e-6), pa


def test_new_batch_shape_resets_state_and_bad_shape_is_clear():
    n = node("surrogate_lif", n=3)
    n(torch.ones(2, 3))
    n(torch.ones(5, 3))
    assert n.v.shape == (5, 3)
    with pytest.raises(ValueError, match=r"shape \[3\] got input of shape \[5, 4\]"):
        n(torch.ones(5, 4))


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError) as e:
        NeuronModel.build({"type": "surrogate_lif", "tau": 0.5}, key="model.layers.2")
    assert e.value.key == "model.layers.2.tau"
    with pytest.raises(ConfigError) as e:
        NeuronModel.build({"type": "plif", "init_tau": 1.0}, key="g")
    assert e.value.key == "g.init_tau"
    with pytest.raises(ConfigError) as e:
        NeuronModel.build({"type": "surrogate_lif", "surrogate": "atn"}, key="g")
    assert e.value.key == "g.surrogate.type" and "atan" in str(e.value)
    with pytest.raises(ConfigError, match="Allowed: .*decay_input.*v_reset"):
        NeuronModel.build({"type": "surrogate_lif", "v_rest": 0.0}, key="g")


def test_sits_in_a_network_group_and_runs_without_grad():
    net = build_network({"groups": {"X": {"type": "input", "n": 4}, "H": {"type": "surrogate_lif", "n": 3}},
                         "connections": {"XH": {"type": "dense", "source": "X", "target": "H", "init": 1.0}}},
                        dt=1.0)
    out = net.run({"X": torch.ones(5, 2, 4)}, count=("H",))
    # current 4 per step, tau 2: v = 2 -> spike every step once connections deliver (from t=1)
    assert out["counts"]["H"].tolist() == [[4.0] * 3] * 2
