"""Every config in conf/ composes with Hydra and builds."""

import pytest
from omegaconf import OmegaConf

from snnrun.cli import registries
from snnrun.config import config_dir, model_names
from snnrun.engine.experiment import build_experiment
from snnrun.errors import ConfigError

DATA = sorted(p.stem for p in (config_dir() / "data").glob("*.yaml"))
PRESET_REGISTRY = {"neuron": "neurons", "connection": "connections", "encoder": "encoders",
                   "learner": "learners", "data": "datasets", "loss": "losses"}


@pytest.mark.parametrize("model", model_names())
def test_model_composes_and_builds(compose_cfg, model):
    cfg = compose_cfg(f"+model={model}", "data=synthetic", "device=cpu")
    if model == "nir":  # reads its network from a file (tests/test_nir.py builds from one)
        with pytest.raises(ConfigError, match="model.path"):
            build_experiment(cfg)
        return
    exp = build_experiment(cfg)  # every model: one description (network, encoder, decoders, learner)
    assert exp.network.groups[exp.input_group].n == 64
    exp.network.eval()  # learning off: a presentation without labels
    r = exp.present(exp.data.test.x[:2])
    assert r.counts.shape[0] == 2 and exp.network.groups[exp.readout].n % 4 == 0  # synthetic: 4 classes


@pytest.mark.parametrize("data", DATA)
def test_model_interpolates_dataset_sizes(compose_cfg, data):
    cfg = compose_cfg("+model=diehl_cook", f"data={data}")
    resolved = OmegaConf.to_container(cfg, resolve=True)
    n_in = resolved["data"]["n_inputs"]
    assert resolved["model"]["network"]["groups"]["X"]["n"] == n_in
    assert resolved["model"]["norm"] == pytest.approx(0.1 * n_in)


def test_mnist_sizes(compose_cfg):
    cfg = compose_cfg("+model=diehl_cook", "data=mnist")
    assert cfg.data.n_inputs == 784 and cfg.model.norm == pytest.approx(78.4)


@pytest.mark.parametrize("group,registry", sorted(PRESET_REGISTRY.items()))
def test_preset_types_are_registered(group, registry):
    reg = registries()[registry]
    for path in (config_dir() / group).glob("*.yaml"):
        node = OmegaConf.load(path)
        assert node.type in reg, f"{path} names unknown {group} type {node.type}"


def test_component_presets_can_be_swapped(compose_cfg):
    cfg = compose_cfg("+model=diehl_cook", "data=synthetic", "neuron@model.network.groups.Ae=adaptive_lif")
    exp = build_experiment(cfg)
    assert type(exp.network.groups["Ae"]).__name__ == "AdaptiveLIFNodes"


def test_diehl_cook_defaults_match_bindsnet(compose_cfg):
    m = OmegaConf.to_container(compose_cfg("+model=diehl_cook").model, resolve=True)
    g, c = m["network"]["groups"], m["network"]["connections"]
    assert (g["Ae"]["rest"], g["Ae"]["reset"], g["Ae"]["thresh"], g["Ae"]["refrac"]) == (-65, -60, -52, 5)
    assert (g["Ae"]["tc_decay"], g["Ae"]["theta_plus"], g["Ae"]["tc_theta_decay"]) == (100, 0.05, 1e7)
    assert (g["Ai"]["rest"], g["Ai"]["reset"], g["Ai"]["thresh"], g["Ai"]["tc_decay"], g["Ai"]["refrac"]) \
        == (-60, -45, -40, 10, 2)
    assert c["Ae_Ai"]["weight"] == 22.5 and c["Ai_Ae"]["weight"] == -120.0
    assert m["learner"]["nu"] == [1e-4, 1e-2] and m["learner"]["connection"] == "X_Ae"
    assert m["time"] == 250 and m["dt"] == 1.0


def test_a_bad_model_value_names_the_model_key(compose_cfg):
    """A bad value of a model-level key is reported with the key it came from."""
    from snnrun.errors import ConfigError

    for bad in ("abc", "10.5", "0"):
        with pytest.raises(ConfigError) as e:
            build_experiment(compose_cfg("+model=diehl_cook", "data=synthetic", f"model.n_neurons={bad}"))
        assert e.value.key.startswith("model.network.groups.A") and "model.n_neurons" in str(e.value), bad
