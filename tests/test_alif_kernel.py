"""The fused multi-step exp-Euler LIF / ALIF (snnrun.engine.kernels.alif_multistep) against the
step-by-step nodes (autograd through every step), on the CPU path here, through Triton's
interpreter, and the compiled Triton kernels on a GPU."""

import os
import subprocess
import sys

import pytest
import torch

from snnrun.engine.kernels.alif_multistep import alif_multistep
from snnrun.components.neurons import NeuronModel

from tests.test_lif_kernel import _triton_version

NODES = [
    {"type": "alif"},
    {"type": "alif", "spk_reset": "hard", "surrogate": "sigmoid", "beta": 0.5, "tau_a": 20.0},
    {"type": "alif", "detach_reset": True, "v_reset": -0.5, "r": 2.0, "v_rest": 0.1},
    {"type": "exp_euler_lif"},
    {"type": "exp_euler_lif", "spk_reset": "hard", "detach_reset": True, "surrogate": "atan"},
]


@pytest.mark.parametrize("node", NODES, ids=lambda n: "-".join(f"{k}={v}" for k, v in n.items()))
def test_fused_nodes_match_their_steps(node, monkeypatch):
    from snnrun.engine.kernels import alif_multistep as A

    calls = []
    real = A.ALIFMultiStep.apply
    monkeypatch.setattr(A.ALIFMultiStep, "apply", lambda *a: calls.append(1) or real(*a))
    torch.manual_seed(0)
    x = (torch.randn(20, 3, 16) * 2 + 1.2).requires_grad_()
    fused, stepped = NeuronModel.build({**node, "n": 16}), NeuronModel.build({**node, "n": 16})
    fused.reset_state(3)
    stepped.reset_state(3)
    s_f = fused.forward_multi(x)
    assert calls, "the fused kernel was not used"
    s_s = torch.stack([stepped(x[t]) for t in range(20)])
    assert torch.equal(s_f, s_s) and 0 < float(s_s.detach().mean()) < 0.5
    assert torch.equal(fused.v, stepped.v)
    loss_f, loss_s = (s_f * torch.linspace(-1, 1, 16)).sum() + fused.v.sum(), \
        (s_s * torch.linspace(-1, 1, 16)).sum() + stepped.v.sum()
    if node["type"] == "alif":
        assert torch.equal(fused.a, stepped.a)
        loss_f, loss_s = loss_f + 0.5 * fused.a.sum(), loss_s + 0.5 * stepped.a.sum()
    (g_f,) = torch.autograd.grad(loss_f, x)
    (g_s,) = torch.autograd.grad(loss_s, x)
    assert g_s.abs().max() > 0 and torch.allclose(g_f, g_s, rtol=1e-5, atol=1e-6)


def test_adaptation_lowers_the_rate_under_constant_drive():
    """ALIF's spike-frequency adaptation, through the fused path: beta > 0 fires less."""
    x = torch.full((200, 1, 1), 1.5)
    zeros = torch.zeros(1, 1)
    plain, _, _ = alif_multistep(x, zeros, zeros, tau=5.0)
    adapted, _, a = alif_multistep(x, zeros, zeros, tau=5.0, tau_a=100.0, beta=0.1)
    assert adapted.sum() < plain.sum() and float(a) > 0
    # late inter-spike intervals are longer than early ones
    t = adapted[:, 0, 0].nonzero().flatten()
    assert (t[-1] - t[-2]) > (t[1] - t[0])


