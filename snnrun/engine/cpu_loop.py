"""Diehl & Cook presentations on the CPU as one compiled C loop (``kernels/dc_presentation.c``).

On the CPU, eager PyTorch spends a D&C time step in ~60 small operator calls (~0.16 ms at batch
1, n=100), not in arithmetic; at batch 16 the ``owner`` STDP update builds two dense
(n_in, n) matrices per step. The C loop runs all T steps of a batch in one call, adds only the
weight rows of inputs that spiked and updates only the weights STDP touches, in the same float32
operations as the eager step (same seed: the same spikes, weights and thresholds; see the C
file). The one-spike choice takes its keys from torch's generator exactly as the eager step
does (one ``rand`` block of (B, n) per step with a crossing), so the random stream is unchanged.

The loop covers the network of ``+model=diehl_cook`` (X -> Ae -> Ai -> Ae, delays 1, post_pre
STDP with hard bounds on X -> Ae); :func:`cpu_kernel_for` says why another network is not covered
and the engine runs it step by step. The C source is compiled once per machine with the system's
C compiler (``$CC``, else ``cc``/``gcc``) into ``$SNNRUN_CACHE`` (default ``~/.cache/snnrun``);
without a compiler the eager path runs and one info line says so. ``SNNRUN_CPU_KERNEL=0`` or
``trainer.cpu_kernel=false`` switch the loop off.
"""

from __future__ import annotations

import ctypes

import torch

from snnrun.engine.kernels import c_library, cpu_uniform
from snnrun.engine.kernels.c_library import compiler, disabled_by_env  # noqa: F401  (re-exported for callers)

KEY_FLOATS = 16384  # keys drawn per refill: about this many floats (small blocks: fewer refills)


class _Group(ctypes.Structure):
    _fields_ = [("v", ctypes.c_void_p), ("r", ctypes.c_void_p), ("s", ctypes.c_void_p), ("x", ctypes.c_void_p),
                ("count", ctypes.c_void_p),
                ("decay", ctypes.c_float), ("leak", ctypes.c_float), ("thresh", ctypes.c_float),
                ("reset", ctypes.c_float), ("refrac", ctypes.c_float), ("lbound", ctypes.c_float),
                ("has_lbound", ctypes.c_int), ("traces", ctypes.c_int), ("additive", ctypes.c_int),
                ("trace_decay", ctypes.c_float), ("trace_scale", ctypes.c_float)]


class _Args(ctypes.Structure):
    _fields_ = [("T", ctypes.c_int), ("B", ctypes.c_int), ("n_in", ctypes.c_int), ("n", ctypes.c_int),
                ("t0", ctypes.c_int), ("inp", ctypes.c_void_p), ("w", ctypes.c_void_p),
                ("sx", ctypes.c_void_p), ("xx", ctypes.c_void_p), ("count_x", ctypes.c_void_p),
                ("x_traces", ctypes.c_int), ("x_additive", ctypes.c_int),
                ("x_trace_decay", ctypes.c_float), ("x_trace_scale", ctypes.c_float),
                ("e", _Group), ("i", _Group),
                ("theta", ctypes.c_void_p), ("theta_decay", ctypes.c_float), ("theta_plus", ctypes.c_float),
                ("one_spike", ctypes.c_int), ("w_ei", ctypes.c_void_p), ("w_lat", ctypes.c_float),
                ("dt", ctypes.c_float), ("adapt", ctypes.c_int), ("stdp", ctypes.c_int),
                ("reduction", ctypes.c_int), ("alpha0", ctypes.c_float), ("alpha1", ctypes.c_float),
                ("wmin", ctypes.c_float), ("wmax", ctypes.c_float), ("owner", ctypes.c_void_p),
                ("keys", ctypes.c_void_p), ("n_keys", ctypes.c_int), ("keys_used", ctypes.c_int),
                ("cur_e", ctypes.c_void_p), ("cur_i", ctypes.c_void_p), ("fired", ctypes.c_void_p),
                ("acc", ctypes.c_void_p), ("list", ctypes.c_void_p), ("col_hit", ctypes.c_void_p),
                ("spikes", ctypes.c_void_p), ("n_spikes", ctypes.c_void_p),
                ("owner_start", ctypes.c_void_p), ("owner_fill", ctypes.c_void_p)]


