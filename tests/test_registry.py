import pytest

from snnrun.cli import registries
from snnrun.errors import ConfigError
from snnrun.components.neurons import LIFNodes, NeuronModel
from snnrun.registry import Registry


class Custom:
    """A user's own component."""

    def __init__(self, a: int = 1):
        self.a = a


def test_unknown_name_suggests_and_lists():
    with pytest.raises(ConfigError) as e:
        NeuronModel.build({"type": "diehl_cok"}, key="model.network.groups.Ae")
    msg = str(e.value)
    assert e.value.key == "model.network.groups.Ae.type"
    assert "Did you mean 'diehl_cook'" in msg and "lif" in msg and "adaptive_lif" in msg


def test_missing_type():
    with pytest.raises(ConfigError, match="missing 'type'"):
        NeuronModel.build({"n": 3}, key="g")


def test_target_path_builds_users_class_and_checks_kwargs():
    r = Registry("thing")
    obj = r.build({"_target_": "tests.test_registry.Custom", "a": 5})
    assert isinstance(obj, Custom) and obj.a == 5
    with pytest.raises(ConfigError) as e:
        r.build({"_target_": "tests.test_registry.Custom", "b": 5}, key="k")
    assert e.value.key == "k.b"
    with pytest.raises(ConfigError, match="cannot import"):
        r.build({"_target_": "tests.test_registry.Nope"}, key="k")


def test_duplicate_registration_is_refused():
    r = Registry("thing")
    r.register("a")(Custom)
    with pytest.raises(ValueError, match="already registered"):
        r.register("a")(Custom)


def test_aliases_resolve():
    r = Registry("thing")
    r.register("alpha", "a")(Custom)
    assert r.get("a") is Custom and r.aliases_of("alpha") == ["a"]


def test_every_component_has_a_docstring():
    for kind, reg in registries().items():
        for name, cls in reg.items():
            assert (cls.__doc__ or "").strip(), f"{kind} '{name}' has no docstring"
    assert "v >= thresh" in LIFNodes.__doc__


def test_one_name_one_meaning():
    """A name (or alias) of a component a config can name (``snnrun list``'s registries, reward
    sources and bench workloads) names one component in one registry only."""
    from snnrun.commands.bench import Workload
    from snnrun.components.learning.reward import RewardSource

    owners: dict[str, set[str]] = {}
    regs = {**registries(), "reward sources": RewardSource.registry, "workloads": Workload.registry}
    for kind, reg in regs.items():
        for name in reg.names():
            for n in (name, *reg.aliases_of(name)):
                owners.setdefault(n, set()).add(kind)
    clashes = {n: sorted(kinds) for n, kinds in owners.items() if len(kinds) > 1}
    assert not clashes, f"names registered in more than one registry: {clashes}"


def test_renamed_names_point_to_their_new_names():
    from snnrun.components.generators import Generator
    from snnrun.components.learning import LearningRule
    from snnrun.components.surrogates import Surrogate

    assert Surrogate.registry.get("stca_rect").__name__ == "STCARect" and "stca" not in Surrogate.registry
    assert LearningRule.registry.get("stca").__name__ == "STCA"
    for old, new in (("constant_current", "constant"), ("poisson", "poisson_generator")):
        with pytest.raises(ConfigError, match=f"Did you mean '{new}'") as e:
            Generator.build({"type": old}, key="input", time=5, dt=1)
        assert e.value.key == "input.type"


def test_as_node_reads_a_name_a_mapping_an_omegaconf_node_or_none():
    from omegaconf import OmegaConf

    from snnrun.registry import as_node

    assert as_node("atan") == {"type": "atan"}
    src = {"type": "sigmoid", "alpha": 4}
    out = as_node(src)
    assert out == src and out is not src
    cfg = OmegaConf.create({"a": 2, "n": {"type": "lif", "thresh": "${a}"}})
    assert as_node(cfg.n) == {"type": "lif", "thresh": 2} and type(as_node(cfg.n)) is dict
    assert as_node(None) == {} and as_node(None, default="step") == {"type": "step"}
    with pytest.raises(ConfigError, match="expected a registered name or a config node") as e:
        as_node(3.5, key="model.encoder")
    assert e.value.key == "model.encoder"


def test_every_builder_takes_a_name_or_a_node():
    from snnrun.components.connections import init_weights
    from snnrun.components.learning.reward import External, build_reward
    from snnrun.components.losses import Loss
    from snnrun.components.surrogates import build_surrogate

    assert NeuronModel.build("lif", key="g", n=2).registered_name == "lif"
    assert Loss.build("spike_count_ce").name == Loss.build({"type": "spike_count_ce"}).name
    assert type(build_surrogate("atan")) is type(build_surrogate({"type": "atan"}))
    assert isinstance(build_reward(None), External) and isinstance(build_reward("external"), External)
    assert init_weights((2, 2), {"type": "constant", "value": 2}).tolist() == [[2, 2]] * 2
    assert init_weights((50,), "normal").std() > 0
    assert 0 <= init_weights((3,), None).min() and init_weights((3,), None).max() <= 0.3
    with pytest.raises(ConfigError) as e:
        NeuronModel.build(None, key="model.network.groups.X")
    assert "missing 'type'" in str(e.value) and e.value.key == "model.network.groups.X"
    with pytest.raises(ConfigError) as e:
        NeuronModel.build([1, 2], key="model.network.groups.X")
    assert e.value.key == "model.network.groups.X"


def test_source_qualified_names():
    r = Registry("thing")
    r.register("alpha", "a", source="lib")(Custom)

    class Own(Custom):
        """snnrun's own."""

    class Other(Custom):
        """Only under its source's name."""

    r.register("own")(Own)
    r.register("lib.beta", source="lib")(Other)
    assert r.get("lib.alpha") is Custom and r.get("a") is Custom
    assert r.aliases_of("alpha") == ["a", "lib.alpha"] and r.aliases_of("lib.beta") == []
    assert r.source_of("lib.alpha") == r.source_of("alpha") == "lib" and r.source_of("own") == "snnrun"
    assert r.names(source="lib") == ["alpha", "lib.beta"] and r.names(source="snnrun") == ["own"]
    assert r.sources() == ["lib", "snnrun"] and Custom.registered_source == "lib"
    with pytest.raises(ValueError, match="already registered"):
        r.register("gamma", "lib.alpha")(Own)
    with pytest.raises(ValueError, match="without '.'"):
        r.register("delta", source="a.b")


def test_short_names_keep_their_meaning_next_to_source_names():
    reg = NeuronModel.registry
    assert reg.get("bindsnet.lif") is reg.get("lif") is LIFNodes
    assert reg.source_of("lif") == "bindsnet" and reg.get("brainstate.lif") is reg.get("exp_euler_lif")
    # a dotted name is a plain type: value in a config node
    group = NeuronModel.build({"type": "bindsnet.lif", "thresh": -50.0}, key="g", n=2)
    assert type(group) is LIFNodes and group.thresh == -50.0
    with pytest.raises(ConfigError) as e:
        NeuronModel.build({"type": "bindsnet.lfi"}, key="g")
    assert "Did you mean 'bindsnet.lif'" in str(e.value) and e.value.key == "g.type"
