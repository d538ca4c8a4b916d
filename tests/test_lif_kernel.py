"""The fused multi-step LIF (CPU fallback here; the same test runs the Triton path on a GPU)
against a plain autograd loop with the same surrogate."""

import importlib.util
import os
import subprocess
import sys

import pytest
import torch

from snnrun.engine.kernels.lif_multistep import lif_multistep, lif_multistep_loop

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def reference(x, tau, v_th, v_reset, decay_input, detach_reset, kind, alpha):
    return lif_multistep_loop(x, tau=tau, v_th=v_th, v_reset=v_reset, decay_input=decay_input,
                              detach_reset=detach_reset, surrogate=kind, alpha=alpha)


CASES = [
    dict(tau=2.0, v_reset=0.0, decay_input=True, detach_reset=False, kind="sigmoid", alpha=4.0),
    dict(tau=2.0, v_reset=0.0, decay_input=True, detach_reset=True, kind="atan", alpha=2.0),
    dict(tau=5.0, v_reset=None, decay_input=False, detach_reset=False, kind="sigmoid", alpha=4.0),
    dict(tau=None, v_reset=-0.2, decay_input=True, detach_reset=False, kind="atan", alpha=2.0),
    dict(tau=3.0, v_reset=None, decay_input=True, detach_reset=True, kind="sigmoid", alpha=3.0),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_matches_autograd_loop(device, case):
    torch.manual_seed(0)
    x = (torch.randn(16, 4, 37, device=device) * 1.5 + 0.6).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    g = torch.randn(16, 4, 37, device=device)
    gv = torch.randn(4, 37, device=device)
    s, v = lif_multistep(x, tau=case["tau"], v_th=1.0, v_reset=case["v_reset"], decay_input=case["decay_input"],
                         detach_reset=case["detach_reset"], surrogate=case["kind"], alpha=case["alpha"])
    s_ref, v_ref = reference(x_ref, case["tau"], 1.0, case["v_reset"], case["decay_input"],
                             case["detach_reset"], case["kind"], case["alpha"])
    assert torch.equal(s, s_ref)
    assert torch.allclose(v, v_ref, atol=1e-5)
    ((s * g).sum() + (v * gv).sum()).backward()
    ((s_ref * g).sum() + (v_ref * gv).sum()).backward()
    rel = (x.grad - x_ref.grad).norm() / x_ref.grad.norm()
    assert rel < 1e-5


def test_if_integrates_exactly_and_lif_decays():
    x = torch.full((10, 1, 1), 0.3)
    s, v = lif_multistep(x, tau=None, v_th=10.0)
    assert v.item() == pytest.approx(3.0, rel=1e-6)
    s, v = lif_multistep(torch.zeros(5, 1, 1), v0=torch.ones(1, 1), tau=2.0, v_th=10.0)
    assert v.item() == pytest.approx(0.5 ** 5)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_input_runs_in_float32(device, dtype, monkeypatch):
    """Autocast hands the layer bf16/fp16 currents: the kernel (Triton on CUDA, which takes float32
    only) sees them widened, the spikes come back in the input's dtype, and both the spikes and
    the gradient equal a float32 run on the same (rounded) currents."""
    from snnrun.engine.kernels import lif_multistep as K

    seen = []
    real = K.LIFMultiStep.apply
    monkeypatch.setattr(K.LIFMultiStep, "apply", lambda x, *a: seen.append(x.dtype) or real(x, *a))
    torch.manual_seed(2)
    x = (torch.randn(8, 4, 50, device=device) + 0.6).to(dtype).requires_grad_()
    x32 = x.detach().float().requires_grad_()
    w = torch.tensor(0.3, device=device, requires_grad=True)
    s, v = lif_multistep(x, k=torch.sigmoid(w), surrogate="atan", alpha=2.0, detach_reset=True)
    s32, v32 = lif_multistep(x32, k=torch.sigmoid(w.detach()), surrogate="atan", alpha=2.0, detach_reset=True)
    assert seen == [torch.float32, torch.float32]
    assert s.dtype == dtype and v.dtype == torch.float32
    assert torch.equal(s.float(), s32) and torch.equal(v, v32)
    g = torch.randn(8, 4, 50, device=device).to(dtype).float()  # exact in the spikes' dtype
    (s.float() * g).sum().backward()
    (s32 * g).sum().backward()
    assert x.grad.dtype == dtype and torch.equal(x.grad, x32.grad.to(dtype))
    assert w.grad is not None and torch.isfinite(w.grad)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_triton_equals_torch_backend_on_gpu():
    torch.manual_seed(1)
    x = torch.randn(32, 8, 1000, device="cuda").requires_grad_()
    y = x.detach().clone().requires_grad_()
    s1, v1 = lif_multistep(x)
    s2, v2 = lif_multistep(y, backend="torch")
    assert torch.equal(s1, s2) and torch.allclose(v1, v2, atol=1e-6)
    g = torch.randn_like(s1)
    (s1 * g).sum().backward()
    (s2 * g).sum().backward()
    assert (x.grad - y.grad).norm() / y.grad.norm() < 1e-6
    # a broadcast gradient (loss = s.sum()) takes the scalar path of the kernel
    x.grad, y.grad = None, None
    lif_multistep(x)[0].sum().backward()
    lif_multistep(y, backend="torch")[0].sum().backward()
    assert (x.grad - y.grad).norm() / y.grad.norm() < 1e-6
    # a learned k (PLIF): read on the device, its gradient reduced from the kernel's partial sums
    for decay_input in (True, False):
        w1 = torch.tensor(0.2, device="cuda", requires_grad=True)
        w2 = torch.tensor(0.2, device="cuda", requires_grad=True)
        s1, _ = lif_multistep(x, k=torch.sigmoid(w1), decay_input=decay_input)
        s2, _ = lif_multistep(y, k=torch.sigmoid(w2), decay_input=decay_input, backend="torch")
        assert torch.equal(s1, s2)
        (s1 * g).sum().backward()
        (s2 * g).sum().backward()
        assert torch.allclose(w1.grad, w2.grad, rtol=1e-4)


@pytest.mark.parametrize("node", [
    {"type": "surrogate_lif", "tau": 2.0},
    {"type": "surrogate_lif", "tau": 3.0, "decay_input": False, "v_reset": None, "surrogate": "atan"},
    {"type": "surrogate_if", "detach_reset": True},
    {"type": "plif", "init_tau": 2.5},
    {"type": "plif", "init_tau": 4.0, "decay_input": False, "v_reset": None},
])
def test_trainable_nodes_take_the_fused_path_with_identical_results(node, monkeypatch):
    from snnrun.engine.kernels import lif_multistep as K
    from snnrun.components.neurons import NeuronModel

    calls = []
    real = K.LIFMultiStep.apply
    monkeypatch.setattr(K.LIFMultiStep, "apply", lambda *a: calls.append(1) or real(*a))
    torch.manual_seed(0)
    x = (torch.randn(12, 3, 20) + 0.7).requires_grad_()
    fused = NeuronModel.build({**node, "n": 20})
    stepped = NeuronModel.build({**node, "n": 20})
    fused.reset_state(3)
    stepped.reset_state(3)
    s_f = fused.forward_multi(x)
    assert calls, "the fused kernel was not used"
    s_s = torch.stack([stepped(x[t]) for t in range(12)])
    assert torch.equal(s_f, s_s) and torch.equal(fused.v, stepped.v)
    g = torch.randn_like(s_f)
    params_f, params_s = list(fused.parameters()), list(stepped.parameters())
    gf = torch.autograd.grad((s_f * g).sum(), [x, *params_f])
    gs = torch.autograd.grad((s_s * g).sum(), [x, *params_s])
    for a, b in zip(gf, gs):  # the input's gradient, and PLIF's learned time constant's
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), (a, b)


