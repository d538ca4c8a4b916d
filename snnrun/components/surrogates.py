"""Surrogate spike functions: a Heaviside step forward, a smooth pseudo-derivative backward.

Each surrogate is a :class:`torch.autograd.Function` (``Atan.function.apply(x, alpha)``) wrapped in
a small module registered by name, so neuron configs say ``surrogate: atan`` or
``surrogate: {type: atan, alpha: 2.0}``::

    sg = Surrogate.build({"type": "atan", "alpha": 2.0})
    s = sg(v - v_threshold)          # forward: s = H(x) = 1 if x >= 0 else 0
                                     # backward: ds/dx := sg.derivative(x)

``x`` is the distance to threshold. SPAIC's learners fire at x > 0 (``input.gt(thresh)``), so their
surrogates (``stca_rect``, ``stbp_gaussian``) are strict: H(0) = 0 there. ``alpha`` sets the sharpness (larger = narrower); its
default is the one of the framework the surrogate comes from (named in each docstring).
:meth:`Surrogate.primitive` is the smooth function whose derivative the surrogate uses (the tests
check ``derivative == d primitive / dx`` by finite differences and autograd against both).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from snnrun.errors import ConfigError
from snnrun.registry import Registered, Registry, as_node


def heaviside(x: torch.Tensor) -> torch.Tensor:
    """The spike: 1 where x >= 0, else 0 (in x's dtype)."""
    return (x >= 0).to(x.dtype)


class SurrogateFunction(torch.autograd.Function):
    """Forward: Heaviside step. Backward: ``grad * derivative(x, *params)``.

    Subclasses define only the static ``derivative(x, *params)``; ``apply(x, *params)`` takes the
    surrogate's numeric parameters (alpha first) as plain floats.
    """

    @staticmethod
    def derivative(x: torch.Tensor, *params: float) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def forward(ctx, x: torch.Tensor, *params: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.params = params
        return heaviside(x)

    @classmethod
    def backward(cls, ctx, grad_output: torch.Tensor):
        (x,) = ctx.saved_tensors
        grad = grad_output * cls.derivative(x, *ctx.params) if ctx.needs_input_grad[0] else None
        return (grad, *([None] * len(ctx.params)))


class Surrogate(Registered, nn.Module):
    """Base class: ``forward(x) = H(x)`` with the pseudo-derivative of the subclass.

    A subclass sets ``function`` (a :class:`SurrogateFunction`), ``primitive`` (the smooth step
    it differentiates) and the defaults of its parameters.
    """

    registry: Registry = Registry("surrogate")
    function: type[SurrogateFunction]

    def __init__(self, alpha: float):
        super().__init__()
        self.alpha = float(alpha)
        if not self.alpha > 0:
            raise ConfigError(f"alpha must be > 0, got {alpha}", key="alpha")

    def params(self) -> tuple[float, ...]:
        return (self.alpha,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (x.requires_grad and torch.is_grad_enabled()):
            # no backward to shape: the plain step (also keeps the autograd.Function, which
            # some torch.compile versions cannot trace, out of compiled STDP/eval loops)
            return (x > 0).to(x.dtype) if issubclass(self.function, StrictSurrogateFunction) else heaviside(x)
        return self.function.apply(x, *self.params())

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        """The pseudo-derivative used in the backward pass."""
        return self.function.derivative(x, *self.params())

    def primitive(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """A smooth function whose derivative is :meth:`derivative`."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return ", ".join(f"{n}={v}" for n, v in zip(("alpha", "width"), self.params()))


def build_surrogate(spec: Any, key: str = "surrogate") -> Surrogate:
    """A surrogate from a config value: a name (``atan``), a node (``{type: atan, alpha: 2}``)
    or an already built :class:`Surrogate`."""
    if isinstance(spec, Surrogate):
        return spec
    return Surrogate.build(as_node(spec, key), key=key)


class StrictSurrogateFunction(SurrogateFunction):
    """Forward: the strict step, 1 where x > 0 (SPAIC's ``input.gt(thresh)``); backward as the base."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, *params: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.params = params
        return (x > 0).to(x.dtype)


def _function(name: str, derivative, strict: bool = False) -> type[SurrogateFunction]:
    base = StrictSurrogateFunction if strict else SurrogateFunction
    return type(name, (base,), {"derivative": staticmethod(derivative)})


@Surrogate.register("sigmoid")
class Sigmoid(Surrogate):
    """Sigmoid (SpikingJelly): g(x) = sigmoid(alpha x), g'(x) = alpha sg(1 - sg); alpha=4."""

    function = _function("SigmoidGrad", lambda x, a: a * torch.sigmoid(a * x) * (1 - torch.sigmoid(a * x)))

    def __init__(self, alpha: float = 4.0):
        super().__init__(alpha)

    def primitive(self, x):
        return torch.sigmoid(self.alpha * x)


@Surrogate.register("atan", "arctan")
class Atan(Surrogate):
    """Arctangent (SpikingJelly, snnTorch): g'(x) = (alpha / 2) / (1 + (pi/2 alpha x)^2); alpha=2."""

    function = _function("AtanGrad", lambda x, a: (a / 2) / (1 + (math.pi / 2 * a * x) ** 2))

    def __init__(self, alpha: float = 2.0):
        super().__init__(alpha)

    def primitive(self, x):
        return torch.atan(math.pi / 2 * self.alpha * x) / math.pi + 0.5


@Surrogate.register("fast_sigmoid", "superspike")
class FastSigmoid(Surrogate):
    """Fast sigmoid / SuperSpike (Zenke & Ganguli 2018; snnTorch): g'(x) = 1 / (1 + alpha |x|)^2;
    alpha=25 (snnTorch's slope)."""

    function = _function("FastSigmoidGrad", lambda x, a: 1.0 / (1 + a * x.abs()) ** 2)

    def __init__(self, alpha: float = 25.0):
        super().__init__(alpha)

    def primitive(self, x):
        return x / (1 + self.alpha * x.abs())


@Surrogate.register("inv_square")
class InvSquare(FastSigmoid):
    """Inverse square (brainpy's InvSquareGrad): g'(x) = 1 / (alpha |x| + 1)^2; alpha=100.
    The fast-sigmoid formula with brainpy's default sharpness."""

    def __init__(self, alpha: float = 100.0):
        super().__init__(alpha)


@Surrogate.register("rectangular", "rectangle")
class Rectangular(Surrogate):
    """Rectangular window (Wu et al. 2018, STBP): g'(x) = alpha where |x| < 1/(2 alpha), else 0
    (unit area); alpha=1."""

    function = _function("RectangularGrad", lambda x, a: a * (x.abs() < 0.5 / a).to(x.dtype))

    def __init__(self, alpha: float = 1.0):
        super().__init__(alpha)

    def primitive(self, x):
        return (self.alpha * x + 0.5).clamp(0.0, 1.0)


@Surrogate.register("triangle", "triangular")
class Triangle(Surrogate):
    """Triangle (Esser et al. 2016; Bellec et al. 2018 without dampening):
    g'(x) = max(0, 1 - alpha |x|) (peak 1); alpha=1."""

    function = _function("TriangleGrad", lambda x, a: (1 - a * x.abs()).clamp_min(0.0))

    def __init__(self, alpha: float = 1.0):
        super().__init__(alpha)

    def primitive(self, x):
        a, w = self.alpha, 1.0 / self.alpha
        xc = x.clamp(-w, w)
        return xc - a * xc * xc.abs() / 2


@Surrogate.register("piecewise_quadratic")
class PiecewiseQuadratic(Surrogate):
    """Piecewise quadratic (SpikingJelly; Esser et al. 2016): g(x) = 0 (x < -1/alpha),
    -alpha^2 |x| x / 2 + alpha x + 1/2 (|x| <= 1/alpha), 1 (x > 1/alpha);
    g'(x) = max(0, alpha - alpha^2 |x|) (unit area); alpha=1."""

    function = _function("PiecewiseQuadraticGrad", lambda x, a: (a - a * a * x.abs()).clamp_min(0.0))

    def __init__(self, alpha: float = 1.0):
        super().__init__(alpha)

    def primitive(self, x):
        a = self.alpha
        xc = x.clamp(-1.0 / a, 1.0 / a)
        return -a * a * xc.abs() * xc / 2 + a * xc + 0.5


@Surrogate.register("relu_grad")
class ReluGrad(Surrogate):
    """ReLU-shaped gradient (brainpy's ReluGrad): g'(x) = max(0, alpha (width - |x|));
    alpha=0.3, width=1."""

    function = _function("ReluGradGrad", lambda x, a, w: (a * (w - x.abs())).clamp_min(0.0))

    def __init__(self, alpha: float = 0.3, width: float = 1.0):
        super().__init__(alpha)
        self.width = float(width)
        if not self.width > 0:
            raise ConfigError(f"width must be > 0, got {width}", key="width")

    def params(self):
        return (self.alpha, self.width)

    def primitive(self, x):
        xc = x.clamp(-self.width, self.width)
        return self.alpha * (self.width * xc - xc * xc.abs() / 2)


@Surrogate.register("erf")
class Erf(Surrogate):
    """Gaussian error function (SpikingJelly): g(x) = erfc(-alpha x) / 2,
    g'(x) = alpha / sqrt(pi) exp(-alpha^2 x^2); alpha=2."""

    function = _function("ErfGrad", lambda x, a: a / math.sqrt(math.pi) * torch.exp(-(a * x) ** 2))

    def __init__(self, alpha: float = 2.0):
        super().__init__(alpha)

    def primitive(self, x):
        return torch.special.erfc(-self.alpha * x) / 2


@Surrogate.register("stca_rect", source="spaic")
class STCARect(Surrogate):
    """Rectangle of SPAIC's STCA learner (Gu et al. 2019; SPAIC ``STCA_Learner.ActFun``):
    spike where x > 0 (strict), g'(x) = 1 where |x| < alpha, else 0; alpha=0.5 (the learner
    ``stca`` sets it on every trainable node). Unit height, not unit area: SPAIC passes the
    upstream gradient through unscaled inside the window."""

    function = _function("STCARectGrad", lambda x, a: (x.abs() < a).to(x.dtype), strict=True)

    def __init__(self, alpha: float = 0.5):
        super().__init__(alpha)

    def primitive(self, x):
        return x.clamp(-self.alpha, self.alpha) + 0.5


@Surrogate.register("stbp_gaussian", source="spaic")
class STBPGaussian(Surrogate):
    """Gaussian of SPAIC's STBP learner: spike where x > 0, g'(x) = exp(-x^2 / (2 alpha)) / (2 pi alpha).

    Wu et al. 2018 (Front. Neurosci. 12:331), as SPAIC's ``STBP_Learner.ActFun``; alpha=0.5 (the
    learner ``stbp`` sets it on every trainable node). Wu et al.'s h4 normalises by sqrt(2 pi alpha) (unit area); SPAIC divides by
    2 pi alpha, and this follows SPAIC (peak 1/pi at alpha=0.5)."""

    function = _function("STBPGaussianGrad",
                         lambda x, a: torch.exp(-x * x / (2 * a)) / (2 * math.pi * a), strict=True)

    def __init__(self, alpha: float = 0.5):
        super().__init__(alpha)

    def primitive(self, x):
        # integral of the Gaussian: Phi(x / sqrt(alpha)) scaled by sqrt(2 pi alpha) / (2 pi alpha)
        a = self.alpha
        return 0.5 * (1 + torch.erf(x / math.sqrt(2 * a))) / math.sqrt(2 * math.pi * a)
