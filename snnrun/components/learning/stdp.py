"""Spike-timing-dependent plasticity rules driven by pre- and postsynaptic traces."""

from __future__ import annotations

import math

import torch

from snnrun.errors import ConfigError
from snnrun.components.learning.base import LearningRule
from snnrun.engine.random_keys import counter_uniform


BOUNDS = ("hard", "soft")
BASELINES = ("none", "running_mean")  # post_pre's presynaptic baseline of the potentiation
OVERFLOW_ROUNDS = 8  # placement rounds of overflow: nearest (each places every sample that still fits)


def check_bounds(bounds: str, connection) -> str:
    """``hard``: clamp to [wmin, wmax] after each update; ``soft``: scale potentiation by
    (wmax - w) and depression by (w - wmin), which needs finite bounds."""
    if bounds not in BOUNDS:
        raise ConfigError(f"unknown bounds '{bounds}'. Allowed: {', '.join(BOUNDS)}", key="bounds")
    if bounds == "soft" and not (math.isfinite(connection.wmin) and math.isfinite(connection.wmax)):
        raise ConfigError(f"soft bounds scale updates by (wmax - w) and (w - wmin): set finite wmin and wmax "
                          f"on connection '{connection.source}' -> '{connection.target}'", key="bounds")
    return bounds


