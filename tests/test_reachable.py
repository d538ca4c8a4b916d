"""Every registered component is reachable from YAML: composed through Hydra exactly as on the
command line (``+model=...`` plus overrides) and trained by the real training path
(:func:`snnrun.engine.loop.train`) on tiny synthetic data.

The parametrization comes from the registries themselves (``snnrun list``): every registered
decoder, encoder, connection, learning rule and loss, and every neuron preset (file of
conf/neuron/), is one test case. Each case names the run that reaches it (a list of overrides);
a component with no run fails its case ("no config path"), so registering a component means
giving it a way in from config: encoders, losses, decoders and neuron presets get their run from
the registry / conf/ directly (a missing preset file fails), connections and learning rules
from the CONNECTIONS / LEARNERS tables. Components share runs to keep the file fast: all spike
decoders of one readout in one ``model.decoders`` list, all chain ops of one csnn, and independent
slots of one model side by side (run k of snn_mlp has the k-th encoder, loss and layer neuron
preset; run k of diehl_cook the k-th Ai preset and dense STDP rule). About 35 runs, ~30 s on 2 cores.
Aliases name the same class and count once (``Registry.names()`` leaves them out).

Each case checks the run finished, wrote summary.json, and that the component was used: the
decoder scored the test split, the experiment built from the same config holds the encoder /
connection / loss / neuron class, the learning rule changed the weights of its connection.

Not in scope: datasets (``data=...``, tests/test_data.py) and generators (signals for
``snnrun probe``; ``snnrun train`` never uses them). Surrogates are options of neurons and
learners: one run sets one by name.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from snnrun.cli import registries
from snnrun.components.neurons import Input
from snnrun.components.neurons.trainable import LeakyIntegrator, TrainableNode
from snnrun.config import config_dir
from snnrun.engine.experiment import build_experiment
from snnrun.engine.loop import train
from snnrun.run.checkpoint import load_checkpoint

REG = registries()
# device=cpu: this file is about what a config can reach; the CUDA paths (compiled steps in a
# graph, fused kernels) are tested where they are the subject
BASE = ("data=synthetic", "data.n_train=16", "data.n_test=8", "trainer.epochs=1", "logger=plain", "seed=0",
        "device=cpu")

# tiny versions of the shipped models (and of the two added for this: conv_stdp, li_readout_mlp)
DC = ("+model=diehl_cook", "model.n_neurons=8", "model.time=20", "trainer.batch_size=16")  # 8 = 2 per class
MLP = ("+model=snn_mlp", "model.T=4", "model.hidden=16")
LI = ("+model=li_readout_mlp", "model.T=4", "model.hidden=16")
CSNN = ("+model=csnn", "model.T=2", "model.channels=2", "model.hidden=8")
CONV = ("+model=conv_stdp", "model.time=20", "model.channels=2")
MSTDP = ("+model=mstdp_digits", "model.time=20", "model.per_class=2")
MSTDP_ONLY = ("~model.learner.tc_plus", "~model.learner.tc_minus", "~model.learner.tc_e_trace")
SFR = ("+model=stdp_features_readout", "model.n_neurons=8", "model.time=20")


# --------------------------------------------------------------------------- config paths
NEURON_PRESETS = sorted(p.stem for p in (config_dir() / "neuron").glob("*.yaml"))


def preset_class(preset: str) -> type:
    return REG["neurons"].get(str(OmegaConf.load(config_dir() / "neuron" / f"{preset}.yaml").type))


def neuron_slot(preset: str) -> tuple[str, str, str]:
    """(model, override, group) for a neuron preset: input groups feed diehl_cook, surrogate-gradient
    nodes make snn_mlp's layers (a non-spiking one li_readout_mlp's readout), every other model
    diehl_cook's inhibitory group Ai."""
    cls, quoted = preset_class(preset), f"'{preset}'"  # quoted: a preset may be called null
    if issubclass(cls, Input):
        return "DC", f"neuron@model.network.groups.X={quoted}", "X"
    if issubclass(cls, LeakyIntegrator):
        return "LI", f"neuron@model.readout_neuron={quoted}", "out"
    if issubclass(cls, TrainableNode):
        return "MLP", f"neuron@model.neuron={quoted}", "hidden"
    return "DC", f"neuron@model.network.groups.Ai={quoted}", "Ai"


def reads_v(decoder: str) -> bool:
    return "v" in REG["decoders"].get(decoder).needs


DENSE_STDP = ("hebbian", "weight_dependent_post_pre", "nearest_online_stdp", "full_online_stdp", "post_pre_int")
# slots of the shared models: (kind, name) -> (model, overrides); slots of different kinds are
# independent (the encoder, the loss and the layers' neuron model of an snn_mlp), so run k of a
# model takes the k-th slot of every kind (fewer runs, each component still in exactly one run)
SLOTS: dict[str, dict[str, list]] = {"DC": {}, "MLP": {}, "LI": {}}
for _p in NEURON_PRESETS:
    _model, _override, _group = neuron_slot(_p)
    SLOTS[_model].setdefault(f"neurons:{_group}", []).append((("neurons", _p), (_override,)))
