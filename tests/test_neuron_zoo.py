"""Neuron zoo: each model against its equation, a closed form or a known qualitative trace."""

import math

import pytest
import torch

from snnrun.errors import ConfigError
from snnrun.components.neurons import NeuronModel
from snnrun.components.neurons.trainable import TrainableNode
from snnrun.commands.probe import fi_curve, neuron_node


def build(node, dt=1.0, n=1):
    g = NeuronModel.build({**node, "n": n}, dt=dt)
    g.eval()
    return g


@torch.no_grad()
def drive(g, current, steps, batch=1):
    """Constant current; returns spikes (T, B, n) and v (T, B, n)."""
    g.reset_state(batch)
    x = torch.as_tensor(current, dtype=torch.float32).reshape(-1, *([1] * len(g.shape)))
    x = x.expand(batch, *g.shape)
    s, v = [], []
    for _ in range(steps):
        s.append(g(x).clone())
        v.append(g.v.clone().float())
    return torch.stack(s), torch.stack(v)


def isis(train):
    t = torch.nonzero(train.flatten()).flatten()
    return (t[1:] - t[:-1]).tolist()


# -- BindsNET family ---------------------------------------------------------------------------

def test_lif_fi_curve_equals_closed_form_rate():
    currents = [0.5, 1.0, 2.0, 4.0, 8.0]
    rates = fi_curve(neuron_node("lif") | {"tc_decay": 20.0}, currents, time=2000.0)
    d, refrac = math.exp(-1 / 20.0), 5
    for i, r in zip(currents, rates.tolist()):
        if i / (1 - d) < 13.0:
            assert r == 0.0
            continue
        # k steps from rest to threshold (v_k = rest + I (1 - d^k) / (1 - d)), then 5 refractory
        k = next(k for k in range(1, 10000) if i * (1 - d ** k) / (1 - d) >= 13.0)
        period = k + refrac
        assert r == pytest.approx(1000.0 * (2000 // period + (1 if 2000 % period >= k else 0)) / 2000.0)


def test_if_integrates_exactly():
    g = build({"type": "if", "thresh": -52.0, "reset": -65.0, "refrac": 0.0})
    s, v = drive(g, 0.75, 40)
    # v_k = reset + 0.75 k until it reaches 13 mV above reset: ceil(13 / 0.75) = 18 steps
    assert v[:17, 0, 0].tolist() == pytest.approx([-65.0 + 0.75 * k for k in range(1, 18)])
    assert torch.nonzero(s.flatten()).flatten().tolist() == [17, 35]


def test_soft_reset_if_conserves_charge():
    g = build({"type": "if_soft_reset"})
    s, v = drive(g, 0.3, 100)
    assert s.sum().item() == math.floor(100 * 0.3 + 1e-9)
    assert v[-1].item() == pytest.approx(100 * 0.3 - s.sum().item(), abs=1e-4)


def test_mcculloch_pitts_null_and_boosted_lif():
    mp = build({"type": "mcculloch_pitts", "thresh": 1.0}, n=3)
    mp.reset_state(1)
    assert mp(torch.tensor([[0.5, 1.0, 2.0]])).tolist() == [[0, 1, 1]]
    null = build({"type": "null"}, n=2)
    null.reset_state(1)
    assert null(torch.tensor([[0.25, -3.0]])).tolist() == [[0.25, -3.0]]
    # boosted LIF is LIF shifted to rest = reset = 0 with thresh = 13: the same spikes
    lif, boosted = build({"type": "lif", "tc_decay": 30.0}), build({"type": "boosted_lif", "tc_decay": 30.0})
    assert torch.equal(drive(lif, 1.5, 300)[0], drive(boosted, 1.5, 300)[0])


def test_current_lif_pulse_response():
    g = build({"type": "current_lif", "tc_decay": 50.0, "tc_i_decay": 3.0})
    g.reset_state(1)
    g(torch.full((1, 1), 2.0))
    vs = [g.v.item()]
    for _ in range(10):
        g(torch.zeros(1, 1))
        vs.append(g.v.item())
    d, di = math.exp(-1 / 50.0), math.exp(-1 / 3.0)
    expected = [-65.0 + 2.0 * sum(di ** j * d ** (k - j) for j in range(k + 1)) for k in range(11)]
    assert vs == pytest.approx(expected, abs=1e-4)


def test_constant_current_lif_first_spike_euler_closed_form():
    g = build({"type": "constant_current_lif", "tau_m": 20.0, "v_th": 1.0})
    s, _ = drive(g, 1.5, 200)
    k = next(k for k in range(1, 1000) if 1.5 * (1 - (1 - 1 / 20) ** k) > 1.0)
    assert isis(s)[0] == k and int(torch.nonzero(s.flatten())[0]) + 1 == k
    assert drive(g, 1.0, 500)[0].sum() == 0  # steady state == threshold from below: never


def test_izhikevich_regular_and_fast_spiking_patterns():
    rs = build({"type": "izhikevich", "cell": "rs"})
    fs = build({"type": "izhikevich", "cell": "fs"})
    s_rs, v_rs = drive(rs, 10.0, 1000)
    s_fs, _ = drive(fs, 10.0, 1000)
    i_rs, i_fs = isis(s_rs), isis(s_fs)
    # RS: spike-frequency adaptation (first interval much shorter than the adapted ones)
    assert i_rs[0] < 0.7 * i_rs[-1]
    # FS: fast tonic firing without adaptation, several times the RS rate
    assert s_fs.sum() > 3 * s_rs.sum()
    tail = torch.tensor(i_fs[len(i_fs) // 2:], dtype=torch.float)
    assert tail.std() / tail.mean() < 0.1
    assert v_rs.max() < 30.0 and v_rs.min() > -90.0


def test_izhikevich_random_mix_follows_bindsnet_ranges():
    torch.manual_seed(0)
    g = build({"type": "izhikevich", "excitatory": 0.8}, n=100)
    exc, inh = slice(0, 80), slice(80, 100)
    assert torch.all(g.a[exc] == 0.02) and torch.all(g.d[exc] <= 8.0) and torch.all(g.c[exc] >= -65.0)
    assert torch.all(g.a[inh] >= 0.02) and torch.all(g.a[inh] <= 0.1) and torch.all(g.d[inh] == 2.0)
    with pytest.raises(ConfigError) as e:
        NeuronModel.build({"type": "izhikevich", "cell": "xx"}, key="g")
    assert "rs" in str(e.value)


def test_hodgkin_huxley_fires_above_rheobase_not_below():
    rates = fi_curve({"type": "hh"}, [2.0, 10.0], time=200.0, dt=1.0)
    assert rates[0] == 0.0            # below rheobase: subthreshold response only
    assert 50.0 < rates[1] < 120.0    # repetitive firing (about 70 Hz at 10 uA/cm^2)


def test_adex_rheobase_matches_formula():
    g = build({"type": "adex"})
    rheo = g.rheobase()
    assert rheo == pytest.approx((30 + 4) * (-50.4 + 70.6 - 2 + 2 * math.log(34 / 30)))
    rates = fi_curve({"type": "adex"}, [0.9 * rheo, 1.2 * rheo], time=1000.0)
    assert rates[0] == 0.0 and rates[1] > 0.0
    s, _ = drive(build({"type": "adex"}), 2 * rheo, 500)
    i = isis(s)
    assert i[0] < i[-1]  # adaptation current w lengthens the intervals


def test_glif_threshold_jumps_at_a_spike_and_decays():
    g = build({"type": "glif", "b_s": 0.05})
    g.reset_state(1)
    assert g.theta_s.item() == pytest.approx(0.1)  # SPAIC's initial state
    assert g(torch.full((1, 1), 100.0)).item() == 1.0
    assert g.theta_s.item() == pytest.approx(0.1 * (1 - 0.05) + 0.2)  # Euler decay, then the jump
    g(torch.zeros(1, 1))
    assert g.theta_s.item() == pytest.approx((0.1 * 0.95 + 0.2) * 0.95)
    # the spike-induced threshold slows firing
    fast, _ = drive(build({"type": "glif", "b_s": 0.005, "delta_theta_s": 0.0}), 3.0, 300)
    slow, _ = drive(build({"type": "glif", "b_s": 0.005}), 3.0, 300)
    assert 0 < slow.sum() < fast.sum()


def test_srm0_escape_noise_probability():
    torch.manual_seed(0)
    g = build({"type": "srm0", "tc_decay": 1e9, "rho_0": 0.1, "d_thresh": 5.0}, n=20000)
    for v in (-60.0, -50.0, -45.0):
        g.reset_state(1)
        g.v.fill_(v)
        frac = g(torch.zeros(1, 20000)).mean().item()
        p = 1 - math.exp(-0.1 * math.exp((v + 50.0) / 5.0))
        assert frac == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / 20000) + 1e-3)


def test_csrm_is_the_kernel_convolution():
    g = build({"type": "csrm", "thresh": 1e6, "tc_decay": 1e9, "tau": 4.0, "response_kernel": "alpha"})
    g.reset_state(1)
    vs = []
    for k in range(15):
        g(torch.full((1, 1), 3.0 if k in (0, 2) else 0.0))
        vs.append(g.v.item() + 65.0)
    eps = lambda t: t * math.exp(-t / 4.0) / 16.0 if 0 <= t < 20 else 0.0  # noqa: E731
    # cumulative: v_k = sum_{m <= k} (3 eps(m) + 3 eps(m - 2))
    expected = [sum(3 * eps(m) + 3 * (eps(m - 2) if m >= 2 else 0) for m in range(k + 1)) for k in range(15)]
    assert vs == pytest.approx(expected, abs=1e-4)


def test_csrm_refractory_kernel_after_spike():
    g = build({"type": "csrm", "tc_decay": 1e9, "reset_const": 50.0, "tau": 2.0})
    g.reset_state(1)
    assert g(torch.full((1, 1), 100.0)).item() == 1  # exponential eps(0) = 1/tau: +50 mV
    v0 = g.v.item()
    g(torch.zeros(1, 1))
    # next step: eta(0) = -50 from the spike; input history adds 100 eps(1)
    assert g.v.item() == pytest.approx(v0 - 50.0 + 100 * math.exp(-0.5) / 2.0, abs=1e-3)


def test_meanfield_relaxes_and_cann_normalises():
    g = build({"type": "meanfield", "tau": 4.0, "rho": 0.5})
    _, v = drive(g, 2.0, 30)
    assert v[:, 0, 0].tolist() == pytest.approx([1.0 * (1 - 0.75 ** k) for k in range(1, 31)], abs=1e-5)
    c = build({"type": "cann_field", "tau": 1.0, "rho": 0.5, "k": 0.1}, n=3)
    c.reset_state(1)
    r = c(torch.tensor([[2.0, 4.0, -2.0]]))  # u = rho x in one step (dt = tau)
    u2 = torch.tensor([1.0, 4.0, 0.0])
    assert r[0].tolist() == pytest.approx((u2 / (1 + 0.1 * 0.5 * u2.sum())).tolist())


def test_nonspiking_lif_never_spikes_and_follows_psp():
    g = build({"type": "nonspiking_lif", "tau_p": 4.0, "tau_q": 1.0, "tau_m": 1.0})
    s, v = drive(g, 1.0, 50)
    assert s.sum() == 0 and v[-1].item() > 0


def test_integer_lif_matches_integer_reference_and_float_lif():
    g = build({"type": "lif_int", "decay_shift": 5, "refrac": 0.0})
    s, v = drive(g, 0.8, 200)
    V, ref = -65000, []
    for _ in range(200):
        V = V - ((V + 65000) >> 5) + 800
        ref.append(V >= -52000)
        V = -65000 if V >= -52000 else V
    assert s.flatten().bool().tolist() == ref
    assert g.V.dtype == torch.int32
    # close to a float LIF with the effective time constant
    f = build({"type": "lif", "tc_decay": g.effective_tc, "refrac": 0.0})
    assert abs(drive(f, 0.8, 200)[0].sum().item() - s.sum().item()) <= 1


def test_integer_diehl_cook_theta_counts():
    g = build({"type": "diehl_cook_int", "theta_plus": 0.05, "one_spike": False}, n=3)
    g.train()
    g.reset_state(2)
    g(torch.tensor([[20.0, 0.0, 20.0], [20.0, 0.0, 0.0]]))
    assert g.theta.tolist() == [100, 0, 50]


# -- trainable / gradient-style nodes ----------------------------------------------------------

def test_exp_euler_lif_is_exact_for_constant_input():
    g = build({"type": "exp_euler_lif", "tau": 5.0, "v_threshold": 100.0})
    _, v = drive(g, 0.5, 20)
    assert v[:, 0, 0].tolist() == pytest.approx([0.5 * (1 - math.exp(-k / 5)) for k in range(1, 21)], abs=1e-6)


def test_lif_ref_adds_the_refractory_period():
    base = {"tau": 5.0, "spk_reset": "hard"}
    s_lif, _ = drive(build({"type": "exp_euler_lif", **base}), 2.0, 200)
    s_ref, _ = drive(build({"type": "lif_ref", "tau_ref": 5.0, **base}), 2.0, 200)
    (i_lif,), (i_ref,) = set(isis(s_lif)), set(isis(s_ref))
    # held for the 4 steps with t - t_spike < 5, then it integrates again from the reset
    assert i_ref == i_lif + 4


def test_alif_rate_adapts_under_constant_input():
    s, _ = drive(build({"type": "alif", "tau_a": 100.0, "beta": 0.5}), 1.5, 400)
    i = isis(s)
    assert i[0] < i[-1]
    s_lif, _ = drive(build({"type": "exp_euler_lif"}), 1.5, 400)
    assert len(set(isis(s_lif))) == 1 and s.sum() < s_lif.sum()
    # beta = 0: no adaptation, identical to exp_euler_lif
    assert torch.equal(drive(build({"type": "alif", "beta": 0.0}), 1.5, 400)[0], s_lif)


def test_hard_reset_stops_the_gradient_of_v():
    g = NeuronModel.build({"type": "exp_euler_lif", "spk_reset": "hard", "detach_reset": True, "n": 1})
    x = torch.full((1, 1), 10.0, requires_grad=True)
    g.reset_state(1)
    s = g(x)
    assert s.item() == 1 and g.v.item() == 0.0
    (grad,) = torch.autograd.grad(g.v.sum(), x)
    # v - stop_grad(v - v_reset) s keeps dv/dx of the charge: (1 - exp(-dt/tau)) R
    assert grad.item() == pytest.approx(1 - math.exp(-1 / 5))


def test_clif_psp_kernel_and_peak_normalisation():
    g = build({"type": "clif", "v_threshold": 100.0, "tau_p": 12.0, "tau_q": 8.0})
    g.reset_state(1)
    vs = []
    for k in range(60):
        g(torch.full((1, 1), 1.0 if k == 0 else 0.0))
        vs.append(g.v.item())
    bp, bq = math.exp(-1 / 12), math.exp(-1 / 8)
    assert vs == pytest.approx([g.v0 * (bp ** k - bq ** k) for k in range(60)], abs=1e-5)
    t_peak = math.log(12 / 8) * 12 * 8 / (12 - 8)
    assert g.v0 * (math.exp(-t_peak / 12) - math.exp(-t_peak / 8)) == pytest.approx(1.0)


def test_aclif_adapts_relative_to_clif():
    s_c, _ = drive(build({"type": "clif"}), 0.2, 400)
    s_a, _ = drive(build({"type": "aclif", "beta_adaptive": 0.5}), 0.2, 400)
    assert 0 < s_a.sum() < s_c.sum()


def trainable_types():
    return sorted(n for n, c in NeuronModel.registry.items() if issubclass(c, TrainableNode))


@pytest.mark.parametrize("name", trainable_types())
def test_multi_step_equals_single_step(name):
    torch.manual_seed(0)
    x = (torch.rand(12, 3, 4) * 1.5).requires_grad_(True)
    a = NeuronModel.build({"type": name, "n": 4})
    b = NeuronModel.build({"type": name, "n": 4})
    b.load_state_dict(a.state_dict())
    a.reset_state(3)
    out_multi = a.forward_multi(x)
    b.reset_state(3)
    out_single = torch.stack([b(x[t]) for t in range(x.shape[0])])
    assert torch.equal(out_multi, out_single)
    w = torch.linspace(0.1, 1.0, out_multi.numel()).view_as(out_multi)
    g_multi, = torch.autograd.grad((out_multi * w).sum() + a.v.sum(), x)
    g_single, = torch.autograd.grad((out_single * w).sum() + b.v.sum(), x)
    assert torch.allclose(g_multi, g_single)


# -- config ------------------------------------------------------------------------------------

def test_wrong_parameter_lists_the_models_parameters():
    with pytest.raises(ConfigError) as e:
        NeuronModel.build({"type": "izhikevich", "tresh": 30}, key="model.network.groups.Ai")
    msg = str(e.value)
    assert e.value.key == "model.network.groups.Ai.tresh" and "Did you mean 'thresh'" in msg
    for p in ("a", "b", "c", "d", "cell", "excitatory", "thresh"):
        assert p in msg.split("Allowed: ")[1].split(", ")
