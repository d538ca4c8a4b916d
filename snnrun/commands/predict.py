"""``snnrun predict run_dir=DIR input=PATH [PATH ...]``: classify your own inputs with a trained run.

An input is an image file (PNG, JPEG, BMP, GIF, TIFF, WebP: read with PIL, made grayscale for a
one-channel model or RGB for three, resized to the model's height x width, pixel values / 255) or a
saved tensor (``.pt`` read with ``torch.load(weights_only=True)``, ``.npy`` with
``allow_pickle=False``) holding one sample of the data's shape, or a batch of them (N, *shape).
Values are what the run was trained on: [0, 1], white strokes on black for the digit datasets
(``invert=true`` flips dark-on-light images).

The run's network is rebuilt from its saved config (no dataset is loaded) and its checkpoint,
learning off; each sample is encoded as in training, presented, and every decoder of the model
gives its class scores. Printed per input: the class of the run's best decoder (summary.json's
``best_decoder``, else the first) and each decoder's scores; ``json=true`` prints one JSON line per
sample instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from snnrun.errors import ConfigError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
TENSOR_SUFFIXES = (".pt", ".pth", ".npy")
USAGE = """usage: snnrun predict run_dir=DIR input=PATH [PATH ...] [invert=true] [json=true] [device=cpu]

  Classify image files or saved tensors with a trained run; prints each input's class and the
  class scores of the model's decoders.

  run_dir  a run directory written by `snnrun train` (its .hydra/config.yaml and checkpoint.pt)
  input    image files (PNG, JPEG ...: grayscaled/resized to the model's input, values / 255) or
           tensors (.pt via torch.load(weights_only=True), .npy) of one sample or a batch (N, *shape);
           more paths may follow as bare words
  invert   true: 1 - value (dark strokes on a light background, for models trained on the digit sets)
  json     true: one JSON line per sample ({input, index, class, decoder, scores})

  e.g. snnrun predict run_dir=outputs/2026-12-02/10-00-00_csnn input=my_digit.png"""


def _flag(value: str, key: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise ConfigError(f"true or false, got '{value}'", key=key)


def parse_args(args: list[str]) -> dict[str, Any] | None:
    if any(a in ("-h", "--help") for a in args):
        return None
    opts: dict[str, Any] = {"run_dir": None, "inputs": [], "invert": False, "json": False, "overrides": []}
    for a in args:
        k, eq, v = a.partition("=")
        if eq and k == "run_dir":
            opts["run_dir"] = v
        elif eq and k == "input":
            opts["inputs"].append(v)
        elif eq and k in ("invert", "json"):
            opts[k] = _flag(v, k)
        elif not eq and not a.startswith(("+", "~", "-")):  # bare words: the run dir first, then inputs
            if opts["run_dir"] is None and not opts["inputs"]:
                opts["run_dir"] = a
            else:
                opts["inputs"].append(a)
        else:
            opts["overrides"].append(a)
    if not opts["run_dir"]:
        raise ConfigError("say which run: snnrun predict run_dir=outputs/<date>/<time>_<model> input=PATH "
                          "(snnrun predict --help)", key="run_dir")
    if not opts["inputs"]:
        raise ConfigError("name what to classify: input=PATH (image files, .pt or .npy tensors)", key="input")
    return opts


def load_image(path: Path, shape: tuple[int, ...]) -> torch.Tensor:
    """An image file as one sample of ``shape`` (C, H, W) or (H, W) or (n,): values in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    if len(shape) == 3 and shape[0] not in (1, 3):
        raise ConfigError(f"{path}: the model reads {shape[0]}-channel inputs {list(shape)}; images give 1 or 3 "
                          "(save a tensor instead: .pt or .npy)", key="input")
    if len(shape) == 1:
        raise ConfigError(f"{path}: the model reads flat vectors {list(shape)}, not images (save a tensor: "
                          ".pt or .npy)", key="input")
    try:
        with Image.open(path) as img:
            img = img.convert("RGB" if len(shape) == 3 and shape[0] == 3 else "L")
            h, w = shape[-2], shape[-1]
            if img.size != (w, h):
                img = img.resize((w, h), Image.BILINEAR)
            arr = np.asarray(img, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as e:
        raise ConfigError(f"{path}: not a readable image ({e})", key="input") from e
    t = torch.from_numpy(arr.copy())
    t = t.permute(2, 0, 1) if t.ndim == 3 else t
    return t.reshape(shape)


def load_tensor(path: Path, shape: tuple[int, ...]) -> torch.Tensor:
    """A saved tensor as a batch (N, *shape)."""
    try:
        if path.suffix == ".npy":
            t = torch.from_numpy(np.load(path, allow_pickle=False).copy())
        else:
            t = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch/numpy raise many kinds on a bad file
        raise ConfigError(f"{path}: cannot read a tensor ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                          ".pt files are read with weights_only=True, .npy without pickles", key="input") from e
    if not isinstance(t, torch.Tensor):
        raise ConfigError(f"{path}: holds a {type(t).__name__}, not a tensor", key="input")
    t = t.float()
    n = int(np.prod(shape))
    if t.numel() == n:
        t = t.reshape(1, *shape)
    elif t.ndim >= 1 and t.shape[0] > 0 and t[0].numel() == n:
        t = t.reshape(t.shape[0], *shape)
    else:
        raise ConfigError(f"{path}: a tensor of shape {list(t.shape)}; the model reads samples of shape "
                          f"{list(shape)} (or a batch [N, {', '.join(map(str, shape))}])", key="input")
    if not bool(torch.isfinite(t).all()):
        raise ConfigError(f"{path}: holds NaN or infinite values", key="input")
    return t


def load_inputs(paths: list[str], shape: tuple[int, ...], invert: bool) -> list[tuple[str, torch.Tensor]]:
    out = []
    for p in paths:
        path = Path(p).expanduser()
        if not path.is_file():
            raise ConfigError(f"no file {path}", key="input")
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            x = load_image(path, shape).unsqueeze(0)
        elif suffix in TENSOR_SUFFIXES:
            x = load_tensor(path, shape)
        else:
            raise ConfigError(f"{path}: unknown kind of file '{suffix}'. Allowed: images "
                              f"({', '.join(IMAGE_SUFFIXES)}) and tensors ({', '.join(TENSOR_SUFFIXES)})", key="input")
        out.append((str(p), 1.0 - x if invert else x))
    return out


class Predictor:
    """A run's network, encoder, decoders and label assignment, ready to classify batches."""

    def __init__(self, run_dir: str | Path, overrides: list[str] | None = None):
        from snnrun.commands.export import load_run_network
        from snnrun.components.decoders import Decoder, LabelAssignment
        from snnrun.engine.experiment import resolve_device, seed_everything

        run_dir = Path(run_dir)
        self.network, plain, self.encoder, self.input_group, state = load_run_network(run_dir, overrides)
        seed_everything(int(plain.get("seed", 0)))  # a random encoder (poisson) gives the same answer each time
        model = plain["model"]
        self.device = resolve_device(plain.get("device", "auto"))
        self.network.to(self.device)
        self.readout = model["readout"]
        self.shape = tuple(int(d) for d in plain["data"]["shape"])
        self.n_classes = int(plain["data"]["n_classes"])
        self.decoders = {}
        for i, d in enumerate(model["decoders"] or []):
            node = {"type": d} if isinstance(d, str) else d
            self.decoders[node.get("type", node.get("_target_", f"decoder{i}"))] = Decoder.build(
                node, key=f"model.decoders.{i}")
        self.needs = set().union(*(d.needs for d in self.decoders.values()))
        self.assignment = None
        if "assignment" in self.needs:
            saved = state.get("assignment")
            if not isinstance(saved, dict):
                raise ConfigError(f"the run in {run_dir} has no label assignment yet (it stopped before its label "
                                  f"pass): finish it with snnrun resume run_dir={run_dir}", key="run_dir")
            self.assignment = LabelAssignment(self.network.groups[self.readout].n, self.n_classes, device=self.device)
            self.assignment.load_state_dict(saved)
        summary = run_dir / "summary.json"
        best = json.loads(summary.read_text()).get("best_decoder") if summary.is_file() else None
        self.best = best if best in self.decoders else next(iter(self.decoders))

    def scores(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each decoder's class scores (B, n_classes) for a batch (B, *shape)."""
        from snnrun.components.decoders import Readout

        g, net = self.readout, self.network
        x = x.to(self.device)
        with torch.inference_mode():
            if getattr(self.encoder, "static", False):
                inputs, static = {self.input_group: x, "steps": self.encoder.steps}, (self.input_group,)
            else:
                spikes = self.encoder(x)
                inputs, static = {self.input_group: spikes.reshape(spikes.shape[0], x.shape[0],
                                                                   *net.groups[self.input_group].shape)}, ()
            out = net(inputs, count=(g,), record=(g,) if "spikes" in self.needs else (),
                      record_v=(g,) if "v" in self.needs else (), static=static)
        readout = Readout(counts=out["counts"][g].flatten(1),
                          spikes=out["spikes"][g].flatten(2) if "spikes" in self.needs else None,
                          v=out["v"][g].flatten(2) if "v" in self.needs else None,
                          dt=net.dt, steps=self.encoder.steps)
        return {name: d.class_scores(readout, self.assignment, self.n_classes).float().cpu()
                for name, d in self.decoders.items()}


def predict(run_dir: str | Path, paths: list[str], invert: bool = False,
            overrides: list[str] | None = None) -> list[dict[str, Any]]:
    """One record per sample: {input, index, class, decoder, scores: {decoder: [per class]}}."""
    p = Predictor(run_dir, overrides)
    records = []
    for path, x in load_inputs(paths, p.shape, invert):
        scores = p.scores(x)
        for i in range(x.shape[0]):
            records.append({"input": path, "index": i, "class": int(scores[p.best][i].argmax()),
                            "decoder": p.best, "scores": {n: [round(float(v), 6) for v in s[i]]
                                                          for n, s in scores.items()}})
    return records


def run_predict(args: list[str]) -> None:
    from snnrun.run.console import console

    opts = parse_args(args)
    if opts is None:
        console.print(USAGE, markup=False, highlight=False, soft_wrap=True)
        return
    records = predict(opts["run_dir"], opts["inputs"], opts["invert"], opts["overrides"])
    for r in records:
        if opts["json"]:
            console.print(json.dumps(r), markup=False, highlight=False, soft_wrap=True)
            continue
        name = r["input"] + (f"[{r['index']}]" if r["index"] or sum(q["input"] == r["input"] for q in records) > 1 else "")
        console.print(f"{name}: class {r['class']} ({r['decoder']})", markup=False, highlight=False, soft_wrap=True)
        for dec, s in r["scores"].items():
            console.print(f"  {dec}: " + " ".join(f"{v:.4g}" for v in s), markup=False, highlight=False,
                          soft_wrap=True)