SLOTS["MLP"]["encoders"] = [(("encoders", n), (f"encoder@model.encoder={n}",)) for n in REG["encoders"].names()]
SLOTS["MLP"]["losses"] = [(("losses", n), (f"loss@model.learner.loss={n}",)) for n in REG["losses"].names()]
SLOTS["DC"]["learners"] = [(("learners", "post_pre"), ())] + [
    (("learners", r), (f"learner@model.learner={r}", "model.learner.reduction=sum")) for r in DENSE_STDP]
# all decoders of one readout kind in one run: spike decoders on diehl_cook's Ae (8 neurons, so
# class-population decoders split it too), voltage decoders on li_readout_mlp's leaky integrators
for _model, _v in (("DC", False), ("LI", True)):
    _names = [n for n in REG["decoders"].names() if reads_v(n) == _v]
    SLOTS[_model]["decoders"] = [(("decoders", tuple(_names)), (f"model.decoders=[{','.join(_names)}]",))]

RUNS: dict[tuple[str, str], tuple[str, ...]] = {}  # (kind, name) -> the overrides of the run that reaches it
for _model, _kinds in SLOTS.items():
    for _k in range(max(len(v) for v in _kinds.values())):
        _slots = [v[_k] for v in _kinds.values() if _k < len(v)]
        _overrides = (*globals()[_model], *(o for _, ovs in _slots for o in ovs))
        for (_kind, _name), _ in _slots:
            for _n in (_name if isinstance(_name, tuple) else (_name,)):
                RUNS[(_kind, _n)] = _overrides

DC_RUN, MLP_RUN = RUNS[("learners", "post_pre")], RUNS[("encoders", "direct")]  # diehl_cook, snn_mlp as shipped
CONNECTIONS = {  # connection -> (run, a connection of that run it is used in)
    "dense": (DC_RUN, "X_Ae"), "one_to_one": (DC_RUN, "Ae_Ai"), "lateral": (DC_RUN, "Ai_Ae"),
    "conv2d": (CONV, "X_F"), "dropout": (MLP_RUN, "fc2"),
    **{op: ((*CSNN, "model.network.connections.conv2.ops.0.type=avg_pool"), c)  # avg and max pools
       for op, c in (("avg_pool", "conv2"), ("max_pool", "fc1"), ("batch_norm", "conv1"), ("flatten", "fc1"))},
    "sum_pool": ((*CSNN, "model.network.connections.conv2.ops.0.type=sum_pool"), "conv2"),
}

LEARNERS = {  # learning rule -> (run, the connection it learns; None: a gradient learner, every connection)
    **{r: (RUNS[("learners", r)], "X_Ae") for r in ("post_pre", *DENSE_STDP)},
    "conv2d_stdp": (CONV, "X_F"),
    "mstdpet": (MSTDP, "X_Y"),
    "mstdp": ((*MSTDP, "model.learner.type=mstdp", "~model.learner.tc_e_trace"), "X_Y"),
    "reward_switch_stdp": ((*MSTDP, "model.learner.type=reward_switch_stdp", *MSTDP_ONLY), "X_Y"),
    "tempotron": ((*MSTDP, "model.learner.type=tempotron", *MSTDP_ONLY, "~model.learner.reward",
                   "+model.learner.n_classes=${data.n_classes}"), "X_Y"),
    "surrogate_bptt": (MLP_RUN, None),
    "stca": ((*MLP, "learner@model.learner=stca"), None),
    "stbp": ((*MLP, "learner@model.learner=stbp"), None),
    # SPAIC's rules
    "rstdp": ((*MSTDP, "model.learner.type=rstdp", "~model.learner.tc_e_trace"), "X_Y"),
    "bp_rstdp": ((*MSTDP, "model.learner.type=bp_rstdp", *MSTDP_ONLY), "X_Y"),
    "bp_rstdpet": ((*MSTDP, "model.learner.type=bp_rstdpet", *MSTDP_ONLY), "X_Y"),
    "meta_nearest_online_stdp": ((*MSTDP, "model.learner.type=meta_nearest_online_stdp", *MSTDP_ONLY,
                                  "~model.learner.reward", "model.learner.nu=[0.001,0.01]"), "X_Y"),
    "conv2d_rstdp": ((*CONV, "learner@model.learner=conv2d_rstdp"), "X_F"),
    "rate_modulate": ((*SFR, "+learner@model.learner.rate=rate_modulate", "+model.learner.rate.connection=H_Y"),
                      "H_Y"),
}


def run_of(kind: str, name: str) -> tuple[str, ...]:
    assert (kind, name) in RUNS, f"no config path for {kind} '{name}': give it a slot in SLOTS"
    return RUNS[(kind, name)]


SURROGATE_RUN = (*MLP, "model.neuron.surrogate=erf")