@LearningRule.register("post_pre", "stdp", source="bindsnet")
class PostPreSTDP(LearningRule):
    """Pair-based STDP from traces (BindsNET's ``PostPre``), for dense connections.

    At every step, with presynaptic spikes s_pre, traces x_pre, and likewise for post::

        dw_ij = - nu_pre  * s_pre_i(t)  * x_post_j(t)     depression: pre after post
                + nu_post * x_pre_i(t)  * s_post_j(t)     potentiation: post after pre

    summed (or averaged, ``reduction``) over the batch, then clamped to [wmin, wmax].
    Both groups need ``traces: true``. ``bounds: soft`` scales the potentiation by (wmax - w)
    and the depression by (w - wmin) (then it is weight_dependent_post_pre).

    ``reduction: owner`` is for large batches of competitive networks (Diehl & Cook): summed
    over a batch, every sample that drives the same strong neuron pushes its weights towards
    a different digit, and the batch learns blurred, shared features instead of the distinct
    ones that sequential presentation gives. With ``owner``, postsynaptic neuron j learns
    only from the first sample of the batch that made it fire during this presentation
    (ties: the lowest sample index); other samples leave its weights alone, as if j had
    already been taken by that sample. Both terms of j's column are masked.

    ``owners: K`` lets neuron j learn from the first K samples that fire it (ties: lower
    indices first), their updates summed; ``auto`` is K = ceil(B / n_post). With one owner a
    batch teaches at most n_post of its B samples, so when B > n_post (100 neurons, batch 256)
    most images teach nothing, where a sequential presentation learns from every one; ``auto``
    keeps K = 1 whenever B <= n_post (and at batch 1, where every rule here is ``sum``). K > 1
    costs two batch-sized matrix products per step instead of the gather.

    ``owner_by: spike_count`` picks each neuron's owners by how strongly they drove it instead of
    by who fired it first: neuron j learns from the K samples that fired it most often over the
    presentation (ties: lower sample indices), once, at the end of the presentation. The first
    sample to fire a neuron is often one it barely responds to; the sample that fires it most is
    the one it already matches best, so its features sharpen instead of taking in whatever came
    first (a batch-wide competitive step, as in mini-batch k-means). The per-sample traces are
    summed over the presentation at the steps where the sample's layer spiked, and a column gets
    its owner's sums in proportion to its share of that sample's spikes, with c_bj = sum_t s_post,bj::

        P_b = sum_t x_pre,b(t) sum_k s_post,bk(t)       D_b = sum_t s_pre,b(t) sum_k x_post,bk(t)
        dw_ij = sum_{b owns j} (c_bj / sum_k c_bk) (nu_post P_b,i - nu_pre D_b,i)

    exact where one neuron fires per sample (Diehl & Cook's lateral inhibition), an estimate where
    several do. At batch 1 it is ``sum`` (one sample owns every neuron it fires); it is not split
    across processes and does not combine with ``overflow``.

    ``overflow: nearest`` gives the samples that taught no neuron (every neuron they fired was
    already owned by K earlier samples) a neuron after all: the one with room left whose weights
    are closest to the sample's presynaptic activity, as a sequential presentation would have
    found it once the earlier samples had raised their winners' thresholds. At the end of the
    presentation, with P_b = sum_t x_pre,b(t) [sample b's target layer spiked at t] (the
    potentiation its own winner received) and the samples taken in batch order, up to K per
    neuron::

        j*(b) = argmax_j  P_b . w_j   over neurons j with fewer than K owners
        w_j*  += nu_post * P_b

    It changes nothing at batch 1 (every sample teaches) and is not split across processes.

    ``baseline: running_mean`` potentiates from the presynaptic trace minus its running mean, a
    presynaptic form of the covariance rule (Sejnowski 1977, J. Math. Biol. 4:303): an input
    that fires the same for every sample (a grey background) potentiates nothing, and one that
    fires less than usual depresses::

        m_i  <- m_i + (dt / baseline_tc) (mean_b x_pre,b,i(t) - m_i)     every step while learning
        dw_ij = - nu_pre s_pre_i x_post_j + nu_post (x_pre_i - m_i) s_post_j

    m starts at 0, is kept with the connection's state (``<connection>.pre_mean``: checkpoints,
    the device) and is not split across processes.
    """

    supports_owner = True

    def __init__(self, connection, *, bounds: str = "hard", baseline: str = "none",
                 baseline_tc: float = 1000.0, **kw):
        super().__init__(connection, **kw)
        self.bounds = check_bounds(bounds, connection)
        if baseline not in BASELINES:
            raise ConfigError(f"the presynaptic baseline of the potentiation: one of {', '.join(BASELINES)}, "
                              f"got {baseline!r}", key="baseline")
        if not float(baseline_tc) > 0:
            raise ConfigError(f"the time constant (ms) of the running mean: > 0, got {baseline_tc}", key="baseline_tc")
        self.baseline, self.baseline_rate = baseline, min(1.0, self.dt / float(baseline_tc))
        for role, group in (("source", self.source), ("target", self.target)):
            if group is not None and not group.traces:
                raise ConfigError(f"post_pre needs spike traces on its {role} group "
                                  f"'{getattr(connection, role)}': set traces: true there",
                                  key="connection")
        if not hasattr(connection, "w") or connection.w.dim() != 2:
            raise ConfigError("post_pre learns dense connections (a 2-D weight matrix)",
                              key="connection")
        if self.owner_by != "first_spike" and self.overflow != "none":
            raise ConfigError(f"owner_by: {self.owner_by} chooses owners at the end of a presentation; overflow: "
                              f"{self.overflow} places what first_spike owners left: use one of them", key="owner_by")
        if self.overflow != "none" and self.reduction != "owner":
            raise ConfigError(f"overflow: {self.overflow} places the samples that the owner reduction left "
                              f"without a neuron; it needs reduction: owner (got {self.reduction})", key="overflow")
        self.owner = self.members = self.placed = self.potentiation = self.by_count = None
        if self.baseline != "none" and hasattr(connection, "w") and connection.w.dim() == 2:
            # a buffer of the connection: saved in checkpoints, moved with the network, restored
            # after the CUDA-graph warm-up like the weights
            connection.register_buffer("pre_mean", torch.zeros(connection.w.shape[0], dtype=connection.w.dtype))

    def reset_state(self, batch_size: int) -> None:
        self.owner = None  # (n_post,) sample index that owns each neuron, -1: none yet
        self.members = None  # owners > 1: (B, n_post) whether sample b is one of j's owners
        self.placed = None  # overflow: (B, n_post) the samples placed on a free neuron
        # overflow: each sample's summed presynaptic traces at its target layer's spikes (allocated
        # here, added to in place: a compiled step sees the same tensor at every step)
        w = self.connection.w
        self.potentiation = w.new_zeros(batch_size, w.shape[0]) \
            if self.overflow != "none" and self.reduction == "owner" and batch_size > 1 else None
        # owner_by: spike_count: each sample's P_b and D_b and its spike counts c_bj, summed over
        # the presentation (in place, like the potentiation above)
        self.by_count = (w.new_zeros(batch_size, w.shape[0]), w.new_zeros(batch_size, w.shape[0]),
                         w.new_zeros(batch_size, w.shape[1])) \
            if self.owner_by == "spike_count" and self.reduction == "owner" and batch_size > 1 else None

    def claim(self, s_post: torch.Tensor) -> None:
        """Neurons that fire now for the first time in this presentation are owned by the
        (lowest-index) sample that fired them."""
        if self.data_parallel is not None:  # ownership is decided over the whole global batch
            self.data_parallel.claim(self, s_post)
            return
        if getattr(self, "owner", None) is None:
            self.owner = torch.full((s_post.shape[1],), -1, dtype=torch.long, device=s_post.device)
        first = s_post.argmax(0)  # the first sample index among the maxima
        fired = s_post.gather(0, first[None]).squeeze(0) > 0  # (not a second reduction)
        self.owner = torch.where(fired & (self.owner < 0), first, self.owner)

    def owners_per_neuron(self, b: int) -> int:
        """K, the samples of a batch of ``b`` that each neuron may learn from (``owners``);
        ``auto``: ceil(B / n_post), so that the batch's B samples can all be learned from."""
        if self.owners != "auto":
            return self.owners
        return max(1, math.ceil(self.batch_size(b) / self.connection.w.shape[1]))

    def claim_many(self, s_post: torch.Tensor, k: int) -> torch.Tensor:
        """``owners`` K > 1: (B, n_post) 0/1, whether sample b is one of the first K samples that
        fired neuron j in this presentation (ties: lower sample indices first; over a
        data-parallel batch, lower ranks' rows first, as in one process)."""
        if self.members is None or self.members.shape != s_post.shape:
            self.members = torch.zeros_like(s_post)
            self.taken = s_post.new_zeros(s_post.shape[1])  # owners of each neuron over the whole batch
        fresh = (s_post > 0).to(s_post.dtype) * (1 - self.members)
        room = k - self.taken
        dp = self.data_parallel
        if dp is None:
            total, earlier = fresh.sum(0), 0.0
        else:
            per_rank = fresh.new_zeros(dp.world, fresh.shape[1])
            per_rank[dp.rank] = fresh.sum(0)
            per_rank = dp.all_reduce_(per_rank)
            total, earlier = per_rank.sum(0), per_rank[:dp.rank].sum(0)
        running = self._lower_triangle(fresh.shape[0], fresh) @ fresh  # fresh firings down the batch
        self.members = self.members + fresh * ((running + earlier) <= room).to(s_post.dtype)
        self.taken = self.taken + torch.minimum(total, room)
        return self.members

    def learned_from(self, b: int) -> torch.Tensor | None:
        """(B,) 0/1: the samples of this presentation the rule learned from (owners, and the
        samples ``overflow`` placed); None at batch 1 on the CPU, where every sample teaches."""
        if self.members is not None:
            learned = (self.members.sum(1) > 0).to(self.members.dtype)
        elif self.owner is not None:
            owned = torch.zeros(b + 1, device=self.owner.device)
            learned = owned.scatter_(0, self.owner.clamp_min(-1) + 1, 1.0)[1:]
        else:
            return None
        if self.placed is not None:
            learned = learned + self.placed.sum(1)
        return learned

    def end_presentation(self) -> None:
        if self.by_count is not None and self.data_parallel is None:
            self.learn_from_strongest()
            self.connection.clamp()
        if self.potentiation is not None and self.data_parallel is None:
            self.place_overflow()
            self.connection.clamp()

    def place_overflow(self) -> None:
        """``overflow: nearest``: the samples that taught nothing teach the nearest neuron with room.
        No host sync (it is captured in the presentation's CUDA graph): a fixed number of rounds,
        each placing every unplaced sample on its best free neuron, lower samples first."""
        p, w = self.potentiation, self.connection.w
        b, n = p.shape[0], w.shape[1]
        learned = self.learned_from(b)
        if learned is None:  # nothing was claimed (no step ran): no owners, nothing to place
            return
        if self.members is not None:
            room = (self.owners_per_neuron(b) - self.taken).clamp_min(0)
        else:
            room = (self.owner < 0).to(w.dtype)
        waiting = (learned == 0) & (p.sum(1) > 0)  # fired nothing: nothing to teach either
        score = p @ w  # (B, n): how close each neuron's weights are to each sample's activity
        tril = self._lower_triangle(b, w)
        placed = w.new_zeros(b, n)
        for _ in range(OVERFLOW_ROUNDS):
            open_score = score.masked_fill(room[None] <= 0, float("-inf"))
            best = open_score.argmax(1, keepdim=True)
            fits = waiting & torch.isfinite(open_score.gather(1, best).squeeze(1))
            want = w.new_zeros(b, n).scatter_(1, best, 1.0) * fits[:, None].to(w.dtype)
            got = want * ((tril @ want) <= room[None]).to(w.dtype)  # up to room[j], in sample order
            placed += got
            room = room - got.sum(0)
            waiting = waiting & (got.sum(1) == 0)
        self.placed = placed
        w.add_(p.t() @ placed, alpha=self.nu[1])

    def learn_from_strongest(self) -> None:
        """``owner_by: spike_count``: each neuron learns from the K samples that fired it most in
        this presentation (see the class docstring). No host sync: captured with the presentation."""
        pot, dep, count = self.by_count
        b = count.shape[0]
        k = min(self.owners_per_neuron(b), b)
        # spike count first, then lower sample index: exact in float32 (counts <= steps, b <= 2^12)
        rank = count * (b + 1) + torch.arange(b - 1, -1, -1, device=count.device, dtype=count.dtype)[:, None]
        top = rank.topk(k, dim=0).indices  # (k, n_post)
        members = count.new_zeros(count.shape).scatter_(0, top, 1.0) * (count > 0).to(count.dtype)
        self.members = members
        coef = members * count / count.sum(1, keepdim=True).clamp_min(1.0)
        self.apply_terms(pot.t() @ coef, dep.t() @ coef)

    def _lower_triangle(self, b: int, like: torch.Tensor) -> torch.Tensor:
        """(b, b) ones on and below the diagonal: ``tril @ x`` is the running sum down the batch,
        exact for 0/1 counts (in place of cumsum, whose scan some torch.compile versions cannot
        generate on CUDA)."""
        t = getattr(self, "_tril", None)
        if t is None or t.shape[0] != b or t.device != like.device or t.dtype != like.dtype:
            t = self._tril = torch.ones(b, b, dtype=like.dtype, device=like.device).tril()
        return t

    def owner_terms(self, s_pre, x_pre, s_post, x_post) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_pre^T s_post, s_pre^T x_post) over the owner samples only. Each column has at most
        one contributing sample, so the batch sum is a gather of that sample's row: O(n_pre n_post)
        work instead of a batch-sized matrix product."""
        self.claim(s_post)
        if not s_post.shape[0]:  # a data-parallel rank without rows (a last batch smaller than the world)
            none = x_pre.new_zeros(x_pre.shape[1], s_post.shape[1])
            return none, none
        own = self.owner.clamp_min(0)
        valid = (self.owner >= 0).to(s_post.dtype)
        s_own = s_post.gather(0, own[None]).squeeze(0) * valid  # (n_post,)
        x_own = x_post.gather(0, own[None]).squeeze(0) * valid
        return x_pre[own].t() * s_own, s_pre[own].t() * x_own

    def update(self) -> None:
        b = self.source.s.shape[0]
        s_pre, x_pre = self.source.s.flatten(1), self.source.x.flatten(1)
        s_post, x_post = self.target.s.flatten(1), self.target.x.flatten(1)
        scale = 1.0 / max(b, 1) if self.reduction == "mean" else 1.0
        w = self.connection.w
        # with one sample, 'owner' is 'sum': the two small matrix products are cheaper on the CPU
        # (on CUDA the gather, fused by torch.compile, beats two cuBLAS launches: 294 vs 208
        # images/s at batch 1 on an H200); a batch split over processes decides ownership jointly
        single = b == 1 and not s_post.is_cuda and getattr(self, "data_parallel", None) is None
        k = self.owners_per_neuron(b) if self.reduction == "owner" else 1
        if self.baseline != "none":
            m = self.connection.pre_mean
            m.lerp_(x_pre.mean(0).to(m.dtype), self.baseline_rate)  # in place: a captured graph replays it
            x_pre = x_pre - m
        if self.potentiation is not None and not single:
            self.potentiation.add_(x_pre * s_post.amax(1, keepdim=True))
        if self.by_count is not None and not single:  # learned at the end of the presentation
            pot, dep, count = self.by_count
            pot.add_(x_pre * s_post.sum(1, keepdim=True))
            dep.add_(s_pre * x_post.sum(1, keepdim=True))
            count.add_(s_post)
            return
        if self.reduction == "owner" and k > 1 and not single:
            member = self.claim_many(s_post, k)  # batch-sized products: each column has up to K samples
            potentiation, depression = x_pre.t() @ (s_post * member), s_pre.t() @ (x_post * member)
        elif self.reduction == "owner" and not single:
            potentiation, depression = self.owner_terms(s_pre, x_pre, s_post, x_post)
        elif self.bounds == "soft":
            potentiation, depression = x_pre.t() @ s_post, s_pre.t() @ x_post
        else:
            # sum over the batch of outer products = one matmul (no per-sample matrices)
            if self.nu[0]:
                w.addmm_(s_pre.t(), x_post, alpha=-self.nu[0] * scale)
            if self.nu[1]:
                w.addmm_(x_pre.t(), s_post, alpha=self.nu[1] * scale)
            return
        self.apply_terms(potentiation, depression, scale)

    def apply_terms(self, potentiation: torch.Tensor, depression: torch.Tensor, scale: float = 1.0) -> None:
        """w += scale (nu_post P - nu_pre D), each term weight-dependent under soft bounds."""
        w = self.connection.w
        if self.bounds == "soft":
            c = self.connection
            potentiation = potentiation * (c.wmax - w)
            depression = depression * (w - c.wmin)
        w.sub_(depression, alpha=self.nu[0] * scale)
        w.add_(potentiation, alpha=self.nu[1] * scale)


# -- the STDP family ------------------------------------------------------------------------------
class TraceSTDP(LearningRule):
    """Base of the STDP family: a potentiation term P >= 0 and a depression term D >= 0 per step,
    summed (or averaged, ``reduction``) over the batch, then bounded::

        bounds: hard   w <- clamp(w + P - D, wmin, wmax)
        bounds: soft   w <- w + P (wmax - w) - D (w - wmin)    (multiplicative, needs finite bounds)

    Per-connection weight normalisation is the connection's ``norm`` (applied after each
    presentation while learning). Rules with ``own_traces`` keep their own pre/post traces
    (SPAIC's online rules: ``tc_pre``/``tc_post`` in ms, reset every presentation), updated with
    the current spikes before the weight change; the others read the groups' traces (BindsNET's
    rules: set ``traces: true`` on both groups). Subclasses implement :meth:`terms`.
    """

    default_bounds = "hard"
    own_traces = False
    nearest = False  # own traces: True = set to 1 at a spike (nearest pairs), False = add 1 (all pairs)

    def __init__(self, connection, *, bounds: str | None = None, tc_pre: float = 20.0, tc_post: float = 20.0, **kw):
        super().__init__(connection, **kw)
        name = self.registered_name
        self.bounds = check_bounds(bounds or self.default_bounds, connection)
        self.check_connection(connection)
        if self.own_traces:
            for k, v in (("tc_pre", tc_pre), ("tc_post", tc_post)):
                if not float(v) > 0:
                    raise ConfigError(f"must be > 0 ms, got {v}", key=k)
            self.decay_pre, self.decay_post = math.exp(-self.dt / float(tc_pre)), math.exp(-self.dt / float(tc_post))
            self.x_pre = self.x_post = None
        else:
            for role, group in (("source", self.source), ("target", self.target)):
                if group is not None and not group.traces:
                    raise ConfigError(f"{name} needs spike traces on its {role} group "
                                      f"'{getattr(connection, role)}': set traces: true there", key="connection")

    def check_connection(self, connection) -> None:
        if not hasattr(connection, "w") or connection.w.dim() != 2:
            raise ConfigError(f"{self.registered_name} learns dense connections (a 2-D weight matrix)",
                              key="connection")

    def reset_state(self, batch_size: int) -> None:
        if self.own_traces:
            self.x_pre = self.x_post = None

    @staticmethod
    def _trace(x: torch.Tensor | None, s: torch.Tensor, decay: float, nearest: bool) -> torch.Tensor:
        if x is None or x.shape != s.shape:
            x = torch.zeros_like(s)
        return (x * decay).masked_fill(s > 0, 1.0) if nearest else x * decay + s

    def spikes_and_traces(self):
        """(s_pre, x_pre, s_post, x_post), each (B, n) flattened."""
        s_pre, s_post = self.source.s.flatten(1), self.target.s.flatten(1)
        if self.own_traces:
            self.x_pre = self._trace(self.x_pre, s_pre, self.decay_pre, self.nearest)
            self.x_post = self._trace(self.x_post, s_post, self.decay_post, self.nearest)
            return s_pre, self.x_pre, s_post, self.x_post
        return s_pre, self.source.x.flatten(1), s_post, self.target.x.flatten(1)

    def outer(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Batch-reduced outer product: sum_b a_b^T b_b (/ B with reduction: mean)."""
        out = a.t() @ b
        return out / a.shape[0] if self.reduction == "mean" else out

    def terms(self, s_pre, x_pre, s_post, x_post) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        raise NotImplementedError  # pragma: no cover - abstract

    def update(self) -> None:
        self.apply(*self.terms(*self.spikes_and_traces()))

    def apply(self, P: torch.Tensor | None, D: torch.Tensor | None) -> None:
        w = self.connection.w
        if self.bounds == "soft":
            P = None if P is None else P * (self.connection.wmax - w)
            D = None if D is None else D * (w - self.connection.wmin)
        if P is not None:
            w.add_(P.to(w.dtype))
        if D is not None:
            w.sub_(D.to(w.dtype))


