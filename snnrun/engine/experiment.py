"""An experiment assembled from config: dataset, network, encoder, learners, decoders.

One model description (``model:``)::

    encoder:   {type: poisson, time: 250, dt: 1, intensity: 128}   # or direct: the sample at every step
    network:   {groups: {...}, connections: {...}, delay: 1}        # snnrun/engine/network.py
    input:     X            # the group fed by the encoder (default: the only `input` group)
    readout:   Ae           # the group whose activity is decoded (and scored by a gradient loss)
    decoders:  [all_activity, proportion_weighting]
    learner:   {type: post_pre, connection: X_Ae}                  # one learner, or a mapping of
                                                                   # named learners (STDP + gradient)
"""

from __future__ import annotations

import contextlib
import random
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from snnrun import config as _config  # noqa: F401  (registers the resolvers)
from snnrun.components.decoders import Decoder, LabelAssignment, Readout
from snnrun.components.encoders import Encoder
from snnrun.components.learning.base import Learner
from snnrun.components.neurons import Input
from snnrun.data import Dataset, Split, build_dataset, stratified_split
from snnrun.engine.cuda_graph import GraphRunner
from snnrun.engine.graphed_step import GraphedTrainStep
from snnrun.engine.input_rates import resolve_intensity
from snnrun.engine.layers import layers_to_network
from snnrun.engine.learners import build_learners
from snnrun.engine.network import Network, build_network
from snnrun.errors import BadValue, ConfigError
from snnrun.model_schema import check_model_keys
from snnrun.registry import did_you_mean

MODEL_KEYS = {"encoder", "network", "readout", "decoders"}
_MODEL_REF = re.compile(r"\$\{[^}]*?model\.([A-Za-z_]\w*)")


# keys the engine reads itself; any other model-level key is a value the model's parts interpolate
MODEL_STRUCTURE = MODEL_KEYS | {"learner", "input", "name", "layers", "step_mode", "nir"}


def check_added_model_keys(cfg: DictConfig, overrides: list[str]) -> None:
    """A model-level key added on the command line (``+model.n_neuron=10``, the form Hydra's own
    hint suggests) that nothing in the model reads is an error, not silently ignored. (Keys the
    model file itself defines may go unread, e.g. ``model.T`` after swapping the encoder.)"""
    raw = OmegaConf.to_container(cfg, resolve=False)
    model = raw.get("model") or {}
    used = set(_MODEL_REF.findall(repr(raw))) | MODEL_STRUCTURE
    for o in overrides:
        m = re.match(r"^\+{1,2}model\.([A-Za-z_]\w*)(?:=|$)", o)
        if m and m.group(1) not in used:
            key = m.group(1)
            options = sorted(k for k in model if k in used)
            raise ConfigError(f"unknown key: nothing in this model reads it.{did_you_mean(key, options)} "
                              f"Its keys: {', '.join(options)}", key=f"model.{key}")


def reads_of(cfg: DictConfig, key: str) -> list[str]:
    """The model-level keys a config node interpolates (to name them when building it fails)."""
    node = OmegaConf.to_container(cfg, resolve=False)
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return []
        node = node[part]
    return sorted(set(_MODEL_REF.findall(repr(node))))


def resolve_device(name: str) -> torch.device:
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"'{name}' is not a device. Allowed: auto, cpu, cuda, cuda:N", key="device") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("CUDA was asked for but this machine has no usable GPU; use device=auto or cpu",
                          key="device")
    return dev


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolved(cfg: DictConfig) -> dict[str, Any]:
    """The config as plain containers, turning interpolation errors into ConfigErrors."""
    try:
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None)
        raise ConfigError(str(e).splitlines()[0], key=key or None) from e


