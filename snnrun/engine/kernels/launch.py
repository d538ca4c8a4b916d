"""Launching compiled Triton kernels with little host work per call.

``kernel[grid](*args, **constexprs)`` binds and specialises every argument in Python on every
call (~15-25 us on the lent H100/H200 hosts): as long as the kernels themselves at
benchmark sizes. :class:`FastLaunch` compiles through that path once per specialisation and
afterwards calls the compiled kernel directly. The specialisation key holds what Triton
specialises on: each tensor's dtype and 16-byte alignment, each integer's 32/64-bit width,
divisibility by 16 and equality to 1, plus the constexprs, launch options and device, so a
call never reuses a kernel compiled under other assumptions.

The direct call uses ``CompiledKernel.run``, an internal Triton interface: it is used only on
the Triton versions it was checked on (:data:`CHECKED`), otherwise every call takes Triton's
public path, as does any call where the direct one raises.
"""

from __future__ import annotations

import torch

try:
    import triton
    from triton.runtime import driver
except ImportError:  # pragma: no cover - CPU-only installs
    triton = None

CHECKED = ((3, 6), (3, 7), (3, 8))  # Triton versions whose CompiledKernel.run this calls


def _version() -> tuple[int, int]:
    try:
        return tuple(int(p) for p in triton.__version__.split(".")[:2])  # type: ignore[return-value]
    except Exception:  # pragma: no cover - odd version strings
        return (0, 0)


def _spec(a) -> object:
    t = type(a)
    if t is torch.Tensor or isinstance(a, torch.Tensor):
        return a.dtype, a.data_ptr() & 15 == 0
    if t is int:
        return a == 1, a & 15 == 0, -(2**31) <= a < 2**31
    return t  # floats are not specialised; bools are passed as constexprs


class FastLaunch:
    """``FastLaunch(kernel)(n_programs, *args, **constexprs_and_options)``: a 1-D launch."""

    def __init__(self, kernel):
        self.kernel = kernel
        # (under TRITON_INTERPRET=1 kernels are interpreted functions: nothing compiled to call)
        self.fast = triton is not None and _version() in CHECKED and \
            isinstance(kernel, triton.runtime.jit.JITFunction)
        self._compiled: dict[tuple, tuple] = {}
        self.direct_calls = 0  # launches that skipped Triton's binding (tests read this)

    def __call__(self, n_programs: int, *args, **kw) -> None:
        if not self.fast:
            self.kernel[(n_programs,)](*args, **kw)
            return
        device = torch.cuda.current_device()
        key = (device, tuple(kw.items()), tuple(_spec(a) for a in args))
        hit = self._compiled.get(key)
        if hit is None:
            compiled = self.kernel[(n_programs,)](*args, **kw)  # compiles (once) and launches
            if not hasattr(compiled, "run"):  # e.g. the interpreter (TRITON_INTERPRET=1)
                self.fast = False
                return
            names = self.kernel.arg_names[len(args):]
            self._compiled[key] = (compiled, tuple(kw[name] for name in names))
            return
        compiled, constexprs = hit
        try:
            compiled.run(n_programs, 1, 1, driver.active.get_current_stream(device), compiled.function,
                         compiled.packed_metadata, None, None, None, *args, *constexprs)
            self.direct_calls += 1
        except Exception:  # pragma: no cover - an interface change: the public path from now on
            self.fast = False
            self.kernel[(n_programs,)](*args, **kw)