@LearningRule.register("weight_dependent_post_pre", source="bindsnet")
class WeightDependentPostPre(TraceSTDP):
    """PostPre with soft (weight-dependent) bounds (BindsNET's ``WeightDependentPostPre``).

    ::

        dw_ij = nu_post x_pre_i s_post_j (wmax - w_ij) - nu_pre s_pre_i x_post_j (w_ij - wmin)

    Reads the groups' traces (``traces: true`` on both); needs finite wmin/wmax. ``bounds: hard``
    turns it back into post_pre.
    """

    default_bounds = "soft"

    def terms(self, s_pre, x_pre, s_post, x_post):
        return (self.nu[1] * self.outer(x_pre, s_post) if self.nu[1] else None,
                self.nu[0] * self.outer(s_pre, x_post) if self.nu[0] else None)


@LearningRule.register("hebbian", source="bindsnet")
class Hebbian(TraceSTDP):
    """Hebbian STDP (BindsNET's ``Hebbian``): both spike orders potentiate.

    ::

        dw_ij = nu_pre s_pre_i x_post_j + nu_post x_pre_i s_post_j

    Reads the groups' traces; hard or soft bounds.
    """

    def terms(self, s_pre, x_pre, s_post, x_post):
        P = self.nu[0] * self.outer(s_pre, x_post) + self.nu[1] * self.outer(x_pre, s_post)
        return P, None


