"""One way to build a config: Hydra's compose API, for every command.

``snnrun train`` composes ``conf/config.yaml`` with the command line (a Hydra app). The commands
that work on an existing run (``eval``, ``resume``, ``report``) compose the run's *saved* config
the same way, so overrides mean the same thing everywhere::

    snnrun eval run_dir=DIR logger=plain device=cpu data.limit_test=100

How (``compose_run_config``): the run's ``.hydra/config.yaml`` is the record of the run and wins
over the config files, which may have changed since. It becomes an in-memory primary config
(Hydra's ConfigStore) whose defaults list is

    - run_schema          # snnrun/schema.py: types and keys, so ``trainer.epochs=two`` fails by name
    - _self_              # the saved config, as it was
    - <group>: null       # one entry per group override on the command line (``logger=plain``)

with snnrun's conf tree as the config search path. A group override (``logger=plain``,
``data=mnist``, ``neuron@model.network.groups.Ai=lif``) therefore selects that preset from the
conf tree exactly as ``snnrun train`` does: the saved subtree at that package is dropped and the
preset (plus the schema's defaults) takes its place. Every other override (``device=cpu``,
``+foo=1``, ``~key``) is applied by Hydra to the saved values. Nothing else is read from the conf
files, so a run whose presets have since been edited or removed composes as it ran.

Errors (unknown group option, a value of the wrong type, a key that does not exist, bad override
syntax) come back as :class:`~snnrun.errors.ConfigError` naming the key; nothing is written.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Iterator, Sequence

from omegaconf import DictConfig, OmegaConf

from snnrun.errors import ConfigError

SAVED_RUN_NODE = "snnrun_saved_run"   # the ConfigStore name of the composed run's primary config


@contextlib.contextmanager
def hydra_context(conf_dir: str | Path | None = None) -> Iterator[None]:
    """``initialize_config_dir`` on snnrun's conf tree that also works inside a running Hydra app
    (``snnrun bench`` composes model configs from its task): the app's GlobalHydra is put aside
    and restored afterwards."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from snnrun.config import config_dir

    gh = GlobalHydra.instance()
    outer = gh.hydra
    gh.clear()
    try:
        with initialize_config_dir(str(Path(conf_dir or config_dir()).resolve()), version_base="1.3"):
            yield
    finally:
        GlobalHydra.instance().hydra = outer  # initialize_config_dir restores a copy of the singleton


def compose(config_name: str, overrides: Sequence[str] = (), conf_dir: str | Path | None = None,
            return_hydra_config: bool = False) -> DictConfig:
    """Hydra's ``compose`` of ``config_name`` from snnrun's conf tree; errors as ConfigError."""
    from hydra import compose as hydra_compose

    _parse(overrides)  # a syntax error names the override it is in
    with hydra_context(conf_dir):
        try:
            return hydra_compose(config_name, overrides=list(overrides),
                                 return_hydra_config=return_hydra_config)
        except Exception as e:  # noqa: BLE001 - every composition failure is the user's input
            raise composition_error(e, overrides) from e


def composition_error(e: BaseException, overrides: Sequence[str] = ()) -> ConfigError:
    """Hydra's composition failure as one ConfigError naming the key at fault."""
    from hydra.errors import MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(e, ConfigError):
        return e
    text = str(e)
    if isinstance(e, MissingConfigException):
        # "In 'config': Could not find 'data/nope'\n\nAvailable options in 'data':\n\tdigits ..."
        m = re.search(r"Could not find '([^']+)'", text)
        missing = m.group(1) if m else ""
        group, _, option = missing.rpartition("/")
        opts = re.search(r"Available options in '[^']+':\n((?:\t.*\n?)+)", text)
        choices = [o.strip() for o in opts.group(1).splitlines() if o.strip()] if opts else []
        if group and choices:
            from snnrun.registry import did_you_mean

            return ConfigError(f"no preset '{option}' in config group '{group}'.{did_you_mean(option, choices)} "
                               f"Allowed: {', '.join(choices)}", key=group)
        return ConfigError(f"could not find '{missing}'" if missing else text.splitlines()[0], key=group or None)
    cause = e.__cause__ if isinstance(e.__cause__, OmegaConfBaseException) else None
    if isinstance(e, OmegaConfBaseException):
        cause = e
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(e).__name__)
    if cause is not None:
        key = getattr(cause, "full_key", None) or None
        msg = next((ln.strip() for ln in str(cause).splitlines() if ln.strip()), first)
        parent, child = getattr(cause, "parent_node", None), getattr(cause, "key", None)
        if msg.startswith("Key '") and parent is not None and child is not None:
            from snnrun.registry import did_you_mean

            known = [k for k in parent.keys() if k != "hydra"]
            msg += f".{did_you_mean(str(child), known)} Allowed: {', '.join(map(str, known))}"
        hint = re.search(r"To append to your config use (\S+)", text)
        if hint:
            msg += f" (to add a new key: {hint.group(1)})"
        return ConfigError(msg, key=key)
    if first.startswith("Ambiguous value for argument"):  # a comma list: a sweep, which runs don't take
        first += " (a list is key=[a,b]; a literal comma is key='a,b')"
    m = re.search(r"(?:override|Key|key|group|argument) '([^'=]+)", first)
    hint = re.search(r"To append to your config use (\S+)", text)
    return ConfigError(first + (f" (to add a new key: {hint.group(1)})" if hint else ""),
                       key=m.group(1) if m else None)