INTERPRETED_CHECK = r"""
import torch
from snnrun.engine.kernels import alif_multistep as A
A.triton_available = lambda t: True  # CPU tensors through the (interpreted) Triton kernels
torch.manual_seed(0)
for T, chunk in [(13, 4), (5, 8)]:
    A.LAUNCH.update(BLOCK=64, num_warps=1, CHUNK=chunk)
    for kw in [dict(tau=5.0, tau_a=100.0, beta=0.1),
               dict(tau=3.0, tau_a=20.0, beta=0.5, spk_reset="hard", surrogate="sigmoid", alpha=4.0),
               dict(tau=4.0, spk_reset="hard", detach_reset=True, surrogate="atan", alpha=2.0),
               dict(tau=5.0, tau_a=50.0, beta=0.3, detach_reset=True, v_reset=-0.5, r=2.0, v_rest=0.1)]:
        x = (torch.randn(T, 3, 37) * 2 + 1.2).requires_grad_()
        y = x.detach().clone().requires_grad_()
        v0, a0 = torch.randn(3, 37).requires_grad_(), torch.rand(3, 37).requires_grad_()
        v0b, a0b = v0.detach().clone().requires_grad_(), a0.detach().clone().requires_grad_()
        s1, v1, a1 = A.alif_multistep(x, v0, a0, **kw)
        s2, v2, a2 = A.alif_multistep(y, v0b, a0b, backend="torch", **kw)
        assert torch.equal(s1, s2) and torch.allclose(v1, v2, atol=1e-6) and torch.allclose(a1, a2, atol=1e-6), kw
        g, gv, ga = torch.randn_like(s1), torch.randn_like(v1), torch.randn_like(a1)
        ((s1 * g).sum() + (v1 * gv).sum() + (a1 * ga).sum()).backward()
        ((s2 * g).sum() + (v2 * gv).sum() + (a2 * ga).sum()).backward()
        for p, q in ((x, y), (v0, v0b), (a0, a0b)):
            assert (p.grad - q.grad).norm() <= 1e-6 * q.grad.norm() + 1e-12, (kw, p.grad, q.grad)
        x.grad = y.grad = None  # broadcast spike gradient, unused final state
        A.alif_multistep(x, v0.detach(), a0.detach(), **kw)[0].sum().backward()
        A.alif_multistep(y, v0b.detach(), a0b.detach(), backend="torch", **kw)[0].sum().backward()
        assert (x.grad - y.grad).norm() <= 1e-6 * y.grad.norm() + 1e-12, kw
print("ok")
"""


@pytest.mark.skipif(_triton_version() < (3, 7), reason="needs Triton >= 3.7's interpreter")
def test_triton_kernels_match_torch_path_in_the_interpreter():
    out = subprocess.run([sys.executable, "-c", INTERPRETED_CHECK], env={**os.environ, "TRITON_INTERPRET": "1"},
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kw", [dict(tau=5.0, tau_a=100.0, beta=0.1),
                                dict(tau=3.0, tau_a=20.0, beta=0.5, spk_reset="hard", surrogate="sigmoid", alpha=4.0),
                                dict(tau=5.0)])
def test_triton_equals_torch_backend_on_gpu(kw):
    torch.manual_seed(1)
    x = (torch.randn(32, 8, 1000, device="cuda") * 2 + 1.2).requires_grad_()
    y = x.detach().clone().requires_grad_()
    zeros = torch.zeros(8, 1000, device="cuda")
    s1, v1, a1 = alif_multistep(x, zeros, zeros, **kw)
    s2, v2, a2 = alif_multistep(y, zeros, zeros, backend="torch", **kw)
    assert torch.equal(s1, s2) and torch.allclose(v1, v2, atol=1e-5) and torch.allclose(a1, a2, atol=1e-5)
    g = torch.randn_like(s1)
    ((s1 * g).sum() + v1.sum()).backward()
    ((s2 * g).sum() + v2.sum()).backward()
    assert (x.grad - y.grad).norm() / y.grad.norm() < 1e-5


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_bf16_input_runs_in_float32(device):
    """Autocast's bf16 currents are widened for the kernel (Triton takes float32 only): the same
    spikes and state as a float32 run, spikes returned as bf16 and the gradient narrowed back."""
    torch.manual_seed(3)
    x = (torch.randn(30, 2, 40, device=device) + 1.0).bfloat16().requires_grad_()
    x32 = x.detach().float().requires_grad_()
    zeros = torch.zeros(2, 40, device=device)
    kw = dict(tau=5.0, tau_a=50.0, beta=0.2)
    s, v, a = alif_multistep(x, zeros, zeros, **kw)
    s32, v32, a32 = alif_multistep(x32, zeros, zeros, **kw)
    assert s.dtype == torch.bfloat16 and v.dtype == torch.float32
    assert torch.equal(s.float(), s32) and torch.equal(v, v32) and torch.equal(a, a32)
    g = torch.randn(30, 2, 40, device=device).bfloat16().float()
    (s.float() * g).sum().backward()
    (s32 * g).sum().backward()
    assert x.grad.dtype == torch.bfloat16 and torch.equal(x.grad, x32.grad.bfloat16())