@LearningRule.register("nearest_online_stdp", source="spaic")
class NearestOnlineSTDP(TraceSTDP):
    """Online STDP with nearest-spike traces (SPAIC's ``nearest_online_STDP``).

    The rule keeps its own traces, reset at each presentation and set to 1 at a spike::

        x_pre  <- 1 where s_pre  else x_pre  exp(-dt / tc_pre)      (likewise x_post)
        dw_ij   = nu_post x_pre_i s_post_j - nu_pre s_pre_i x_post_j

    so each post spike pairs only with the nearest earlier pre spike and vice versa.
    Defaults nu = [1e-4, 1e-2] (SPAIC's Apre, Apost), tc 20 ms; hard or soft bounds.
    """

    own_traces, nearest = True, True

    def terms(self, s_pre, x_pre, s_post, x_post):
        return (self.nu[1] * self.outer(x_pre, s_post) if self.nu[1] else None,
                self.nu[0] * self.outer(s_pre, x_post) if self.nu[0] else None)


@LearningRule.register("full_online_stdp", source="spaic")
class FullOnlineSTDP(NearestOnlineSTDP):
    """Online all-pairs STDP (SPAIC's ``full_online_STDP``): every earlier spike pairs.

    Like nearest_online_stdp, but the traces add up, x <- x exp(-dt / tc) + s, so every earlier
    spike of the partner contributes."""

    nearest = False