@dataclass
class Experiment:
    cfg: dict[str, Any]
    device: torch.device
    data: Dataset
    network: Network
    encoder: Encoder
    decoders: dict[str, Decoder]
    learners: dict[str, Learner]
    input_group: str
    readout: str
    train: Split
    val: Split
    assignment: LabelAssignment | None = None
    strategy: Any = None  # snnrun.engine.data_parallel.DataParallel in a torchrun run
    trained: torch.nn.Module | None = field(default=None, repr=False)  # what a gradient step runs (DDP's wrapper)
    input_rate: dict | None = None  # intensity: auto -> {"intensity": Hz, "mean_ink": ...} (input_rates.py)
    graphed: GraphedTrainStep | None = field(default=None, repr=False)  # the captured gradient step (configure_gradient)

    def __post_init__(self):
        trainer = self.cfg.get("trainer", {})
        compile_ = trainer.get("compile", "auto")
        if compile_ is True or (compile_ == "auto" and self.device.type == "cuda"):
            self.network.compile_step()
        self.use_cpu_loop(trainer.get("cpu_kernel", "auto"))
        enabled = bool(trainer.get("cuda_graphs", True))
        self.runner = GraphRunner(self._present_nograd, self.network, enabled=enabled)
        self.gradient = next((l for l in self.learners.values() if l.gradient), None)
        self.n_classes = self.data.n_classes
        needs = set().union(*(d.needs for d in self.decoders.values()))
        # what a presentation with learning off records of the readout: what the decoders read,
        # and what the gradient learner's loss reads (validation and test loss)
        self.record_spikes = "spikes" in needs or self.gradient is not None
        self.record_v = "v" in needs or (self.gradient is not None and self.gradient.loss.needs_v)
        if self.trained is None:
            self.trained = self.network

    def use_cpu_loop(self, mode: Any) -> None:
        """``trainer.cpu_kernel``: on the CPU, run presentations of Diehl & Cook's network as one
        compiled C loop (auto: where it applies and a C compiler is found; true: required; false:
        never). ``SNNRUN_CPU_KERNEL=0`` switches it off too."""
        from snnrun.engine import cpu_loop

        if mode not in ("auto", True, False):
            raise ConfigError(f"must be auto, true or false, got {mode!r}", key="trainer.cpu_kernel")
        self.network.cpu_loop = None
        if mode is False or self.device.type != "cpu" or self.network.compiled or cpu_loop.disabled_by_env():
            return
        loop, why = cpu_loop.cpu_kernel_for(self.network)
        if loop is None and mode is True:
            raise ConfigError(f"the compiled CPU loop cannot run this model: {why}", key="trainer.cpu_kernel")
        self.network.cpu_loop = loop

    # -- presenting a batch -----------------------------------------------------------------
    def inputs(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], tuple[str, ...]]:
        """The encoded batch as network inputs; a data-parallel rank keeps its rows of the whole
        batch's encoding (a sample's random spikes do not depend on the rank that simulates it)."""
        group = self.network.groups[self.input_group]
        rows = self.strategy.rows if self.strategy is not None else slice(None)
        if getattr(self.encoder, "static", False):
            return {self.input_group: x[rows].reshape(-1, *group.shape), "steps": self.encoder.steps}, \
                (self.input_group,)
        spikes = self.encoder(x)
        spikes = spikes.reshape(spikes.shape[0], x.shape[0], *group.shape)[:, rows]
        return {self.input_group: spikes}, ()

    def _run(self, x: torch.Tensor, spikes: bool, v: bool, module=None) -> dict[str, torch.Tensor]:
        inputs, static = self.inputs(x)
        g = self.readout
        out = (module or self.network)(inputs, count=(g,), record=(g,) if spikes else (),
                                       record_v=(g,) if v else (), static=static)
        res = {"counts": out["counts"][g].flatten(1)}
        if spikes:
            res["spikes"] = out["spikes"][g].flatten(2)
        if v:
            res["v"] = out["v"][g].flatten(2)
        return res

    def _present_nograd(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.inference_mode():
            return self._run(x, self.record_spikes and not self.network.training,
                             self.record_v and not self.network.training)

    def present(self, x: torch.Tensor) -> Readout:
        """Present a batch with gradients off (learning by local rules when the network is in
        train mode); on CUDA each batch shape runs as one captured graph (snnrun/engine/cuda_graph.py).
        In a data-parallel run the readout of the whole batch is returned."""
        sp = self.strategy
        if sp is not None:
            sp.begin_batch(x.shape[0])
        out = self.runner(x.to(self.device, non_blocking=True))
        if sp is not None:
            out = {k: sp.gather_rows(t if k == "counts" else t.transpose(0, 1), x.shape[0])
                   for k, t in out.items()}
            out = {k: t if k == "counts" else t.transpose(0, 1) for k, t in out.items()}
        return Readout(counts=out["counts"], spikes=out.get("spikes"), v=out.get("v"), dt=self.network.dt,
                       steps=self.encoder.steps)

    def simulate(self, x: torch.Tensor) -> torch.Tensor:
        """The readout group's spike counts (B, n) for a batch (see :meth:`present`)."""
        return self.present(x).counts

    def configure_gradient(self, epochs: int, steps_per_epoch: int) -> None:
        """Build the gradient learner's optimizer and scheduler; on CUDA (``trainer.cuda_graphs``,
        one process, no local rule adding to the loss, an optimizer with a ``capturable`` option)
        its step runs as one captured graph per batch shape (snnrun/engine/graphed_step.py)."""
        g = self.gradient
        graphs = (self.device.type == "cuda" and bool(self.cfg.get("trainer", {}).get("cuda_graphs", True))
                  and self.strategy is None and not g.extra_losses)
        g.configure(self.network, epochs=epochs, steps_per_epoch=steps_per_epoch, capturable=graphs)
        self.graphed = GraphedTrainStep(self._device_step) if g.capturable else None

    def evaluation_weights(self):
        """A context in which the model holds the weights to evaluate: the gradient learner's moving
        average with ``ema`` set, else the live weights (a no-op)."""
        if self.gradient is None:
            return contextlib.nullcontext()
        return self.gradient.evaluation_weights()

    @property
    def capture_s(self) -> float:
        """Seconds of one-off work so far: compiling and capturing new batch shapes."""
        return self.runner.capture_s + (self.graphed.capture_s if self.graphed is not None else 0.0)

    def _forward(self, x: torch.Tensor):
        needs_v = self.gradient.loss.needs_v

        def forward():
            out = self._run(x, True, needs_v, module=self.trained)
            return {"out": out["spikes"], "v": out.get("v")}
        return forward

    def _device_step(self, x: torch.Tensor, y: torch.Tensor):
        return self.gradient.device_step(self._forward(x), y, self.device)

    def gradient_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One optimiser step of the gradient learner on a batch (this rank's rows in a
        data-parallel run); returns (loss, {"out": spikes (T, B, n), "v": ...})."""
        x = x.to(self.device, non_blocking=True)
        if self.graphed is not None:
            loss, out = self.graphed(x, y.to(self.device, non_blocking=True))
            self.gradient.after_step()
            return loss, out
        sp = self.strategy
        scale = 1.0
        if sp is not None:
            sp.begin_batch(x.shape[0])
            y, scale = y[sp.rows], sp.loss_scale()
        loss, out = self.gradient.train_step(self._forward(x), y, self.device, scale)
        return (loss / scale if scale else loss), out  # scale 0: a rank without rows

    # -- decoding ---------------------------------------------------------------------------
    def predict(self, readout: Readout, assignment: LabelAssignment | None = None) -> dict[str, torch.Tensor]:
        assignment = assignment if assignment is not None else self.assignment
        return {name: d.predict(readout, assignment, self.n_classes)
                for name, d in self.decoders.items()}

    def begin_presentation(self, y: torch.Tensor) -> None:
        for learner in self.learners.values():
            learner.begin_presentation(y)

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"network": self.network.state_dict(),
                "assignment": None if self.assignment is None else self.assignment.state_dict(),
                "learners": {n: l.state_dict() for n, l in self.learners.items()}}

    def load_state_dict(self, state: dict[str, Any], network: dict[str, Any] | None = None) -> None:
        """Restore what :meth:`state_dict` returned; ``ConfigError`` saying which tensors differ when
        the checkpoint belongs to another model or size (nothing is loaded then)."""
        saved = network if network is not None else state.get("network")
        if not isinstance(saved, dict):
            raise ConfigError("the checkpoint holds no network state", key="model")
        misfit = state_misfit(saved, self.network.state_dict())
        if not misfit and self.assignment is not None and isinstance(state.get("assignment"), dict):
            misfit += state_misfit(state["assignment"], self.assignment.state_dict(), "assignment.",
                                   missing=False)
        if misfit:
            raise ConfigError("the checkpoint does not fit this model (another model or size): "
                              + "; ".join(misfit), key="model")
        try:
            self.network.load_state_dict(saved)
        except (RuntimeError, KeyError) as e:
            raise ConfigError("the checkpoint does not fit this model (sizes or components differ): "
                              + str(e).splitlines()[0], key="model") from e
        self.runner.reset()
        if self.assignment is not None and state.get("assignment") is not None:
            self.assignment.load_state_dict(state["assignment"])
        for n, s in (state.get("learners") or {}).items():
            if n in self.learners:
                try:
                    self.learners[n].load_state_dict(s)
                except (RuntimeError, KeyError, ValueError, TypeError) as e:
                    raise ConfigError(f"the checkpoint's state of learner {n} does not fit this model: "
                                      + (str(e).splitlines() or [type(e).__name__])[0], key="model") from e


# network state that older checkpoints may lack (the neuron groups start it afresh)
OPTIONAL_STATE = (".rng_draws",)


def state_misfit(saved: dict[str, Any], ours: dict[str, Any], prefix: str = "", missing: bool = True,
                 show: int = 3) -> list[str]:
    """What keeps a saved state dict from loading into ``ours``: missing and unexpected keys and the
    first shape mismatches, each as one short phrase (empty: it fits)."""
    def few(keys: list[str]) -> str:
        return ", ".join(prefix + k for k in keys[:show]) + (f" (+{len(keys) - show} more)" if len(keys) > show else "")

    out = []
    lost = [k for k in ours if k not in saved and not k.endswith(OPTIONAL_STATE)]
    extra = [k for k in saved if k not in ours]
    if lost and missing:
        out.append(f"missing from the checkpoint: {few(lost)}")
    if extra:
        out.append(f"unexpected in the checkpoint: {few(extra)}")
    shapes = [f"{prefix}{k} is {list(saved[k].shape)} in the checkpoint, {list(v.shape)} in this model"
              for k, v in ours.items() if isinstance(v, torch.Tensor) and isinstance(saved.get(k), torch.Tensor)
              and saved[k].shape != v.shape]
    if shapes:
        out.append("shapes differ: " + ", ".join(shapes[:show])
                   + (f" (+{len(shapes) - show} more)" if len(shapes) > show else ""))
    return out


def split_validation(train: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Hold out a stratified ``fraction`` of the training split (fixed by ``seed``)."""
    if fraction <= 0 or len(train) < 2:
        return train, Split(train.x[:0], train.y[:0])
    tr, va = stratified_split(train.y.numpy(), fraction, seed)
    tr, va = torch.from_numpy(np.sort(tr)), torch.from_numpy(np.sort(va))
    return Split(train.x[tr], train.y[tr]), Split(train.x[va], train.y[va])


def build_experiment(cfg: DictConfig | dict) -> Experiment:
    if "model" not in cfg or cfg["model"] is None:
        from snnrun.config import model_names

        raise ConfigError(f"choose a model: +model=<one of {', '.join(model_names())}>", key="model")
    if not OmegaConf.is_config(cfg):
        return _build(cfg)
    try:
        check_model_values(cfg)
        return _build(resolved(cfg))
    except ConfigError as e:
        key = e.key or ""
        origin = _set_from(cfg, key) if key.startswith("model.") and isinstance(e, BadValue) else None
        if origin is not None:  # the node's value is ${model.X}: X is what the user typed
            e.key, e.message = f"model.{origin}", f"{e.message} (it sets {key})"
        else:
            reads = reads_of(cfg, key) if key.startswith("model.") else []
            if reads:  # the value at fault most likely came from one of these model-level keys
                e.message = f"{e.message} (this node reads {', '.join('model.' + r for r in reads)})"
        e.args = (f"{e.key}: {e.message}" if e.key else e.message,)
        raise


def check_model_values(cfg: DictConfig) -> None:
    """Types and ranges of the model-level keys (snnrun/model_schema.py), before anything is built."""
    model = cfg.model
    if not isinstance(model, DictConfig):
        return
    raw = OmegaConf.to_container(model, resolve=False)

    def read(k: str) -> Any:
        try:
            return model[k]
        except OmegaConfBaseException as e:
            raise ConfigError(str(e).splitlines()[0], key=f"model.{k}") from e

    check_model_keys(model, read, raw)


_ONE_MODEL_REF = re.compile(r"^\$\{model\.([A-Za-z_]\w*)\}$")


def _set_from(cfg: DictConfig, key: str) -> str | None:
    """The model-level key X when the config node at ``key`` is exactly ``${model.X}``."""
    node = OmegaConf.to_container(cfg, resolve=False)
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    m = _ONE_MODEL_REF.match(node) if isinstance(node, str) else None
    return m.group(1) if m else None


def expand_model(plain: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """The resolved config with ``model.network`` written out: a layer list (snnrun/engine/layers.py)
    or a NIR file (``model.nir``, snnrun/interop/nir_import.py) becomes a network node. Returns it
    and the NIR file's loader (None otherwise), whose ``load(network)`` puts in the file's weights."""
    model = plain["model"]
    nir_file = None
    if "layers" in model:  # sugar: a layer list is a feed-forward network (snnrun/engine/layers.py)
        if "network" in model:
            raise ConfigError("a model has either `layers` (a list of layers) or `network`, not both", key="model")
        model = dict(model)
        model["network"], readout = layers_to_network(model.pop("layers"), plain["data"]["shape"],
                                                      step_mode=str(model.pop("step_mode", "auto")))
        model.setdefault("readout", readout)
        plain = {**plain, "model": model}
    if "nir" in model:  # a network read from a NIR file
        from snnrun.interop.nir_import import nir_to_network

        model = dict(model)
        model["network"], readout, nir_file = nir_to_network(model.pop("nir"))
        model.setdefault("readout", readout)
        plain = {**plain, "model": model}
    return plain, nir_file


def _build(plain: dict[str, Any]) -> Experiment:
    plain, nir_file = expand_model(plain)
    model = plain["model"]
    missing = MODEL_KEYS - set(model)
    if missing:
        raise ConfigError(f"a model config needs {', '.join(sorted(missing))}", key="model")
    device = resolve_device(plain.get("device", "auto"))
    seed = int(plain.get("seed", 0))
    seed_everything(seed)

    data = build_dataset(plain["data"])
    # intensity: auto -> the rate that gives this training set MNIST's total input rate
    input_rate = resolve_intensity(dict(model["encoder"]), data.train.x) if isinstance(model["encoder"], dict) else None
    enc_node = {**model["encoder"], "intensity": input_rate["intensity"]} if input_rate else model["encoder"]
    encoder = Encoder.build(enc_node, key="model.encoder")
    network = build_network(model["network"], dt=encoder.dt)
    if nir_file is not None:
        nir_file.load(network)
    inputs = [n for n, g in network.groups.items() if isinstance(g, Input)]
    input_group = model.get("input", inputs[0] if len(inputs) == 1 else None)
    if input_group not in network.groups:
        raise ConfigError(f"cannot tell which group takes the encoded data; set model.input to one of "
                          f"{', '.join(network.groups)}", key="model.input")
    in_n = network.groups[input_group].n
    if in_n != int(np.prod(data.shape)):
        raise ConfigError(f"input group '{input_group}' has {in_n} neurons but {data.name} samples have "
                          f"{int(np.prod(data.shape))} values {list(data.shape)}",
                          key=f"model.network.groups.{input_group}.n")
    readout = model["readout"]
    if readout not in network.groups:
        raise ConfigError(f"no group '{readout}'. Groups: {', '.join(network.groups)}", key="model.readout")
    n_readout = network.groups[readout].n
    decoders = {}
    for i, d in enumerate(model["decoders"] or []):
        node = {"type": d} if isinstance(d, str) else d
        dec = Decoder.build(node, key=f"model.decoders.{i}")
        dec.check(n_readout, data.n_classes)
        decoders[node.get("type", node.get("_target_", f"decoder{i}"))] = dec
    if not decoders:
        raise ConfigError("list at least one decoder", key="model.decoders")
    learners = build_learners(model.get("learner"), network, encoder.dt)
    needs = set().union(*(d.needs for d in decoders.values()))
    gradient = next((l for l in learners.values() if l.gradient), None)
    if gradient is not None:
        gradient.loss.check(n_readout, data.n_classes)
    network.reset_state(1)  # per-sample state (v) exists after a reset
    if ("v" in needs or (gradient is not None and gradient.loss.needs_v)) and \
            not hasattr(network.groups[readout], "v"):
        raise ConfigError(f"a decoder or the loss reads the membrane potential, but group '{readout}' has none",
                          key="model.readout")
    network.to(device)
    assignment = LabelAssignment(n_readout, data.n_classes, device=device) if "assignment" in needs else None
    val_fraction = float(getattr(gradient, "val_fraction", 0.0) or 0.0)
    train, val = split_validation(data.train, val_fraction, seed)
    return Experiment(plain, device, data, network, encoder, decoders, learners, input_group, readout,
                      train, val, assignment, input_rate=input_rate)
