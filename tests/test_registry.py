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
