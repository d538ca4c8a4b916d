"""``torch.rand`` on the CPU (float32), the same numbers from the same generator, drawn by C.

torch's CPU generator is an mt19937 (Matsumoto & Nishimura 1998) whose float32 uniforms are the
low 24 bits of one tempered 32-bit output, divided by 2^24. ATen draws them one element at a time
through its serial kernel (~3 ns each here); ``torch_cpu_uniform`` in ``dc_presentation.c`` runs
the same recurrence on the state ``torch.get_rng_state()`` returns and writes the advanced state
back, so a Poisson encoding or the one-spike keys cost less and every later draw is unchanged.
On first use it checks itself against ``torch.rand`` on a private generator (numbers and state,
across a twist of the 624-word state); if torch's state layout ever differs, or no C compiler is
there, or ``SNNRUN_CPU_KERNEL=0``, it is ``torch.rand``.
"""

from __future__ import annotations

import ctypes

import torch

from snnrun.engine.kernels import c_library

_checked: bool | None = None


def _library():
    global _checked
    if _checked is False or c_library.disabled_by_env():
        return None
    lib = c_library.library()
    if lib is None:
        return None
    if not getattr(lib, "_uniform_typed", False):  # pointers stay 64-bit only with argtypes set
        lib.torch_cpu_uniform.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        lib.torch_cpu_uniform.restype = None
        lib.torch_cpu_rng_state_size.restype = ctypes.c_int
        lib._uniform_typed = True
    if _checked is None:
        _checked = _agrees_with_torch(lib)
    return lib if _checked else None


def _agrees_with_torch(lib) -> bool:
    if lib.torch_cpu_rng_state_size() != torch.get_rng_state().numel():
        return False
    ours, theirs = torch.Generator().manual_seed(20261202), torch.Generator().manual_seed(20261202)
    for count in (5, 700, 1300):  # 700 + 1300 cross the state's twists
        state = ours.get_state()
        out = torch.empty(count)
        lib.torch_cpu_uniform(state.data_ptr(), out.data_ptr(), count)
        ours.set_state(state)
        if not torch.equal(out, torch.rand(count, generator=theirs)):
            return False
    return torch.equal(ours.get_state(), theirs.get_state())


def _draw(out: torch.Tensor, lib) -> None:
    state = torch.get_rng_state()
    lib.torch_cpu_uniform(state.data_ptr(), out.data_ptr(), out.numel())
    torch.set_rng_state(state)


def rand(shape: tuple[int, ...]) -> torch.Tensor:
    """``torch.rand(shape)`` (float32, CPU, the default generator)."""
    lib = _library()
    if lib is None:
        return torch.rand(shape)
    out = torch.empty(shape)
    _draw(out, lib)
    return out


def advance(count: int) -> None:
    """Move the default generator on by ``count`` float32 uniforms (as ``torch.rand(count)``)."""
    lib = _library()
    if lib is None:
        torch.rand(count)
    else:
        _draw(torch.empty(count), lib)