# --------------------------------------------------------------------------- running
class Result:
    """A finished run: its summary, the experiment built from the same config (the initial
    weights: build_experiment seeds as train does) and the trained network's state."""

    def __init__(self, overrides: tuple[str, ...], out: Path):
        with initialize_config_dir(str(config_dir()), version_base="1.3"):
            cfg = compose(config_name="config", overrides=[*BASE, *overrides])
        self.exp = build_experiment(cfg)
        self.initial = {k: v.detach().clone() for k, v in self.exp.network.state_dict().items()}
        self.summary = train(cfg, out)
        saved = json.loads((out / "summary.json").read_text())
        assert saved["decoders"] == self.summary["decoders"] and saved["learners"] == self.summary["learners"]
        self.final = load_checkpoint(out, fallback=False)["network"]

    def changed(self, prefix: str) -> bool:
        """Whether a weight of the connections under ``prefix`` moved by more than rounding."""
        return any(not torch.allclose(self.initial[k].float(), v.float(), atol=1e-6, rtol=0)
                   for k, v in self.final.items()
                   if k.startswith(prefix) and k.endswith((".w", ".weight")) and v.is_floating_point())


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    done: dict[tuple[str, ...], Result] = {}

    def _run(overrides: tuple[str, ...]) -> Result:
        if overrides not in done:
            torch.manual_seed(0)
            done[overrides] = Result(overrides, tmp_path_factory.mktemp("run"))
        return done[overrides]

    return _run


def finished(r: Result) -> None:
    s = r.summary
    assert s["n_train"] + s["n_val"] == 16 and s["n_test"] == 8 and s["epochs"] == 1
    assert all(0.0 <= d["test_accuracy"] <= 1.0 for d in s["decoders"].values())


def names(kind: str) -> list[str]:
    return REG[kind].names()


# --------------------------------------------------------------------------- the cases
@pytest.mark.parametrize("name", names("decoders"))
def test_decoder(run, name):
    r = run(run_of("decoders", name))
    finished(r)
    assert name in r.summary["decoders"]
    assert type(r.exp.decoders[name]) is REG["decoders"].get(name)


@pytest.mark.parametrize("name", names("encoders"))
def test_encoder(run, name):
    assert (config_dir() / "encoder" / f"{name}.yaml").is_file(), f"no preset conf/encoder/{name}.yaml"
    r = run(run_of("encoders", name))
    finished(r)
    assert type(r.exp.encoder) is REG["encoders"].get(name)
    assert r.exp.encoder.steps == 4 and r.changed("connections.")


@pytest.mark.parametrize("name", names("connections"))
def test_connection(run, name):
    assert name in CONNECTIONS, f"no config path for connection '{name}': add a run to CONNECTIONS"
    overrides, conn = CONNECTIONS[name]
    r = run(overrides)
    finished(r)
    c = r.exp.network.connections[conn]
    assert REG["connections"].get(name) in {type(op) for op in getattr(c, "ops", [c])}


@pytest.mark.parametrize("name", names("learners"))
def test_learner(run, name):
    assert name in LEARNERS, f"no config path for learning rule '{name}': add a run to LEARNERS"
    overrides, conn = LEARNERS[name]
    r = run(overrides)
    finished(r)
    cls = REG["learners"].get(name)
    (learner,) = [l for l in r.exp.learners.values() if type(l) is cls]
    assert name in r.summary["learners"].values()
    if conn is None:  # gradient learner: every layer's weights trained
        assert learner.gradient and r.changed("connections.") and math.isfinite(r.summary["test_loss"])
    else:
        assert learner.connection is r.exp.network.connections[conn]
        assert r.changed(f"connections.{conn}."), f"{name} did not change the weights of {conn}"


@pytest.mark.parametrize("name", names("losses"))
def test_loss(run, name):
    assert (config_dir() / "loss" / f"{name}.yaml").is_file(), f"no preset conf/loss/{name}.yaml"
    r = run(run_of("losses", name))
    finished(r)
    assert type(r.exp.gradient.loss) is REG["losses"].get(name)
    assert math.isfinite(r.summary["test_loss"]) and r.changed("connections.")


@pytest.mark.parametrize("preset", NEURON_PRESETS)
def test_neuron_preset(run, preset):
    r = run(run_of("neurons", preset))
    group = neuron_slot(preset)[2]
    finished(r)
    assert type(r.exp.network.groups[group]) is preset_class(preset)


@pytest.mark.parametrize("name", names("neurons"))
def test_every_neuron_model_has_a_preset(name):
    types = {str(OmegaConf.load(config_dir() / "neuron" / f"{p}.yaml").type) for p in NEURON_PRESETS}
    assert types & {name, *REG["neurons"].aliases_of(name)}, f"no preset in conf/neuron/ has type: {name}"


def test_surrogate_by_name(run):
    r = run(SURROGATE_RUN)
    finished(r)
    for g in ("hidden", "out"):
        assert type(r.exp.network.groups[g].surrogate) is REG["surrogates"].get("erf")
    assert r.changed("connections.")