def network_misfit(net) -> str | None:
    """Why ``net`` is not the network the C loop runs (None: it is)."""
    from snnrun.components.connections.weighted import DenseConnection, LateralConnection, OneToOneConnection
    from snnrun.components.learning.stdp import PostPreSTDP
    from snnrun.components.neurons import Input
    from snnrun.components.neurons.adaptive import AdaptiveLIFNodes
    from snnrun.components.neurons.lif import LIFNodes

    groups = list(net.groups.items())
    if len(groups) != 3:
        return "the loop runs three groups (input, excitatory, inhibitory)"
    (xn, x), (en, e), (inn, i) = groups
    if type(x) is not Input or not isinstance(e, AdaptiveLIFNodes) or type(e).step not in _E_STEPS() \
            or type(i) is not LIFNodes:
        return "groups are not input -> diehl_cook/adaptive_lif -> lif"
    if any(g.sum_input for _, g in groups) or len(e.shape) != 1 or e.n != i.n:
        return "group shapes or options differ from the D&C network"
    conns = {(c.source, c.target): c for c in net.connections.values()}
    want = {(xn, en): DenseConnection, (en, inn): OneToOneConnection, (inn, en): LateralConnection}
    if len(conns) != 3 or set(conns) != set(want) or any(type(conns[k]) is not t for k, t in want.items()):
        return "connections are not X -> Ae dense, Ae -> Ai one_to_one, Ai -> Ae lateral"
    if any(c.delay != 1 for c in conns.values()) or conns[(xn, en)].b is not None:
        return "connections need delay 1 and no bias"
    dense = conns[(xn, en)]
    # the X -> Ae current is summed first, the lateral one added to it (the eager order)
    if [c for _, c in net._incoming[en]] != [dense, conns[(inn, en)]]:
        return "Ae's incoming connections are in another order"
    rules = list(net.learners.values())
    if rules:
        r = rules[0]
        if len(rules) != 1 or type(r) is not PostPreSTDP or r.connection is not dense or r.bounds != "hard" \
                or r.weight_decay or r.baseline != "none":
            return "learning other than one post_pre rule (hard bounds, no weight decay, no baseline) on X -> Ae"
    return None


def _E_STEPS():
    from snnrun.components.neurons.adaptive import AdaptiveLIFNodes, DiehlCookNodes

    return (AdaptiveLIFNodes.step, DiehlCookNodes.step)


