"""Surrogate spike functions: Heaviside forward, backward equal to the analytic pseudo-derivative."""

import math

import pytest
import torch

from snnrun.errors import ConfigError
from snnrun.components.surrogates import Surrogate, build_surrogate

# the analytic derivatives, written out independently of the implementation
ANALYTIC = {
    "sigmoid": (4.0, lambda x, a: a * torch.sigmoid(a * x) * (1 - torch.sigmoid(a * x))),
    "atan": (2.0, lambda x, a: a / 2 / (1 + (math.pi / 2 * a * x) ** 2)),
    "fast_sigmoid": (25.0, lambda x, a: (1 + a * x.abs()) ** -2),
    "inv_square": (100.0, lambda x, a: (a * x.abs() + 1) ** -2),
    "rectangular": (1.0, lambda x, a: torch.where(x.abs() < 1 / (2 * a), a, 0.0)),
    "triangle": (1.0, lambda x, a: torch.relu(1 - a * x.abs())),
    "piecewise_quadratic": (1.0, lambda x, a: torch.where(x.abs() <= 1 / a, a - a ** 2 * x.abs(), 0.0)),
    "relu_grad": (0.3, lambda x, a: torch.relu(a * (1.0 - x.abs()))),
    "erf": (2.0, lambda x, a: a / math.sqrt(math.pi) * torch.exp(-(a * x) ** 2)),
    # SPAIC's STCA ActFun: the upstream gradient passes unscaled where |x| < alpha
    "stca_rect": (0.5, lambda x, a: torch.where(x.abs() < a, 1.0, 0.0)),
    # SPAIC's STBP ActFun: exp(-x^2 / (2 alpha)) / (2 pi alpha)
    "stbp_gaussian": (0.5, lambda x, a: torch.exp(-x ** 2 / (2 * a)) / (2 * math.pi * a)),
}
STRICT = {"stca_rect", "stbp_gaussian"}  # SPAIC's learners fire at x > 0 (input.gt(thresh))


def test_every_registered_surrogate_is_checked():
    assert set(Surrogate.registry.names()) == set(ANALYTIC)


@pytest.mark.parametrize("name", sorted(ANALYTIC))
def test_forward_is_heaviside(name):
    x = torch.tensor([-2.0, -1e-6, 0.0, 1e-6, 3.0])
    at_zero = 0.0 if name in STRICT else 1.0
    sg = Surrogate.build({"type": name})
    assert sg(x).tolist() == [0.0, 0.0, at_zero, 1.0, 1.0]  # without grad: the plain step
    assert sg(x.clone().requires_grad_()).tolist() == [0.0, 0.0, at_zero, 1.0, 1.0]  # the autograd function


@pytest.mark.parametrize("name", sorted(ANALYTIC))
@pytest.mark.parametrize("scale", [0.5, 1.0, 3.0])
def test_backward_matches_analytic_derivative(name, scale):
    default_alpha, formula = ANALYTIC[name]
    alpha = default_alpha * scale
    sg = Surrogate.build({"type": name, "alpha": alpha})
    assert sg.alpha == alpha
    x = torch.linspace(-2.0, 2.0, 401, dtype=torch.float64).requires_grad_()
    upstream = torch.rand(401, dtype=torch.float64)
    (sg(x) * upstream).sum().backward()
    expected = formula(x.detach(), alpha) * upstream
    assert torch.allclose(x.grad, expected, atol=1e-12)


@pytest.mark.parametrize("name", sorted(ANALYTIC))
def test_derivative_is_the_derivative_of_the_primitive(name):
    sg = Surrogate.build({"type": name})
    x = torch.linspace(-1.7, 1.7, 341, dtype=torch.float64)
    eps = 1e-6
    fd = (sg.primitive(x + eps) - sg.primitive(x - eps)) / (2 * eps)
    d = sg.derivative(x)
    # away from the kinks of the piecewise ones, central differences are exact to O(eps^2)
    smooth = (fd - d).abs() < 1e-5
    assert smooth.float().mean() > 0.97, name


def test_default_alphas_are_the_frameworks():
    assert {n: Surrogate.build({"type": n}).alpha for n in ANALYTIC} == {n: a for n, (a, _) in ANALYTIC.items()}
    assert Surrogate.build({"type": "relu_grad"}).width == 1.0


def test_aliases_and_build_from_name():
    assert type(build_surrogate("superspike")).__name__ == "FastSigmoid"
    assert type(build_surrogate("arctan")).__name__ == "Atan"
    sg = build_surrogate({"type": "relu_grad", "alpha": 0.5, "width": 2.0})
    x = torch.tensor([0.0, 1.0, 2.5], requires_grad=True)
    sg(x).sum().backward()
    assert x.grad.tolist() == pytest.approx([1.0, 0.5, 0.0])


def test_bad_surrogates_are_config_errors():
    with pytest.raises(ConfigError) as e:
        build_surrogate("atna", key="model.layers.1.surrogate")
    assert e.value.key == "model.layers.1.surrogate.type" and "Did you mean 'atan'" in str(e.value)
    with pytest.raises(ConfigError, match="alpha must be > 0"):
        build_surrogate({"type": "sigmoid", "alpha": 0})
    with pytest.raises(ConfigError, match="unknown option 'beta'"):
        build_surrogate({"type": "sigmoid", "beta": 1})


def test_works_in_bfloat16_and_keeps_dtype():
    x = torch.randn(16, dtype=torch.bfloat16, requires_grad=True)
    s = build_surrogate("atan")(x)
    s.sum().backward()
    assert s.dtype == torch.bfloat16 and x.grad.dtype == torch.bfloat16
