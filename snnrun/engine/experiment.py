"""An experiment assembled from config: dataset, network, encoder, decoders, label assignment."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from snnrun import config as _config  # noqa: F401  (registers the resolvers)
from snnrun.data import Dataset, Split, build_dataset
from snnrun.components.decoders import Decoder, LabelAssignment
from snnrun.components.encoders import Encoder
from snnrun.errors import ConfigError
from snnrun.engine.cuda_graph import GraphRunner
from snnrun.engine.network import Network, build_network
from snnrun.components.neurons import Input

MODEL_KEYS = {"encoder", "network", "readout", "decoders"}


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
    assignment: LabelAssignment
    input_group: str
    readout: str
    data_parallel: Any = None  # snnrun.engine.data_parallel.DataParallel in a torchrun run

    def __post_init__(self):
        trainer = self.cfg.get("trainer", {})
        compile_ = trainer.get("compile", "auto")
        if compile_ is True or (compile_ == "auto" and self.device.type == "cuda"):
            self.network.compile_step()
        enabled = bool(trainer.get("cuda_graphs", True))
        self.runner = GraphRunner(self._simulate, self.network, enabled=enabled)

    def simulate(self, x: torch.Tensor) -> torch.Tensor:
        """Present a batch of samples; return the readout group's spike counts (B, n).
        On CUDA each batch shape runs as one captured graph (see snnrun/engine/cuda_graph.py). In a
        data-parallel run this rank simulates its share of ``x``; the counts of all are returned."""
        dp = self.data_parallel
        if dp is None:
            return self.runner(x.to(self.device, non_blocking=True))
        dp.begin_batch(x.shape[0])
        return dp.gather_rows(self.runner(x.to(self.device, non_blocking=True)), x.shape[0])

    @torch.no_grad()
    def _simulate(self, x: torch.Tensor) -> torch.Tensor:
        # one conversion of the whole train instead of one per step
        spikes = self.encoder(x).to(self.network.groups[self.input_group].dtype)
        spikes = spikes.reshape(spikes.shape[0], x.shape[0], *self.network.groups[self.input_group].shape)
        if self.data_parallel is not None:  # encoded as a whole batch: a sample's spikes don't depend on its rank
            spikes = spikes[:, self.data_parallel.rows]
        out = self.network.run({self.input_group: spikes}, count=(self.readout,))
        return out[self.readout].reshape(spikes.shape[1], self.network.groups[self.readout].n)

    def collect_counts(self, split: Split, batch_size: int, progress=None) -> torch.Tensor:
        chunks = []
        for start in range(0, len(split), batch_size):
            xb = split.x[start:start + batch_size]
            chunks.append(self.simulate(xb).cpu())
            if progress is not None:
                progress.advance(len(xb))
        n = self.network.groups[self.readout].n
        return torch.cat(chunks) if chunks else torch.zeros(0, n)

    def predict(self, counts: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.predict_with(counts, self.assignment)

    def predict_with(self, counts: torch.Tensor, assignment: LabelAssignment) -> dict[str, torch.Tensor]:
        return {name: d.predict(counts, assignment).cpu() for name, d in self.decoders.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"network": self.network.state_dict(), "assignment": self.assignment.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            self.network.load_state_dict(state["network"])
        except RuntimeError as e:
            raise ConfigError("the checkpoint does not fit this model (sizes or components differ): "
                              + str(e).splitlines()[0], key="model") from e
        self.assignment.load_state_dict(state["assignment"])


def build_experiment(cfg: DictConfig) -> Experiment:
    if "model" not in cfg or cfg.model is None:
        from snnrun.config import model_names

        raise ConfigError(f"choose a model: +model=<one of {', '.join(model_names())}>", key="model")
    plain = resolved(cfg)
    model = plain["model"]
    missing = MODEL_KEYS - set(model)
    if missing:
        raise ConfigError(f"a model config needs {', '.join(sorted(missing))}", key="model")
    device = resolve_device(plain.get("device", "auto"))
    seed_everything(int(plain.get("seed", 0)))

    data = build_dataset(plain["data"])
    encoder = Encoder.build(model["encoder"], key="model.encoder")
    network = build_network(model["network"], dt=encoder.dt)
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
    decoders = {}
    for i, d in enumerate(model["decoders"]):
        node = {"type": d} if isinstance(d, str) else d
        decoders[node.get("type", node.get("_target_", f"decoder{i}"))] = Decoder.build(
            node, key=f"model.decoders.{i}")
    if not decoders:
        raise ConfigError("list at least one decoder", key="model.decoders")
    network.to(device)
    assignment = LabelAssignment(network.groups[readout].n, data.n_classes, device=device)
    return Experiment(plain, device, data, network, encoder, decoders, assignment, input_group, readout)
