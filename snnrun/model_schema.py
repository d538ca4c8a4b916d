"""Types and ranges of model-level keys and of component options: the one table they are checked against.

Model files keep the values people change at the top of ``model`` (``model.n_neurons``,
``model.time``, ``model.intensity`` ...) and interpolate them into the nodes that use them
(``Ae: {n: ${model.n_neurons}}``, ``encoder: {time: ${model.time}}``). A bad value is caught
before anything is built and named by the key the user typed, with what is allowed:

    model.intensity: expected a number >= 0 (input rate in Hz of a pixel of value 1), got 'abc'

* ``MODEL_KEYS``: the model-level keys of snnrun's own model files (``conf/model/``).
  :func:`check_model_keys` checks the ones a model has.
* ``NEURON_PARAMS``: ranges of neuron parameters by name (time constants > 0, refractory periods
  >= 0 ...). The neuron registry checks every group node against them, and the parameter types
  against the annotations of the neuron class's ``__init__`` (``float`` = a number, ``int`` = a
  whole number, ``bool``), so ``model.network.groups.Ae.tc_decay=0`` is refused naming that key.
  A model-level key a parameter is set from (``tc_decay: ${model.tau}``) is named instead by
  ``snnrun.engine.experiment.build_experiment``.
* ``ENCODER_PARAMS``, ``CONNECTION_PARAMS``, ``LEARNER_PARAMS``, ``DATA_PARAMS``: the same for
  the encoder, connection, learning-rule and dataset registries (``Registry(kind, ranges=...)``).

A model file of your own may add model-level keys of other names: they are not in the table, so
they are checked where they land (a neuron parameter, an encoder option).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from snnrun.errors import BadValue


@dataclass(frozen=True)
class Range:
    """A number (``kind`` number/whole) within ``low``/``high`` (open ends excluded), a bool, or
    (``numbers``) a number or a list of numbers, each within the range."""

    kind: str = "number"
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    what: str = ""
    words: tuple[str, ...] = ()  # strings accepted besides numbers (e.g. intensity: auto)

    def describe(self) -> str:
        if self.kind == "bool":
            text = "true or false"
        else:
            text = {"whole": "a whole number", "numbers": "a number or a list of numbers"}.get(self.kind, "a number")
            if self.low is not None and self.high is not None:
                text += f" in {'(' if self.low_open else '['}{_num(self.low)}, {_num(self.high)}" \
                        f"{')' if self.high_open else ']'}"
            elif self.low is not None:
                text += f" {'>' if self.low_open else '>='} {_num(self.low)}"
            elif self.high is not None:
                text += f" {'<' if self.high_open else '<='} {_num(self.high)}"
        if self.words:
            text += "".join(f" or {w}" for w in self.words)
        return text + (f" ({self.what})" if self.what else "")

    def accepts(self, value: Any) -> bool:
        if isinstance(value, str) and value in self.words:
            return True
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "numbers" and isinstance(value, (list, tuple)):
            return bool(value) and all(Range(low=self.low, high=self.high, low_open=self.low_open,
                                             high_open=self.high_open).accepts(v) for v in value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            return False
        if self.kind == "whole" and float(value) != int(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True

    def check(self, value: Any, key: str, source: str = "") -> None:
        if not self.accepts(value):
            raise BadValue(f"expected {self.describe()}, got {value!r}{source}", key=key)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


POSITIVE = Range(low=0, low_open=True)
TIME_CONSTANT = Range(low=0, low_open=True, what="a time constant in ms")
DURATION = Range(low=0, what="ms")
SIZE = Range("whole", low=1)

# model-level keys of conf/model/*.yaml
MODEL_KEYS: dict[str, Range] = {
    "n_neurons": Range("whole", low=1, what="neurons per group"),
    "per_class": Range("whole", low=1, what="neurons per class"),
    "hidden": Range("whole", low=1, what="hidden units"),
    "channels": Range("whole", low=1, what="feature maps"),
    "kernel_size": Range("whole", low=1),
    "T": Range("whole", low=1, what="time steps per sample"),
    "time": Range(low=0, low_open=True, what="ms per sample"),
    "dt": Range(low=0, low_open=True, what="ms per step"),
    "intensity": Range(low=0, what="input rate in Hz of a pixel of value 1; auto: from the data's mean ink",
                       words=("auto",)),
    "exc": Range(low=0, what="excitatory weight"),
    "inh": Range(low=0, what="inhibition strength; the connection weight is its negative"),
    "theta_plus": Range(low=0, what="threshold increment per spike"),
    "norm": Range(low=0, low_open=True, what="sum of the input weights of a neuron"),
    "nu": Range(low=0, what="learning rate"),
    "dropout": Range(low=0, high=1, high_open=True, what="probability"),
}

# neuron parameters by name, for every neuron model that has them
NEURON_PARAMS: dict[str, Range] = {
    "dt": Range(low=0, low_open=True, what="ms per step"),
    **{k: TIME_CONSTANT for k in ("tc_decay", "tc_trace", "tc_theta_decay", "tc_i_decay", "tau", "tau_m",
                                  "tau_w", "tau_a", "tau_p", "tau_q", "init_tau")},
    **{k: Range(low=0, what="a duration in ms") for k in ("refrac", "tau_ref", "ref_window", "res_window")},
    "theta_plus": Range(low=0, what="threshold increment per spike"),
    "max_substep": Range(low=0, low_open=True, what="ms"),
}

# encoder options by name
ENCODER_PARAMS: dict[str, Range] = {
    "time": Range(low=0, low_open=True, what="ms per sample"),
    "dt": Range(low=0, low_open=True, what="ms per step"),
    "intensity": Range(low=0, what="input rate in Hz of a pixel of value 1"),
    "max_prob": Range(low=0, high=1, what="probability"),
}

# connection options by name
CONNECTION_PARAMS: dict[str, Range] = {
    "norm": Range(low=0, low_open=True, what="sum of the input weights of a target neuron, or null"),
    "delay": Range("whole", low=0, high=1, what="0: same step, 1: the source's last step"),
}

# learning-rule options by name
LEARNER_PARAMS: dict[str, Range] = {
    "nu": Range("numbers", what="learning rate(s): one, or [pre, post]"),
}

# dataset options by name, for every dataset that has them
DATA_PARAMS: dict[str, Range] = {
    "n_train": SIZE, "n_test": SIZE, "n_classes": Range("whole", low=1),
    "limit_train": Range("whole", low=1, what="samples, or null for all"),
    "limit_test": Range("whole", low=1, what="samples, or null for all"),
    "augment_shift": Range("whole", low=0, what="pixels, 0 for off"),
    "augment_rotate": Range(low=0, high=180, what="degrees, 0 for off"),
    # a relative size change f in [0, 1), or [low, high] size factors (snnrun/data/augment.py checks which)
    "augment_scale": Range("numbers", low=0, what="relative size change f, or [low, high] size factors; 0 for off"),
    "noise": Range(low=0), "test_fraction": Range(low=0, high=1, low_open=True, high_open=True),
}

_TYPES = {"float": Range(), "int": Range("whole"), "bool": Range("bool")}


def check_model_keys(model: Mapping[str, Any], read: Callable[[str], Any], raw: Mapping[str, Any]) -> None:
    """Check the model-level keys of ``model`` (a mapping of its keys) that ``MODEL_KEYS`` declares.
    ``read(k)`` gives the resolved value (may raise ConfigError), ``raw`` the unresolved one (to say
    where an interpolated value came from)."""
    for k, spec in MODEL_KEYS.items():
        if k not in model:
            continue
        value = read(k)
        src = raw.get(k)
        source = f" (from {src})" if isinstance(src, str) and "${" in src else ""
        spec.check(value, f"model.{k}", source)


def annotated_types(cls: type) -> dict[str, str]:
    """Parameter name -> annotation text of ``cls.__init__`` and the bases its ``**kw`` reaches."""
    out: dict[str, str] = {}
    for c in inspect.getmro(cls):
        if "__init__" not in vars(c):
            continue
        params = inspect.signature(c.__init__).parameters.values()
        for p in params:
            if p.annotation is not inspect.Parameter.empty and p.name not in out:
                out[p.name] = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", "")
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            break
    return out


def check_params(cls: type, kwargs: Mapping[str, Any], key: str | None, ranges: Mapping[str, Range]) -> None:
    """A component's options against their declared type (``float``/``int``/``bool``, from the
    signature; ``X | None`` also takes null) and the ``ranges`` table."""
    types = annotated_types(cls)
    for name, value in kwargs.items():
        where = f"{key}.{name}" if key else name
        ann = str(types.get(name, "")).replace(" ", "")
        base, _, rest = ann.partition("|")
        if value is None and "None" in rest:
            continue
        if base in _TYPES and not rest.replace("None", ""):  # a plain float/int/bool annotation
            _TYPES[base].check(value, where)
        if name in ranges:
            ranges[name].check(value, where)