INTERPRETED_CHECK = r"""
import torch
from snnrun.engine.kernels import lif_multistep as K
K.triton_available = lambda t: True  # CPU tensors through the (interpreted) Triton kernels
torch.manual_seed(0)
for T, chunk in [(13, 4), (5, 8)]:
    K.LAUNCH.update(BLOCK=64, num_warps=1, CHUNK=chunk)
    for case in [dict(tau=2.0, v_reset=0.0, decay_input=True, detach_reset=False, surrogate="sigmoid"),
                 dict(tau=5.0, v_reset=None, decay_input=False, detach_reset=False, surrogate="atan"),
                 dict(tau=None, v_reset=-0.2, decay_input=True, detach_reset=True, surrogate="sigmoid")]:
        x = (torch.randn(T, 3, 37) * 1.5 + 0.6).requires_grad_()
        y = x.detach().clone().requires_grad_()
        v0 = torch.randn(3, 37).requires_grad_()
        v0b = v0.detach().clone().requires_grad_()
        s1, v1 = K.lif_multistep(x, v0, **case)
        s2, v2 = K.lif_multistep(y, v0b, backend="torch", **case)
        assert torch.equal(s1, s2) and torch.equal(v1, v2), (T, chunk, case)
        g, gv = torch.randn_like(s1), torch.randn_like(v1)
        ((s1 * g).sum() + (v1 * gv).sum()).backward()
        ((s2 * g).sum() + (v2 * gv).sum()).backward()
        assert (x.grad - y.grad).norm() / y.grad.norm() < 1e-6, (T, chunk, case)
        assert (v0.grad - v0b.grad).norm() / v0b.grad.norm() < 1e-6, (T, chunk, case)
        x.grad = y.grad = None  # scalar start, broadcast spike gradient, unused final v
        K.lif_multistep(x, **case)[0].sum().backward()
        K.lif_multistep(y, backend="torch", **case)[0].sum().backward()
        assert (x.grad - y.grad).norm() / y.grad.norm() < 1e-6, (T, chunk, case)
        if case["tau"] is not None:  # a learned k (PLIF): its gradient from the kernel
            w1 = torch.tensor(0.3, requires_grad=True)
            w2 = torch.tensor(0.3, requires_grad=True)
            s1, v1 = K.lif_multistep(x, v0, k=torch.sigmoid(w1), **case)
            s2, v2 = K.lif_multistep(y, v0b, k=torch.sigmoid(w2), backend="torch", **case)
            assert torch.equal(s1, s2), (T, chunk, case)
            ((s1 * g).sum() + (v1 * gv).sum()).backward()
            ((s2 * g).sum() + (v2 * gv).sum()).backward()
            assert abs(float(w1.grad - w2.grad)) <= 1e-5 * abs(float(w2.grad)) + 1e-6, (w1.grad, w2.grad)
print("ok")
"""


