"""Every zoo preset is usable from a config: swapped into diehl_cook's groups, it builds and runs."""

import pytest
import torch
from omegaconf import OmegaConf

from snnrun.config import config_dir
from snnrun.errors import ConfigError
from snnrun.engine.experiment import build_experiment
from snnrun.components.neurons import NeuronModel
from snnrun.registry import accepted_kwargs

ZOO = ["mcculloch_pitts", "if", "boosted_lif", "current_lif", "if_soft_reset", "constant_current_lif",
       "nonspiking_lif", "null", "izhikevich", "csrm", "srm0", "hh", "adex", "glif", "meanfield", "cann_field",
       "lif_int", "diehl_cook_int", "clif", "aclif", "exp_euler_lif", "lif_ref", "alif"]
TINY = ["data=synthetic", "data.n_train=4", "data.n_test=4", "model.n_neurons=6", "model.time=20"]


def drop_unaccepted(compose_cfg, preset, group):
    """Overrides that remove the group keys diehl_cook sets but the preset's model lacks."""
    cfg = compose_cfg("+model=diehl_cook", *TINY, f"neuron@model.network.groups.{group}='{preset}'")
    node = OmegaConf.to_container(cfg.model.network.groups[group])
    allowed = accepted_kwargs(NeuronModel.registry.get(node["type"]))
    return [f"~model.network.groups.{group}.{k}" for k in node if k != "type" and k not in allowed]


@pytest.mark.parametrize("preset", ZOO)
def test_preset_swaps_into_diehl_cook(compose_cfg, preset):
    torch.manual_seed(0)
    drop = drop_unaccepted(compose_cfg, preset, "Ai")
    cfg = compose_cfg("+model=diehl_cook", *TINY, f"neuron@model.network.groups.Ai='{preset}'", *drop)
    exp = build_experiment(cfg)
    assert exp.network.groups["Ai"].registered_name == preset
    counts = exp.simulate(exp.data.train.x[:2])
    assert counts.shape == (2, 6) and torch.isfinite(counts).all()


def test_type_override_in_place(compose_cfg):
    cfg = compose_cfg("+model=diehl_cook", *TINY, "model.network.groups.Ae.type=diehl_cook_int")
    exp = build_experiment(cfg)
    assert exp.network.groups["Ae"].registered_name == "diehl_cook_int"
    exp.network.train()
    exp.simulate(exp.data.train.x[:2])


def test_swap_needs_no_key_removal(compose_cfg):
    # diehl_cook sets only the size of its inhibitory group: any preset swaps in as it is
    cfg = compose_cfg("+model=diehl_cook", *TINY, "neuron@model.network.groups.Ai=izhikevich")
    assert build_experiment(cfg).network.groups["Ai"].registered_name == "izhikevich"


def test_swap_with_a_foreign_parameter_names_the_models_parameters(compose_cfg):
    cfg = compose_cfg("+model=diehl_cook", *TINY, "neuron@model.network.groups.Ai=izhikevich",
                      "+model.network.groups.Ai.tc_decay=10")
    with pytest.raises(ConfigError) as e:
        build_experiment(cfg)
    assert e.value.key == "model.network.groups.Ai.tc_decay"
    assert "Allowed:" in str(e.value) and "excitatory" in str(e.value)


@pytest.mark.parametrize("path", sorted((config_dir() / "neuron").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_neuron_preset_builds(path):
    node = OmegaConf.to_container(OmegaConf.load(path))
    g = NeuronModel.build({**node, "n": 3}, key=f"neuron/{path.stem}", dt=1.0)
    g.reset_state(2)
    with torch.no_grad():
        out = g(torch.ones(2, 3))
    assert out.shape == (2, 3)