def saved_config(run_dir: str | Path) -> DictConfig:
    """The run's ``.hydra/config.yaml`` as saved (interpolations unresolved)."""
    run_dir = Path(run_dir)
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a snnrun run directory (no .hydra/config.yaml)", key="run_dir")
    try:
        cfg = OmegaConf.load(path)
    except Exception as e:  # noqa: BLE001
        raise ConfigError(f"cannot read {path}: {str(e).splitlines()[0]}", key="run_dir") from e
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"{path} does not hold a config mapping", key="run_dir")
    return cfg


def _parse(overrides: Sequence[str]):
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser, out = OverridesParser.create(), []
    for o in overrides:
        try:
            out += parser.parse_overrides([o])
        except OverrideParseException as e:
            key = o.split("=", 1)[0] if "=" in o else o
            raise ConfigError(f"cannot read the override '{o}': {str(e).splitlines()[0]} (Hydra's override "
                              "grammar: key=value, group=option, +key=value, ~key)", key=key or None) from e
    return out


def _fits_schema(saved: DictConfig) -> bool:
    from snnrun.schema import RunConfig

    schema = OmegaConf.structured(RunConfig)
    OmegaConf.set_struct(schema.data, False)
    try:
        OmegaConf.merge(schema, saved)
        return True
    except Exception:  # noqa: BLE001 - a run saved by another snnrun version: its record wins
        return False


def compose_run_config(run_dir: str | Path, overrides: Sequence[str] | None = None) -> DictConfig:
    """The run's saved config rebuilt through Hydra's compose API, with ``overrides`` applied as
    ``snnrun train`` applies them (module docstring). Raises ConfigError; writes nothing."""
    from hydra.core.config_store import ConfigStore
    from hydra.core.global_hydra import GlobalHydra

    import snnrun.config  # noqa: F401  (resolvers and the run_schema node)

    overrides = [str(o) for o in overrides or []]
    saved = saved_config(run_dir)
    parsed = _parse(overrides)
    with hydra_context():
        groups = set(GlobalHydra.instance().config_loader().list_groups("")) - {"hydra"}
    node = OmegaConf.to_container(saved, resolve=False)  # a plain copy: the record stays untouched
    defaults: list = ["run_schema"] if _fits_schema(saved) else []
    defaults.append("_self_")
    for o in parsed:
        if o.key_or_group not in groups or o.is_delete() or o.is_add() or o.is_force_add():
            continue  # a value override (or +group=opt, which Hydra appends itself)
        package = o.package if o.package not in (None, "", "_group_") else o.key_or_group
        if package != "_global_":
            _drop(node, package.split("."))
        entry = o.key_or_group if o.package is None else f"{o.key_or_group}@{o.package}"
        defaults.append({entry: None})
    ConfigStore.instance().store(name=SAVED_RUN_NODE, node={"defaults": defaults, **node})
    cfg = compose(SAVED_RUN_NODE, overrides)
    return cfg


def _drop(node: dict, path: list[str]) -> None:
    for k in path[:-1]:
        node = node.get(k) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            return
    if isinstance(node, dict):
        node.pop(path[-1], None)