ROUNDINGS = ("stochastic", "floor")
TRACE_SHIFT = 15  # the trace decays by trace_decay / 2^15 per step (SPAIC's shift_spike_trace)


@LearningRule.register("post_pre_int", "spaic.postpreint", source="spaic")
class PostPreInt(TraceSTDP):
    """PostPre in integer arithmetic (SPAIC's ``PostPreInt``, spaic/Learning/STDP_Learner.py; fixed
    point as on digital neuromorphic chips).

    Weights are integers W in units of 1/``scale`` (w = W / scale, kept exactly on that grid);
    the rule keeps integer traces X in 0..``trace_max``, reset every presentation::

        X <- (trace_decay X) >> 15           trace_decay = floor(2^15 exp(-dt / tc_trace)):
                                             31169 at dt = 1, tc_trace = 20 (SPAIC's constant)
        X <- trace_max where s               set at a spike (nearest pairs)
        P  = nu_post scale sum_b X_pre s_post / trace_max     potentiation, in weight steps
        D  = nu_pre  scale sum_b s_pre X_post / trace_max     depression
        W <- clamp(W + R(P) - R(D))

    R is ``rounding``: ``stochastic`` (default; SPAIC's stochastic_round) R(v) = floor(v) + [u < v -
    floor(v)] with u uniform on [0, 1), so E[R(v)] = v and an update below one weight step still
    learns on average (the default nu_pre = 1e-4 at scale 1000 is a tenth of a step: floored it would
    be 0 for ever); ``floor`` R(v) = floor(v), refused when nu x scale < 1 (nothing would be learnt).
    The uniforms are counter-based (``seed``, a draw counter kept in checkpoints): every process of
    a data-parallel run draws the same ones. Hard bounds on the grid.

    Deviations from SPAIC on purpose: SPAIC's weights are raw integers in [0, 109] with rates nu0 = 14
    and nu1 = 141 in units of 2^-14 per trace unit (here: nu x scale / trace_max); its presynaptic
    term is added although its docstring calls it depression (here it depresses, as PostPre); and it
    halves the weights of a neuron whose threshold passes ``max_threshold`` (a property of SPAIC's
    integer neuron, not ported).
    """

    own_traces = True
    reduces_batch = True  # the rounding is of the whole batch's sum: data-parallel ranks sum before it

    def __init__(self, connection, *, scale: int = 1000, trace_max: int = 127, trace_decay: int | None = None,
                 tc_trace: float = 20.0, rounding: str = "stochastic", seed: int = 0, **kw):
        if kw.get("bounds", "hard") != "hard":
            raise ConfigError("post_pre_int has hard bounds only", key="bounds")
        super().__init__(connection, tc_pre=tc_trace, tc_post=tc_trace, **kw)
        if self.reduction != "sum":
            raise ConfigError("post_pre_int sums over the batch (integer updates); use reduction: sum",
                              key="reduction")
        self.scale, self.trace_max = int(scale), int(trace_max)
        if self.scale < 1 or self.trace_max < 1:
            raise ConfigError(f"scale and trace_max must be positive integers, got {scale}, {trace_max}",
                              key="scale")
        if trace_decay is None:
            trace_decay = math.floor(2 ** TRACE_SHIFT * math.exp(-self.dt / float(tc_trace)))
        if not 0 <= int(trace_decay) < 2 ** TRACE_SHIFT:
            raise ConfigError(f"trace_decay is the trace's factor per step in units of 2^-15: an integer in "
                              f"0..32767, got {trace_decay}", key="trace_decay")
        self.trace_decay = int(trace_decay)
        if rounding not in ROUNDINGS:
            raise ConfigError(f"unknown rounding '{rounding}'. Allowed: {', '.join(ROUNDINGS)}", key="rounding")
        self.rounding = rounding
        if rounding == "floor":
            for i, v in enumerate(self.nu):
                if v and abs(v) * self.scale < 1:
                    raise ConfigError(f"nu[{i}] = {v} is {abs(v) * self.scale:g} of a weight step (1/scale = "
                                      f"1/{self.scale}); with rounding: floor every update of one pairing rounds "
                                      "to 0. Use rounding: stochastic, a larger scale or a larger nu", key="nu")
        self.seed = int(seed)
        self.draws: torch.Tensor | None = None  # how many uniforms were drawn (int64, on the weights' device)

    def spikes_and_traces(self):
        s_pre, s_post = self.source.s.flatten(1), self.target.s.flatten(1)

        def trace(x, s):
            if x is None or x.shape != s.shape:
                x = torch.zeros(s.shape, dtype=torch.int32, device=s.device)
            x = (x * self.trace_decay) >> TRACE_SHIFT  # 127 x 32767 fits int32
            return x.masked_fill(s > 0, self.trace_max)

        self.x_pre, self.x_post = trace(self.x_pre, s_pre), trace(self.x_post, s_post)
        return s_pre, self.x_pre, s_post, self.x_post

    def round(self, v: torch.Tensor) -> torch.Tensor:
        """R(v) elementwise, ``v`` a (2, ...) stack of the potentiation and depression in weight steps."""
        low = torch.floor(v)
        if self.rounding == "floor":
            return low
        if self.draws is None or self.draws.device != v.device:
            self.draws = torch.zeros((), dtype=torch.int64, device=v.device)
        self.draws.add_(1)
        u = counter_uniform(tuple(v.shape), self.draws, self.seed).to(v.dtype)
        return low + (u < v - low).to(v.dtype)

    def terms(self, s_pre, x_pre, s_post, x_post):
        # integer products summed over the batch (float64 holds them exactly; in a data-parallel
        # run over every rank's rows), then scaled to weight steps and rounded
        f = torch.float64
        sums = self.batch_total(torch.stack([x_pre.to(f).t() @ s_post.to(f), s_pre.to(f).t() @ x_post.to(f)]))
        rates = torch.tensor([self.nu[1], self.nu[0]], dtype=f, device=sums.device).view(2, 1, 1)
        P, D = self.round(rates * self.scale * sums / self.trace_max)
        return P, D

    def apply(self, P, D):
        w = self.connection.w
        W = torch.round(w.to(torch.float64) * self.scale) + P - D
        lo = math.ceil(self.connection.wmin * self.scale) if math.isfinite(self.connection.wmin) else None
        hi = math.floor(self.connection.wmax * self.scale) if math.isfinite(self.connection.wmax) else None
        W = W.clamp(lo, hi) if lo is not None or hi is not None else W
        w.copy_(W / self.scale)

    def state_dict(self) -> dict:
        return {"draws": int(self.draws) if self.draws is not None else 0}

    def load_state_dict(self, state: dict) -> None:
        self.draws = torch.tensor(int(state.get("draws", 0)), dtype=torch.int64, device=self.connection.w.device)