class DCPresentation:
    """Runs a presentation of a matching network (:func:`network_misfit`) through the C loop."""

    def __init__(self, net, lib: ctypes.CDLL):
        self.lib = lib
        self.x_name, self.e_name, self.i_name = list(net.groups)
        self.dense = next(c for c in net.connections.values() if c.source == self.x_name)
        self.o2o = next(c for c in net.connections.values() if c.source == self.e_name)
        self.lat = next(c for c in net.connections.values() if c.source == self.i_name)

    def accepts(self, net, inputs, static, record, record_v) -> bool:
        """Per call: spike inputs to the input group only, counts only, float32 on the CPU, no
        data-parallel share."""
        x = inputs.get(self.x_name)
        w, theta = self.dense.w, net.groups[self.e_name].theta
        if not (w.is_contiguous() and theta.is_contiguous() and w.dtype == theta.dtype == torch.float32):
            return False
        if static or record or record_v or len(inputs) != 1 or x is None or x.dtype != torch.bool or x.is_cuda:
            return False
        # the groups' state was just created by reset_state: its tensors tell dtype and device
        # (cheaper than the groups' dtype properties, which walk their buffers)
        if any(g.data_parallel is not None or g.s.dtype != torch.float32 or g.s.is_cuda for g in net.groups.values()):
            return False
        # the loop claims one owner per neuron, the first sample to fire it: 'owners' K > 1 (auto
        # when the batch outnumbers the neurons), owners by spike count and the placement of
        # overflowing samples run step by step
        if net.training and x.shape[1] > 1 and any(
                getattr(r, "reduction", None) == "owner"
                and (r.owners_per_neuron(x.shape[1]) > 1 or getattr(r, "overflow", "none") != "none"
                     or getattr(r, "owner_by", "first_spike") != "first_spike")
                for r in net.learners.values()):
            return False
        return all(getattr(r, "data_parallel", None) is None for r in net.learners.values())

    def run(self, net, spikes: torch.Tensor, count: tuple[str, ...]) -> dict:
        X, E, I = (net.groups[k] for k in (self.x_name, self.e_name, self.i_name))
        T, B = spikes.shape[:2]
        n_in, n = X.n, E.n
        inp = spikes.reshape(T, B, n_in).contiguous()
        counts = {g: torch.zeros(B, *net.groups[g].shape) for g in count}
        f32 = torch.float32
        state = [X.s, X.x if X.traces else None, E.v, E.refrac_count, E.s, E.x if E.traces else None,
                 I.v, I.refrac_count, I.s, I.x if I.traces else None]
        for k, t in enumerate(state):  # fresh after reset_state: contiguous (B, *shape) float32
            if t is not None and not t.is_contiguous():
                state[k] = t.contiguous()
        X.s, xx, E.v, E.refrac_count, E.s, ex, I.v, I.refrac_count, I.s, ix = state
        if X.traces:
            X.x = xx
        if E.traces:
            E.x = ex
        if I.traces:
            I.x = ix
        w = self.dense.w
        a = _Args()
        a.T, a.B, a.n_in, a.n, a.inp, a.w = T, B, n_in, n, inp.data_ptr(), w.data_ptr()
        a.sx, a.xx = X.s.data_ptr(), (xx.data_ptr() if X.traces else None)
        a.count_x = counts[self.x_name].data_ptr() if self.x_name in counts else None
        a.x_traces, a.x_additive = int(X.traces), int(X.traces_additive)
        a.x_trace_decay, a.x_trace_scale = X.trace_decay, X.trace_scale
        for dst, g, name in ((a.e, E, self.e_name), (a.i, I, self.i_name)):
            dst.v, dst.r, dst.s = g.v.data_ptr(), g.refrac_count.data_ptr(), g.s.data_ptr()
            dst.x = g.x.data_ptr() if g.traces else None
            dst.count = counts[name].data_ptr() if name in counts else None
            dst.decay, dst.leak, dst.thresh, dst.reset = g.decay, g._leak_target, g.thresh, g.reset
            dst.refrac, dst.has_lbound, dst.lbound = g.refrac, g.lbound is not None, g.lbound or 0.0
            dst.traces, dst.additive = int(g.traces), int(g.traces_additive)
            dst.trace_decay, dst.trace_scale = g.trace_decay, g.trace_scale
        theta = E.theta
        a.theta, a.theta_decay, a.theta_plus = theta.data_ptr(), E.theta_decay, E.theta_plus
        a.one_spike = int(getattr(E, "one_spike", False))
        w_ei = self.o2o.w.detach().to(f32).contiguous()
        a.w_ei, a.w_lat, a.dt = w_ei.data_ptr(), float(self.lat.w), E.dt
        a.adapt = int(E.training)
        rule = next(iter(net.learners.values()), None) if net.training else None
        owner = None
        if rule is not None:
            scale = 1.0 / max(B, 1) if rule.reduction == "mean" else 1.0
            a.stdp, a.alpha0, a.alpha1 = 1, -rule.nu[0] * scale, rule.nu[1] * scale
            a.reduction = 2 if rule.reduction == "owner" else 0
            a.wmin, a.wmax = self.dense.wmin, self.dense.wmax
            if rule.reduction == "owner" and B > 1:  # the eager path claims owners from batch 2 on
                owner = torch.full((n,), -1, dtype=torch.long)
                a.owner = owner.data_ptr()
        scratch = torch.empty(4 * B * n + n, dtype=f32)
        a.cur_e, a.cur_i, a.fired = (scratch[k * B * n:].data_ptr() for k in range(3))
        a.acc = scratch[4 * B * n:].data_ptr()
        m = max(n_in, n)
        ints = torch.empty(m + n + 2 * B * n_in + 2 * B + 2 * B + 1, dtype=torch.int32)
        a.list, a.col_hit = ints.data_ptr(), ints[m:].data_ptr()
        k = m + n + 2 * B * n_in
        a.spikes, a.n_spikes, a.owner_start, a.owner_fill = (ints[o:].data_ptr() for o in
                                                             (m + n, k, k + 2 * B, k + 3 * B + 1))
        self._steps(a, T, B, n)
        if owner is not None:
            rule.owner = owner
        return {"counts": counts, "spikes": {}, "v": {}}

    def _steps(self, a: _Args, T: int, B: int, n: int) -> None:
        """All T steps; the one-spike keys come from torch's generator in refills of a few
        (B, n) blocks, and the generator ends where the eager path leaves it (one block per step
        that had a crossing): the unused part of the last refill is given back."""
        t, keys, before = 0, None, None
        chunk = max(4, KEY_FLOATS // max(B * n, 1))
        while t < T:
            if a.one_spike:
                before = torch.get_rng_state()
                keys = cpu_uniform.rand((min(chunk, T - t), B, n))
                a.keys, a.n_keys, a.keys_used = keys.data_ptr(), keys.shape[0], 0
            a.t0 = t
            t = self.lib.dc_run(ctypes.byref(a))
        if a.one_spike and a.keys_used < a.n_keys:
            torch.set_rng_state(before)
            if a.keys_used:
                cpu_uniform.advance(a.keys_used * B * n)
        del keys


def cpu_kernel_for(net) -> tuple[DCPresentation | None, str | None]:
    """(the C loop for ``net``, None), or (None, why not)."""
    misfit = network_misfit(net)
    if misfit is not None:
        return None, misfit
    lib = c_library.library()
    if lib is None:
        return None, c_library.error()
    if not getattr(lib, "_dc_typed", False):
        lib.dc_run.argtypes = [ctypes.POINTER(_Args)]
        lib.dc_run.restype = ctypes.c_int
        lib._dc_typed = True
    return DCPresentation(net, lib), None