def _triton_version():
    if importlib.util.find_spec("triton") is None:
        return (0, 0)
    import triton

    return tuple(int(p) for p in triton.__version__.split(".")[:2])


# Triton 3.6's interpreter stops on this kernel (TypeError converting a block to a scalar), a
# limitation of the interpreter only: the compiled kernels pass the GPU tests on 3.6
@pytest.mark.skipif(_triton_version() < (3, 7), reason="needs Triton >= 3.7's interpreter")
def test_triton_kernels_match_torch_path_in_the_interpreter():
    """The Triton kernels' arithmetic (chunked loads, checkpoint recompute, the last partial
    chunk) on the CPU, through Triton's interpreter: CI has no GPU."""
    out = subprocess.run([sys.executable, "-c", INTERPRETED_CHECK], env={**os.environ, "TRITON_INTERPRET": "1"},
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fast_launch_recompiles_for_other_alignments_and_sizes():
    """Kernels called directly after their first compile (snnrun.engine.kernels.launch) must not be
    reused for inputs they were not specialised for: 16-byte alignment, sizes."""
    from snnrun.engine.kernels import lif_multistep as K

    torch.manual_seed(4)
    before = K._launch_fwd.direct_calls
    for shape, offset in [((8, 4, 64), 0), ((8, 4, 64), 1), ((7, 3, 33), 0), ((8, 4, 64), 3), ((8, 4, 64), 0)]:
        n = shape[0] * shape[1] * shape[2]
        x = (torch.randn(n + offset, device="cuda") + 0.8)[offset:].view(shape)
        for _ in range(2):  # the second call takes the direct path
            s, v = lif_multistep(x)
            s_ref, v_ref = lif_multistep(x, backend="torch")
            assert torch.equal(s, s_ref) and torch.allclose(v, v_ref, atol=1e-6)
    if K._launch_fwd.fast:  # on the Triton versions the direct path was checked on
        assert K._launch_fwd.direct_calls > before
