"""snnrun.engine.kernels.cpu_uniform.rand: torch.rand's numbers and generator state, drawn by C."""

import pytest
import torch

from snnrun.engine.kernels import c_library, cpu_uniform


@pytest.mark.skipif(c_library.compiler() is None, reason="no C compiler")
@pytest.mark.parametrize("shape", [(1,), (623,), (624,), (625,), (3, 700), (250, 4, 64)])
def test_same_numbers_and_state_as_torch(shape):
    torch.manual_seed(9)
    torch.rand(5)  # start mid-state
    ours, after_ours = cpu_uniform.rand(shape), torch.rand(3)
    state_ours = torch.get_rng_state()
    torch.manual_seed(9)
    torch.rand(5)
    theirs, after_theirs = torch.rand(shape), torch.rand(3)
    assert cpu_uniform._library() is not None  # the C path ran (it checked itself against torch)
    assert ours.dtype == torch.float32 and ours.shape == shape
    assert torch.equal(ours, theirs) and torch.equal(after_ours, after_theirs)
    assert torch.equal(state_ours, torch.get_rng_state())


@pytest.mark.skipif(c_library.compiler() is None, reason="no C compiler")
def test_advance_moves_the_generator_as_a_draw():
    torch.manual_seed(4)
    cpu_uniform.advance(1000)
    a = torch.rand(4)
    torch.manual_seed(4)
    torch.rand(1000)
    assert torch.equal(a, torch.rand(4))


def test_switched_off_it_is_torch_rand(monkeypatch):
    monkeypatch.setenv("SNNRUN_CPU_KERNEL", "0")
    assert cpu_uniform._library() is None
    torch.manual_seed(1)
    a = cpu_uniform.rand((10,))
    torch.manual_seed(1)
    assert torch.equal(a, torch.rand(10))
