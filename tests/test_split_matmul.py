"""fp16x2 products: the two-part fp16 split of float32 weights against float64 references."""

import pytest
import torch

from snnrun.engine.kernels.split_matmul import LO_SCALE, split_fp16, split_fp16_matmul


def parts(w):
    both = split_fp16(w)
    n = w.shape[1]
    return both[:, :n].double(), both[:, n:].double() / LO_SCALE


@pytest.mark.parametrize("scale", [1.0, 1e-3, 300.0])
def test_split_keeps_22_bits_of_every_weight(scale):
    torch.manual_seed(0)
    w = (torch.randn(64, 48) * scale).float()
    hi, lo = parts(w)
    err = ((hi + lo) - w.double()).abs()
    # relative 2^-22; below fp16's normal range (2^-14) the high part rounds to its subnormal
    # spacing, an absolute 2^-24 at most
    assert torch.all(err <= w.double().abs() * 2.0 ** -22 + 2.0 ** -24)
    # the high part alone is fp16 precision, so the low part really carries bits
    normal = w.abs() >= 2.0 ** -14
    assert (hi - w.double()).abs()[normal].max() > 100 * err[normal].max()


def test_split_survives_torch_compile():
    """torch.compile must not fold the split into w_lo = 0 (it drops float cast round trips)."""
    torch.manual_seed(1)
    w = torch.rand(40, 24)
    compiled = torch.compile(split_fp16)
    assert torch.equal(compiled(w), split_fp16(w))


def test_spike_products_match_float64_to_float32_rounding():
    torch.manual_seed(2)
    a = (torch.rand(32, 784) < 0.1).double()
    w = torch.rand(784, 100)
    hi, lo = parts(w)
    approx = a @ hi + a @ lo  # what the fp16 tensor cores compute, with exact accumulation
    exact = a @ w.double()
    assert torch.allclose(approx, exact, rtol=2.0 ** -21, atol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (fp16 tensor-core product)")
@pytest.mark.parametrize("compiled", [False, True])
def test_cuda_product_is_float32_accurate(compiled):
    torch.manual_seed(3)
    a = (torch.rand(256, 784, device="cuda") < 0.05).float()
    w = torch.rand(784, 400, device="cuda")
    fn = torch.compile(split_fp16_matmul) if compiled else split_fp16_matmul
    exact = a.double() @ w.double()
    assert float((fn(a, w).double() - exact).abs().max()) < 1e-5 * float(exact.abs().max())


def test_dense_connection_matmul_option_is_checked():
    from snnrun.components.connections import Connection
    from snnrun.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        Connection.build({"type": "dense", "source": "a", "target": "b", "matmul": "bf16"})
    assert e.value.key.endswith("matmul") and "fp32, fp16x2" in str(e.value)
    with pytest.raises(ConfigError) as e:  # unbounded weights could overflow fp16
        Connection.build({"type": "dense", "source": "a", "target": "b", "matmul": "fp16x2"})
    assert e.value.key.endswith("matmul") and "wmin and wmax" in str(e.value)
    conn = Connection.build({"type": "dense", "source": "a", "target": "b", "matmul": "fp16x2",
                             "wmin": 0.0, "wmax": 1.0}, source_shape=(3,), target_shape=(2,))
    s = torch.tensor([[1.0, 0.0, 1.0]])
    assert torch.equal(conn(s), s @ conn.w)  # on the CPU the product stays float32