@LearningRule.register("conv2d_stdp", source="spaic")
class Conv2dSTDP(TraceSTDP):
    """STDP for ``conv2d`` connections (SPAIC's ``conv2d_stdp``), summed over kernel positions.

    The weight is shared by every position, so each kernel weight sums the pairings of all the
    positions it connects::

        x_pre, x_post: own nearest-spike traces of the input map and the output map (reset per presentation)
        dw[o, c, u, v] = nu_post sum_{b, p} s_post[b, o, p] x_pre[b, c, p + (u, v)]
                       - nu_pre  sum_{b, p} x_post[b, o, p] s_pre[b, c, p + (u, v)]

    (p runs over output positions; the input patch follows the connection's stride and padding).
    Hard or soft bounds; defaults nu = [1e-4, 1e-2], tc 20 ms.
    """

    own_traces, nearest = True, True

    def check_connection(self, connection) -> None:
        if not hasattr(connection, "w") or connection.w.dim() != 4:
            raise ConfigError("conv2d_stdp learns conv2d connections (a 4-D kernel)", key="connection")

    def spikes_and_traces(self):
        b = self.source.s.shape[0]
        src, tgt = self.connection.source_shape, self.connection.target_shape
        s_pre, s_post = self.source.s.reshape(b, *src), self.target.s.reshape(b, *tgt)
        self.x_pre = self._trace(self.x_pre, s_pre, self.decay_pre, True)
        self.x_post = self._trace(self.x_post, s_post, self.decay_post, True)
        return s_pre, self.x_pre, s_post, self.x_post

    def _pairs(self, post: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
        c = self.connection
        cols = torch.nn.functional.unfold(pre, c.w.shape[2:], padding=c.padding, stride=c.stride)  # (B, C k k, L)
        out = torch.einsum("bol,bkl->ok", post.flatten(2), cols).view_as(c.w)
        return out / pre.shape[0] if self.reduction == "mean" else out

    def terms(self, s_pre, x_pre, s_post, x_post):
        return (self.nu[1] * self._pairs(s_post, x_pre) if self.nu[1] else None,
                self.nu[0] * self._pairs(x_post, s_pre) if self.nu[0] else None)
