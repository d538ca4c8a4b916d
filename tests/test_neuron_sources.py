"""Every ported neuron model against its source's equations, step by step.

Each case drives a model with fixed random inputs (batch 2, 3 neurons, float64) at dt = 1 and at
a second dt, and compares spikes (exactly) and the membrane potential after each step with a
reference written out here in numpy from the source's own update rule (SPAIC 0.6.3's
spaic/Neuron/Neuron.py operation lists, brainstate's / BrainPy's neuron classes, snngrow's
LIFNode/IFNode, BindsNET's nodes), never by calling snnrun's step. The references keep state
the way the source does (e.g. brainstate resets at the start of the next step): ``v`` compared
is the value after the step's reset, as snnrun keeps it.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from snnrun.components.neurons import NeuronModel

T, B, N = 40, 2, 3


def run_model(node: dict, dt: float, xs: np.ndarray, state: dict | None = None):
    """Spikes and v (T, B, N) of a snnrun group driven by xs; ``state`` overrides initial state."""
    g = NeuronModel.build({**node, "n": N}, key="g", dt=dt).double()
    g.reset_state(B)
    for name, value in (state or {}).items():
        setattr(g, name, torch.as_tensor(value, dtype=getattr(g, name).dtype))
    spikes, vs = [], []
    with torch.no_grad():
        for x in xs:
            spikes.append(g(torch.from_numpy(x)).double().numpy().copy())
            vs.append(g.v.double().numpy().copy())
    return np.array(spikes), np.array(vs)


def inputs(low: float, high: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, (T, B, N))


def psp_v0(tau_a: float, tau_b: float) -> float:
    b = tau_a / tau_b
    return (1 / (b - 1)) * b ** (b / (b - 1))


def q16(x):
    return np.round(np.clip(x + 2.0 ** 15, 0, 2.0 ** 16)) - 2.0 ** 15


# --------------------------------------------------------------------------- SPAIC references
# (one step each: returns the spike; state in a dict; `gt` is SPAIC's threshold op, torch.gt)

def gt(v, th):
    return (v > th).astype(float)


def ref_spaic_lif(st, x, dt, tau_m=8.0, v_th=1.0):
    vt = math.exp(-dt / tau_m) * st["v"] + x
    o = gt(vt, v_th)
    st["v"] = vt * (o == 0)
    return o


def ref_spaic_if(st, x, dt, constant_decay=0.0, v_th=1.0):
    vt = st["v"] + x - constant_decay
    o = gt(vt, v_th)
    st["v"] = vt - vt * o
    return o


def ref_spaic_ifb(st, x, dt, bias=0.0, v_th=1.0):
    vt = st["v"] + (x + bias)
    o = gt(vt, v_th)
    st["v"] = vt - vt * o
    return o


def ref_spaic_nonspikingifb(st, x, dt, bias=0.0):
    st["v"] = st["v"] + (x + bias)
    return np.zeros_like(x)


def ref_spaic_lifm(st, x, dt, tau_m=10.0, tau_p=1.0, v_th=1.0):
    st["i"] = math.exp(-dt / tau_p) * st["i"] + x
    vt = st["v"] * math.exp(-dt / tau_m) + st["i"]
    o = gt(vt, v_th)
    st["v"] = vt - vt * o
    return o


def ref_spaic_qlif(st, x, dt, tau_m=20.0, v_th=1.0):
    st["e"] = math.exp(-dt / tau_m) * st["e"] + v_th * st["o"]
    st["v"] = x - st["e"]
    st["o"] = gt(st["v"], v_th)
    return st["o"]


def ref_spaic_clif(st, x, dt, tau_m=20.0, tau_p=12.0, tau_q=8.0, v_th=1.0):
    i = psp_v0(tau_p, tau_q) * x
    st["m"] = math.exp(-dt / tau_p) * st["m"] + i
    st["s"] = math.exp(-dt / tau_q) * st["s"] + i
    st["v"] = st["m"] - st["s"] - st["e"]
    o = gt(st["v"], v_th)
    st["e"] = math.exp(-dt / tau_m) * st["e"] + v_th * o
    return o


def ref_spaic_aclif(st, x, dt, tau_m=20.0, tau_p=12.0, tau_q=8.0, tau_a=2000.0, beta_adaptive=0.1, v_th=1.0):
    st["a"] = math.exp(-dt / tau_a) * st["a"] + st["o"]
    i = psp_v0(tau_p, tau_q) * x
    st["m"] = math.exp(-dt / tau_p) * st["m"] + i
    st["s"] = math.exp(-dt / tau_q) * st["s"] + i
    st["v"] = st["m"] - st["s"] - (beta_adaptive * st["a"] + st["e"])
    st["o"] = gt(st["v"], v_th)
    st["e"] = math.exp(-dt / tau_m) * st["e"] + v_th * st["o"]
    return st["o"]


def ref_spaic_clif2k(st, x, dt, tau_m=20.0, tau_s=12.0, v_th=1.0):
    i = psp_v0(tau_m, tau_s) * x
    st["m"] = math.exp(-dt / tau_m) * st["m"] + i
    st["s"] = math.exp(-dt / tau_s) * st["s"] + i
    st["v"] = st["m"] - st["s"] - st["e"]
    o = gt(st["v"], v_th)
    st["e"] = math.exp(-dt / tau_m) * st["e"] + v_th * o
    return o


def ref_spaic_pclif(st, x, dt, beta_m=0.9, beta_s=0.6, v_th=1.0):
    st["m"] = beta_m * (st["m"] + x)
    st["s"] = beta_s * (st["s"] + x)
    st["e"] = beta_m * st["e"] + v_th * st["o"]
    st["v"] = st["m"] - st["s"] - st["e"]
    st["o"] = gt(st["v"], v_th)
    return st["o"]


def ref_spaic_slif(st, x, dt, tau_m=20.0, tau_q=8.0, v_th=1.0):
    i = psp_v0(tau_m, tau_q) * x
    st["m"] = math.exp(-dt / tau_m) * st["m"] + i - 5.0 * v_th * st["o"]  # time channel Ot = 0
    st["s"] = math.exp(-dt / tau_q) * st["s"] + i
    st["v"] = st["m"] - st["s"]
    st["o"] = gt(st["v"], v_th)
    return st["o"]


def ref_spaic_selif(st, x, dt, tau_m=12.0, tau_p=6.0, tau_q=2.0, tau_r=16.0, v_th=1.0):
    i = psp_v0(tau_p, tau_q) * x
    st["m"] = math.exp(-dt / tau_p) * st["m"] + i
    st["s"] = math.exp(-dt / tau_q) * st["s"] + i
    br = math.exp(-dt / tau_r)
    expv = 2.0 * np.clip(st["v"], -10, v_th) ** 2
    st["r"] = br * st["r"] + (1 - br) * st["v"] + 10.0 * st["o"]
    dv = (expv - st["v"] + (st["m"] - st["s"]) + 0.5 - 0.5 * st["r"]) / tau_m
    st["v"] = st["v"] + dv * dt - 1.0 * v_th * st["o"]
    st["o"] = gt(st["v"], v_th)
    return st["o"]


def ref_spaic_izh(st, x, dt, a=0.02, b=0.2, d=8.0, v_th=30.0, v_reset=-65.0):
    v, u = st["v"], st["u"]
    temp_v = v + dt * ((0.04 * v + 5) * v + 140 - u + x)
    temp_u = u + a * (b * v - u)
    o = gt(temp_v, v_th)
    st["v"] = o * (v_reset - temp_v) + temp_v
    st["u"] = d * o + temp_u
    return o


def ref_spaic_aeif(st, x, dt, c=281.0, g_l=30.0, e_l=-70.6, v_th=-50.4, delta_t=2.0, tau_w=144.0, a=4.0,
                   b=0.0805, v_spk=20.0):
    v, u = st["v"], st["u"]
    dv = v - e_l
    exp_term = delta_t * np.exp((v - v_th) / delta_t)
    vt = dt / c * (g_l * (exp_term - dv) - u + x) + v
    ut = dt / tau_w * (a * dv - u) + u
    o = gt(vt, v_spk)
    st["v"] = e_l * o + (vt - vt * o)
    st["u"] = b * o + ut
    return o


def ref_spaic_constantcurrentlif(st, x, dt, tau_m=20.0, v_th=1.0, v_reset=0.0):
    vt = st["v"] + dt / tau_m * (v_reset - st["v"] + x)  # SPAIC's docstring equation (Ureset)
    o = gt(vt, v_th)
    st["v"] = np.where(o > 0, v_reset, vt)
    return o


def ref_spaic_lifint(st, x, dt, thresh=1.0, decay=1.0, v_reset=0.0, v_rest=0.0, reset_refrac=0):
    v = decay * (st["v"] - v_rest) + v_rest
    x = np.where(st["refrac"] > 0, 0.0, x)
    st["refrac"] = st["refrac"] - 1
    v = v + x
    s = v >= thresh
    st["refrac"] = np.where(s, reset_refrac, st["refrac"])
    st["v"] = np.where(s, v_reset, v)
    return s.astype(float)


def ref_spaic_diehlandcook(st, x, dt, thresh=213, max_threshold=4915, decay=1013, shift_voltage=10,
                           weight_sum_coef=154, shift_weight_sum_coef=10, reset_refrac=5, thresh_plus=66,
                           lbound=-32767):
    x_ = np.clip(np.trunc(x).astype(np.int64), -32767, 32767)
    st["th"] = st["th"] >> (st["th"] > max_threshold).astype(np.int64)
    v = ((decay * (st["V"] - 0)) >> shift_voltage) + 0
    v = v + (st["refrac"] <= 0).astype(np.int64) * ((x_ * weight_sum_coef) >> shift_weight_sum_coef)
    st["refrac"] = st["refrac"] - 1
    s = v > st["th"]
    st["refrac"] = np.where(s, reset_refrac, st["refrac"])
    v = np.where(s, 0, v)
    st["th"] = st["th"] + thresh_plus * s.astype(np.int64).sum(0)
    st["V"] = np.maximum(v, lbound)
    st["v"] = st["V"].astype(float)
    return s.astype(float)


def ref_spaic_lifstdp_ex(st, x, dt, v_th=-52.0, v_reset=-60.0, v_rest=-65.0, th_inc=0.05,
                         decay_th=math.exp(-1 / 1e7), decay_v=math.exp(-1 / 100)):
    vt = decay_v * (st["v"] - v_rest) + v_rest + x
    theta = decay_th * st["theta"]
    o = gt(vt, v_th + theta)
    st["v"] = v_reset * o + (vt - vt * o)
    st["theta"] = theta + th_inc * o.sum(0)  # one theta per neuron: spikes summed over the batch
    return o


def ref_spaic_alifstdp_ex(st, x, dt, v_th=2.0, v_reset=2.0, v_rest=0.0, th_inc=0.001,
                          decay_th=math.exp(-1 / 1e5), decay_v=math.exp(-1 / 100)):
    vt = decay_v * (st["v"] - v_rest) + v_rest + x
    theta = decay_th * st["theta"]
    vth_theta = v_th + theta
    o = gt(vt, vth_theta)
    st["v"] = vt - v_reset * o
    st["theta"] = theta + (th_inc * o * vth_theta).sum(0)
    return o


def ref_spaic_lifstdp_ih(st, x, dt, v_th=-40.0, v_reset=-45.0, v_rest=-60.0, decay_v=math.exp(-1 / 10)):
    vt = decay_v * (st["v"] - v_rest) + v_rest + x
    o = gt(vt, v_th)
    st["v"] = v_reset * o + (vt - vt * o)
    return o


def ref_spaic_glif(st, x, dt, c=60.0, r=2.0, e_l=0.0, theta_inf=1.0, f_v=0.1, delta_v=0.05, b_s=0.02,
                   delta_theta_s=0.2, k_1=0.8, k_2=0.6, delta_i_1=0.1, delta_i_2=0.1, a_v=0.12, b_v=0.3):
    # SPAIC's operation list with its membrane variables dt / value (C, -1/b_s, -1/k_j, 1/a_v, -1/b_v)
    i1t = -dt * k_1 * st["i1"] + st["i1"]
    i2t = -dt * k_2 * st["i2"] + st["i2"]
    dv = st["v"] - e_l
    vtemp = dt / c * (dv * (-1 / r) + (i1t + i2t + x)) + st["v"]
    theta_st = -dt * b_s * st["theta_s"] + st["theta_s"]
    theta_temp = dt * a_v * dv + st["theta_v"]
    st["theta_v"] = -dt * b_v * st["theta_v"] + theta_temp
    o = gt(vtemp, st["theta_v"] + theta_st + theta_inf)
    vreset = (f_v * (vtemp - e_l) + e_l - delta_v) - vtemp
    st["v"] = vreset * o + vtemp
    st["theta_s"] = delta_theta_s * o + theta_st
    st["i1"] = (1.0 * i1t + delta_i_1) * o + i1t * (1 - o)
    st["i2"] = (1.0 * i2t + delta_i_2) * o + i2t * (1 - o)
    return o


def ref_spaic_plif(st, x, dt, tau_m=2.0, v_th=1.0):
    k = 1.0 / (1.0 + math.exp(math.log(tau_m - 1.0)))  # sigmoid(w), w = -ln(tau_m - 1)
    vt = k * (x - st["v"]) + st["v"]
    o = gt(vt, v_th)
    st["v"] = (st["o"] == 0) * vt  # SPAIC's reset op with O of the last step
    st["o"] = o
    return o


def ref_spaic_hh(st, x, dt, v_th=1.0):
    v65 = st["v"] + 0.0
    vam = 25.0 - v65
    a_m = 0.1 * (vam / (np.exp(vam / 10.0) - 1.0))
    b_m = 4.0 * np.exp((0.0 - v65) / 18.0)
    van = 10.0 - v65
    a_n = 0.01 * (van / (np.exp(van / 10.0) - 1.0))
    b_n = 0.125 * np.exp((0.0 - v65) / 80.0)
    a_h = 0.07 * np.exp((0.0 - v65) / 20.0)
    b_h = 1.0 / (np.exp((30.0 - v65) / 10.0) + 1.0)
    st["m"] = dt * (a_m * (1 - st["m"]) - b_m * st["m"]) + st["m"]
    st["n"] = dt * (a_n * (1 - st["n"]) - b_n * st["n"]) + st["n"]
    st["h"] = dt * (a_h * (1 - st["h"]) - b_h * st["h"]) + st["h"]
    ik = (120.0 * st["m"] ** 3 * st["h"] * (st["v"] - 120.0) + 36.0 * st["n"] ** 4 * (st["v"] + 12.0)
          + 0.3 * (st["v"] - 10.6))
    st["v"] = st["v"] + (x - dt * ik)
    return gt(st["v"], v_th)


def ref_darwin_clif(st, x, dt, tau_m=12.0, tau_s=8.0, v_th=16384.0):
    p0 = np.round(np.exp(-dt / tau_m) * 2.0 ** 8) / 2.0 ** 8
    p4 = np.round(np.exp(-dt / tau_s) * 2.0 ** 8) / 2.0 ** 8
    st["i"] = q16(st["i"] * p4 + x)
    v = q16(st["v"] * p0 + st["i"] + 0.0)
    o = gt(v, v_th)
    st["v"] = v - v * o
    return o


def ref_darwin_alif(st, x, dt, tau_m=12.0, tau_s=8.0, v_th=16384.0):
    p0 = np.round(np.exp(-dt / tau_m) * 2.0 ** 8) / 2.0 ** 8
    p4 = np.round(np.exp(-dt / tau_s) * 2.0 ** 8) / 2.0 ** 8
    st["i"] = q16(st["i"] * p4 + x)
    v = q16(st["v"] * p0 + st["i"] + 0.0)
    o = gt(v, st["th"])
    st["v"] = v - v * o
    st["th"] = 0.999 * st["th"] + np.round(v_th * 0.001) + o * np.round(v_th * 0.2)
    return o


def ref_darwin_random(st, x, dt, tau_m=10.0, bias=0.0, v_th=15000.0):
    p0 = np.round(np.exp(-dt / tau_m) * 2.0 ** 16) / 2.0 ** 16
    v = p0 * st["v"] + np.round(0.0) + np.round(bias)  # std = 0: no noise; the input is not used
    o = gt(v, v_th)
    st["v"] = v - v * o
    return o


# --------------------------------------------------------------------------- brainstate / snngrow / BindsNET / snnrun

def exp_euler(v, target, dt, tau):
    return target + (v - target) * math.exp(-dt / tau)


def ref_brainstate_lif(st, x, dt, tau=5.0, r=1.0, v_threshold=1.0, v_reset=0.0, v_rest=0.0, spk_reset="soft"):
    # brainstate.nn.LIF.update: reset by last step's spike, exponential Euler, spike V >= V_th
    last = st["v_raw"]
    spk = (last >= v_threshold).astype(float)
    v_th = v_threshold if spk_reset == "soft" else last
    v = last - (v_th - v_reset) * spk
    st["v_raw"] = exp_euler(v, v_rest + r * x, dt, tau)
    s = (st["v_raw"] >= v_threshold).astype(float)
    st["v"] = st["v_raw"] - ((v_threshold if spk_reset == "soft" else st["v_raw"]) - v_reset) * s
    return s


def ref_brainstate_if(st, x, dt, tau=5.0, r=1.0, v_threshold=1.0):
    return ref_brainstate_lif(st, x, dt, tau=tau, r=r, v_threshold=v_threshold)


def ref_brainstate_alif(st, x, dt, tau=5.0, tau_a=100.0, beta=0.1, v_threshold=1.0, v_reset=0.0):
    last_v, last_a = st["v_raw"], st["a_raw"]
    spk = (last_v - v_threshold - beta * last_a >= 0).astype(float)
    v = last_v - (v_threshold - v_reset) * spk
    a = last_a + spk
    st["v_raw"] = exp_euler(v, x, dt, tau)
    st["a_raw"] = a * math.exp(-dt / tau_a)
    s = (st["v_raw"] - v_threshold - beta * st["a_raw"] >= 0).astype(float)
    st["v"] = st["v_raw"] - (v_threshold - v_reset) * s
    return s


def ref_brainstate_lifref(st, x, dt, tau=5.0, tau_ref=5.0, v_threshold=1.0, v_reset=0.0, spk_reset="soft"):
    # time is k dt (exact: Fractions), refractory while t - t_last < tau_ref; snnrun silences a
    # held neuron (brainstate could fire again from a soft-reset v above threshold: not reached here)
    st["k"] += 1
    last = st["v_raw"]
    spk = (last >= v_threshold).astype(float) * (1 - st["held"])
    v = last - ((v_threshold if spk_reset == "soft" else last) - v_reset) * spk
    held = np.vectorize(lambda kl: (st["k"] - kl) * Fraction(str(dt)) < Fraction(str(tau_ref)))(st["k_last"])
    st["held"] = held.astype(float)
    st["v_raw"] = np.where(held, v, exp_euler(v, x, dt, tau))
    s = ((st["v_raw"] >= v_threshold) & ~held).astype(float)
    st["k_last"] = np.where(s > 0, st["k"], st["k_last"])
    st["v"] = st["v_raw"] - ((v_threshold if spk_reset == "soft" else st["v_raw"]) - v_reset) * s
    return s


def ref_snngrow_lif(st, x, dt, tau=2.0, v_threshold=1.0):
    # snngrow LIFNode (decay_input, v_reset 0): v = v + (x - v) / tau, with 1/tau -> dt/tau
    v = st["v"] + (x - st["v"]) * dt / tau
    s = (v >= v_threshold).astype(float)
    st["v"] = v * (1 - s)
    return s


def ref_snngrow_if(st, x, dt, v_threshold=1.0):
    v = st["v"] + x
    s = (v >= v_threshold).astype(float)
    st["v"] = v * (1 - s)
    return s


def ref_if_soft_reset(st, x, dt, v_th=1.0, constant_decay=0.0):
    st["v"] = st["v"] + x - constant_decay
    s = (st["v"] >= v_th).astype(float)
    st["v"] = st["v"] - v_th * s
    return s


def ref_bindsnet_adaptive_lif(st, x, dt, rest=-65.0, reset=-65.0, thresh=-52.0, refrac=5.0, tc_decay=100.0,
                              theta_plus=0.05, tc_theta_decay=1e7):
    # BindsNET AdaptiveLIFNodes.forward (training): decay v and theta, integrate unless
    # refractory, count down, fire at v >= thresh + theta, reset, theta += theta_plus sum_batch(s)
    st["v"] = math.exp(-dt / tc_decay) * (st["v"] - rest) + rest
    st["theta"] = st["theta"] * math.exp(-dt / tc_theta_decay)
    st["v"] = st["v"] + np.where(st["refrac"] > 0, 0.0, x)
    st["refrac"] = st["refrac"] - dt
    s = st["v"] >= thresh + st["theta"]
    st["refrac"] = np.where(s, refrac, st["refrac"])
    st["v"] = np.where(s, reset, st["v"])
    st["theta"] = st["theta"] + theta_plus * s.sum(0)
    return s.astype(float)


def ref_adex(st, x, dt, c_m=281.0, g_l=30.0, e_l=-70.6, v_t=-50.4, delta_t=2.0, tau_w=144.0, a=4.0, b=80.5,
             v_reset=-70.6, v_peak=20.0, max_substep=0.1):
    n = max(1, math.ceil(dt / max_substep - 1e-9))
    h, fired = dt / n, np.zeros_like(x)
    for _ in range(n):
        v, w = st["v"], st["w"]
        dv = (-g_l * (v - e_l) + g_l * delta_t * np.exp((np.minimum(v, v_peak) - v_t) / delta_t) - w + x) / c_m
        dw = (a * (v - e_l) - w) / tau_w
        v, w = v + h * dv, w + h * dw
        now = v >= v_peak
        st["v"], st["w"] = np.where(now, v_reset, v), np.where(now, w + b, w)
        fired = np.maximum(fired, now)
    return fired.astype(float)


def zeros():
    return np.zeros((B, N))


def full(value):
    return np.full((B, N), float(value))


V_DARWIN = np.array([[12000.0, 14000.0, 15500.0], [10000.0, 13000.0, -200.0]])

# (snnrun node, reference, reference params, initial reference state, input range, extra snnrun state)
CASES = {
    "spaic.lif": ({}, ref_spaic_lif, {}, {"v": zeros()}, (0, 0.5)),
    "spaic.if": ({"constant_decay": 0.05}, ref_spaic_if, {"constant_decay": 0.05}, {"v": zeros()}, (0, 0.5)),
    "spaic.ifsoftreset": ({}, ref_spaic_if, {}, {"v": zeros()}, (0, 0.5)),
    "spaic.ifb": ({"bias": 0.1}, ref_spaic_ifb, {"bias": 0.1}, {"v": zeros()}, (0, 0.4)),
    "spaic.nonspikingifb": ({"bias": -0.1}, ref_spaic_nonspikingifb, {"bias": -0.1}, {"v": zeros()}, (0, 0.4)),
    "spaic.lifm": ({}, ref_spaic_lifm, {}, {"v": zeros(), "i": zeros()}, (0, 0.5)),
    "spaic.plif": ({}, ref_spaic_plif, {}, {"v": zeros(), "o": zeros()}, (0, 3.0)),
    "spaic.hh": ({}, ref_spaic_hh, {}, {"v": zeros(), "m": full(0.5), "n": full(0.5), "h": full(0.06)}, (0, 3.0)),
    "spaic.qlif": ({}, ref_spaic_qlif, {}, {"e": zeros(), "o": zeros()}, (0, 2.0)),
    "clif": ({}, ref_spaic_clif, {}, {"m": zeros(), "s": zeros(), "e": zeros()}, (0, 1.5)),
    "aclif": ({}, ref_spaic_aclif, {}, {"m": zeros(), "s": zeros(), "e": zeros(), "a": zeros(), "o": zeros()}, (0, 1.5)),
    "spaic.clif2k": ({}, ref_spaic_clif2k, {}, {"m": zeros(), "s": zeros(), "e": zeros()}, (0, 1.5)),
    # the learned decays are float32 parameters: the reference takes their float32 values
    "spaic.pclif": ({}, ref_spaic_pclif, {"beta_m": float(np.float32(0.9)), "beta_s": float(np.float32(0.6))}, {"m": zeros(), "s": zeros(), "e": zeros(), "o": zeros()}, (0, 4.0)),
    "spaic.slif": ({}, ref_spaic_slif, {}, {"m": zeros(), "s": zeros(), "o": zeros()}, (0, 1.0)),
    "spaic.selif": ({}, ref_spaic_selif, {}, {"v": zeros(), "m": zeros(), "s": zeros(), "r": zeros(), "o": zeros()},
                    (-0.5, 0.5)),
    "spaic.izh": ({}, ref_spaic_izh, {}, {"v": full(-65.0), "u": full(1.0)}, (0, 20.0)),
    "spaic.aeif": ({}, ref_spaic_aeif, {}, {"v": full(-70.6), "u": zeros()}, (300, 1500)),
    "constant_current_lif": ({"v_reset": 0.2}, ref_spaic_constantcurrentlif, {"v_reset": 0.2}, {"v": zeros()},
                             (0.5, 2.5)),
    "spaic.lifint": ({"decay": 0.9, "v_rest": 0.1, "v_reset": -0.2, "reset_refrac": 2}, ref_spaic_lifint,
                     {"decay": 0.9, "v_rest": 0.1, "v_reset": -0.2, "reset_refrac": 2},
                     {"v": zeros(), "refrac": zeros()}, (0, 0.6)),
    "spaic.diehlandcook": ({"max_threshold": 400}, ref_spaic_diehlandcook, {"max_threshold": 400},
                           {"V": np.zeros((B, N), np.int64), "refrac": np.zeros((B, N), np.int64),
                            "th": np.full(N, 213, np.int64)}, (-200, 3000)),
    "spaic.lifstdp_ex": ({}, ref_spaic_lifstdp_ex, {}, {"v": full(-65.0), "theta": np.zeros(N)}, (0, 5.0)),
    "spaic.alifstdp_ex": ({}, ref_spaic_alifstdp_ex, {}, {"v": zeros(), "theta": np.zeros(N)}, (0, 0.5)),
    "spaic.lifstdp_ih": ({}, ref_spaic_lifstdp_ih, {}, {"v": full(-60.0)}, (0, 8.0)),
    "glif": ({}, ref_spaic_glif, {}, {"v": zeros(), "theta_s": full(0.1), "theta_v": full(0.2), "i1": full(0.08),
                                      "i2": full(0.06)}, (0, 20.0)),
    "spaic.darwin_clif": ({}, ref_darwin_clif, {}, {"v": V_DARWIN.copy(), "i": zeros()}, (0, 1500),
                          {"v": V_DARWIN}),
    "spaic.darwin_alif": ({}, ref_darwin_alif, {}, {"v": V_DARWIN.copy(), "i": zeros(), "th": full(16384.0)},
                          (0, 1500), {"v": V_DARWIN}),
    "spaic.darwin_random": ({"bias": 2000.0}, ref_darwin_random, {"bias": 2000.0}, {"v": V_DARWIN.copy()}, (0, 1),
                            {"v": V_DARWIN}),
    "exp_euler_lif": ({"v_rest": 0.3}, ref_brainstate_lif, {"v_rest": 0.3}, {"v_raw": zeros()}, (0, 2.0)),
    "brainstate.lif@hard": ({"spk_reset": "hard"}, ref_brainstate_lif, {"spk_reset": "hard"}, {"v_raw": zeros()},
                            (0, 2.0)),
    "brainstate.if": ({}, ref_brainstate_if, {}, {"v_raw": zeros()}, (0, 2.0)),
    "alif": ({}, ref_brainstate_alif, {}, {"v_raw": zeros(), "a_raw": zeros()}, (0, 2.5)),
    "lif_ref": ({"spk_reset": "hard", "tau": 1.0, "tau_ref": 2.3}, ref_brainstate_lifref,
                {"spk_reset": "hard", "tau": 1.0, "tau_ref": 2.3}, {"v_raw": zeros(), "k": 0, "held": zeros(),
                                                                   "k_last": np.full((B, N), -10 ** 9)}, (0, 3.0)),
    "snngrow.lif": ({}, ref_snngrow_lif, {}, {"v": zeros()}, (0, 2.0)),
    "snngrow.if": ({}, ref_snngrow_if, {}, {"v": zeros()}, (0, 0.6)),
    "if_soft_reset": ({"constant_decay": 0.02}, ref_if_soft_reset, {"constant_decay": 0.02}, {"v": zeros()}, (0, 0.7)),
    "adaptive_lif": ({}, ref_bindsnet_adaptive_lif, {}, {"v": full(-65.0), "theta": np.zeros(N), "refrac": zeros()},
                     (0, 6.0)),
    "adex": ({}, ref_adex, {}, {"v": full(-70.6), "w": zeros()}, (400, 1200)),
}

SECOND_DT = {"lif_ref": 0.1, "adex": 2.0, "spaic.hh": 0.1}
# SPAIC's HH is one forward-Euler step per dt and diverges at dt = 1 (there too): 0.2 and 0.1 ms
FIRST_DT = {"spaic.hh": 0.2}  # lif_ref: the dt where a running t += dt drifted


def reference(case: str, dt: float, xs: np.ndarray):
    node, ref, params, state, _, *_ = CASES[case]
    st = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in state.items()}
    spikes, vs = [], []
    for x in xs:
        spikes.append(ref(st, x, dt, **params))
        vs.append(np.array(st.get("v", np.zeros_like(x)), dtype=float))
    return np.array(spikes), np.array(vs)


@pytest.mark.parametrize("dt_kind", ["dt=1", "other dt"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_model_follows_its_source_step_by_step(case, dt_kind):
    node, _, _, _, (low, high), *extra = CASES[case]
    dt = FIRST_DT.get(case, 1.0) if dt_kind == "dt=1" else SECOND_DT.get(case, 0.5)
    xs = inputs(low, high)
    ref_s, ref_v = reference(case, dt, xs)
    s, v = run_model({"type": case.split("@")[0], **node}, dt, xs, state=extra[0] if extra else None)
    assert ref_s.sum() > 0 or case == "spaic.nonspikingifb", "inputs too weak: the case tests no spike"
    assert ref_s.sum() < ref_s.size, "inputs too strong: every step spikes"
    np.testing.assert_array_equal(s, ref_s)
    np.testing.assert_allclose(v, ref_v, rtol=1e-9, atol=1e-9)


def test_lif_ref_counts_refractory_steps_at_dt_0_1():
    """tau_ref = 0.3 ms at dt = 0.1: held for exactly the 2 steps after each spike, so a neuron
    driven hard fires every 3 steps (time kept as a running sum t += dt lands on either side
    of 0.3 from one spike to the next)."""
    g = NeuronModel.build({"type": "lif_ref", "tau_ref": 0.3, "tau": 0.5, "spk_reset": "hard", "n": 1},
                          key="g", dt=0.1)
    g.reset_state(1)
    with torch.no_grad():
        s = [int(g(torch.full((1, 1), 50.0)).item()) for _ in range(100)]
    t = [i for i, x in enumerate(s) if x]
    assert t[0] == 0 and set(np.diff(t).tolist()) == {3}


def test_darwin_v_starts_uniformly_in_spaics_range():
    torch.manual_seed(0)
    g = NeuronModel.build({"type": "spaic.darwin_alif", "n": 2000}, key="g")
    g.reset_state(1)
    assert -30000 <= g.v.min() < -29000 and 14000 < g.v.max() <= 15000
    g = NeuronModel.build({"type": "spaic.darwin_clif", "n": 4, "v_init": 12000}, key="g")
    g.reset_state(1)
    assert g.v.tolist() == [[12000.0] * 4]
