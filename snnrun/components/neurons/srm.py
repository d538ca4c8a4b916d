"""Spike response models: cumulative SRM with response/refractory kernels, and SRM0 with
escape noise (both after BindsNET's ``CSRMNodes`` / ``SRM0Nodes``)."""

from __future__ import annotations

import torch

from snnrun.errors import ConfigError
from snnrun.components.neurons.base import NeuronModel
from snnrun.components.neurons.integrate_fire import decay_factor


def kernel_values(kind: str, tau: float, t: torch.Tensor) -> torch.Tensor:
    """eps(t) of the cumulative SRM, sampled at lags t (ms)."""
    kernels = {
        "exponential": lambda: torch.exp(-t / tau) / tau,
        "alpha": lambda: t * torch.exp(-t / tau) / tau ** 2,
        "alpha_slayer": lambda: t * torch.exp(1.0 - t / tau) / tau,
        "laplacian": lambda: torch.exp(-torch.abs(t / tau)) / (2.0 * tau),
        "rectangular": lambda: torch.full_like(t, 1.0 / (2.0 * tau)),
        "triangular": lambda: (1.0 - t / tau).clamp_min(0.0) / tau,
    }
    if kind not in kernels:
        raise ConfigError(f"unknown response kernel '{kind}'. Allowed: {', '.join(kernels)}",
                          key="response_kernel")
    return kernels[kind]()


@NeuronModel.register("csrm", source="bindsnet")
class CSRMNodes(NeuronModel):
    """Cumulative spike response model (Gerstner & van Hemmen 1992): every past input and spike
    adds its kernel to the membrane.

    Each step, with the last ``res_window`` ms of input x and ``ref_window`` ms of own spikes s::

        v <- rest + (v - rest) exp(-dt/tc_decay)
             + sum_j eps(j dt) x[t - j] dt  +  sum_j eta(j dt) s[t - 1 - j]
        s  = v >= thresh + theta;  theta as in adaptive_lif (rises by theta_plus, while learning)

    eps is ``response_kernel`` (exponential exp(-t/tau)/tau, alpha, alpha_slayer, laplacian,
    rectangular, triangular) and eta(t) = -reset_const exp(-t/tau) the refractory kernel: there
    is no hard reset, refractoriness is the sum of the eta of all recent spikes. BindsNET decays
    v towards 0; here it decays towards ``rest`` so that a silent neuron stays at rest.
    """

    def __init__(self, n=1, *, rest: float = -65.0, thresh: float = -52.0,
                 response_kernel: str = "exponential", tau: float = 1.0, res_window: float = 20.0,
                 ref_window: float = 10.0, reset_const: float = 50.0, tc_decay: float = 100.0,
                 theta_plus: float = 0.05, tc_theta_decay: float = 1e7, lbound: float | None = None, **kw):
        super().__init__(n, **kw)
        self.rest, self.thresh, self.tau = float(rest), float(thresh), float(tau)
        if not self.tau > 0:
            raise ConfigError(f"tau must be > 0 ms, got {tau}", key="tau")
        self.reset_const, self.theta_plus = float(reset_const), float(theta_plus)
        self.lbound = None if lbound is None else float(lbound)
        self.decay = decay_factor(float(tc_decay), self.dt, "tc_decay")
        self.theta_decay = decay_factor(float(tc_theta_decay), self.dt, "tc_theta_decay")
        n_res, n_ref = (max(1, int(round(w / self.dt))) for w in (res_window, ref_window))
        lags_res = torch.arange(n_res) * self.dt
        lags_ref = torch.arange(n_ref) * self.dt
        self.response_kernel = response_kernel
        # kernels indexed by lag: [0] weighs the newest entry of the history
        self.register_buffer("eps", kernel_values(response_kernel, self.tau, lags_res) * self.dt)
        self.register_buffer("eta", -self.reset_const * torch.exp(-lags_ref / self.tau))
        self.register_buffer("theta", torch.zeros(self.shape))

    def reset_dynamics(self) -> None:
        self.v = self.state_tensor(self.rest)
        self.x_hist = self.state_tensor().unsqueeze(0).repeat(len(self.eps), *([1] * (1 + len(self.shape))))
        self.s_hist = self.state_tensor().unsqueeze(0).repeat(len(self.eta), *([1] * (1 + len(self.shape))))

    def step(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.theta.mul_(self.theta_decay)
        # newest first: shift the windows by one lag
        self.x_hist = torch.cat([x.to(self.dtype).unsqueeze(0), self.x_hist[:-1]])
        view = (-1,) + (1,) * (self.x_hist.dim() - 1)
        drive = (self.eps.view(view) * self.x_hist).sum(0) + (self.eta.view(view) * self.s_hist).sum(0)
        self.v = self.rest + (self.v - self.rest) * self.decay + drive
        fired = self.v >= self.thresh + self.theta
        if self.training:
            self.theta.add_(self.theta_plus * self.batch_sum(fired, dtype=self.theta.dtype))
        s = fired.to(self.dtype)
        self.s_hist = torch.cat([s.unsqueeze(0), self.s_hist[:-1]])
        if self.lbound is not None:
            self.v = self.v.clamp_min(self.lbound)
        return s



@NeuronModel.register("srm0", source="bindsnet")
class SRM0Nodes(NeuronModel):
    """SRM0 with escape noise (Vasilaki et al. 2009, BindsNET's ``SRM0Nodes``): spikes are random.

    Each step::

        v   <- rest + (v - rest) exp(-dt/tc_decay) + eps_0 x      (x ignored while refractory)
        rho  = rho_0 exp((v - thresh) / d_thresh)                  stochastic intensity (1/ms)
        P(s) = 1 - exp(-rho dt)
        v <- reset, refractory for ``refrac`` ms where s

    At v = thresh a neuron fires with probability 1 - exp(-rho_0 dt) per step.
    """

    def __init__(self, n=1, *, thresh: float = -50.0, rest: float = -70.0, reset: float = -70.0,
                 refrac: float = 5.0, tc_decay: float = 10.0, lbound: float | None = None,
                 eps_0: float = 1.0, rho_0: float = 1.0, d_thresh: float = 5.0, **kw):
        super().__init__(n, **kw)
        self.thresh, self.rest, self.reset = float(thresh), float(rest), float(reset)
        self.refrac, self.eps_0, self.rho_0 = float(refrac), float(eps_0), float(rho_0)
        if not d_thresh > 0:
            raise ConfigError(f"d_thresh must be > 0 mV, got {d_thresh}", key="d_thresh")
        self.d_thresh = float(d_thresh)
        self.lbound = None if lbound is None else float(lbound)
        self.decay = decay_factor(float(tc_decay), self.dt, "tc_decay")

    def reset_dynamics(self) -> None:
        self.v = self.state_tensor(self.rest)
        self.refrac_count = self.state_tensor(0.0)

    def spike_probability(self, v: torch.Tensor) -> torch.Tensor:
        rho = self.rho_0 * torch.exp((v - self.thresh) / self.d_thresh)
        return -torch.expm1(-rho * self.dt)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        self.v = self.rest + (self.v - self.rest) * self.decay
        self.v = self.v + self.eps_0 * x.masked_fill(self.refrac_count > 0, 0.0)
        self.p = self.spike_probability(self.v)
        self.refrac_count = self.refrac_count - self.dt
        fired = torch.rand_like(self.p) < self.p
        self.refrac_count = self.refrac_count.masked_fill(fired, self.refrac)
        self.v = self.v.masked_fill(fired, self.reset)
        if self.lbound is not None:
            self.v = self.v.clamp_min(self.lbound)
        return fired.to(self.dtype)

