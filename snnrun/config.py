"""Where the config tree lives, and the small OmegaConf resolvers configs use for derived numbers."""

from __future__ import annotations

import math
from pathlib import Path

from omegaconf import OmegaConf

PACKAGE_DIR = Path(__file__).resolve().parent


def config_dir() -> Path:
    """``snnrun/conf`` in an installed wheel, the repo's top-level ``conf/`` in a checkout."""
    for d in (PACKAGE_DIR / "conf", PACKAGE_DIR.parent / "conf"):
        if (d / "config.yaml").is_file():
            return d
    raise FileNotFoundError("snnrun's config tree (conf/config.yaml) is missing from the install")


def model_names() -> list[str]:
    return sorted(p.stem for p in (config_dir() / "model").glob("*.yaml"))


def probe_dir(out, stem: str, choice=None, neuron_type=None) -> str:
    """``snnrun probe``'s run directory (conf/probe.yaml): the folder of ``out=`` when given, else
    ``<stem>_<neuron preset or type>``."""
    if out not in (None, ""):
        return str(Path(str(out)).parent)
    name = choice if choice not in (None, "null", "") else (neuron_type or "neuron")
    return f"{stem}_{name}"


def register_resolvers() -> None:
    """``${mul:0.1,${data.n_inputs}}``, ``${prod:${data.shape}}``, ``${neg:${model.inh}}``,
    ``${first_set:a,b}`` (the first that is not null: run dirs named by recipe, else model); and
    ``probe_dir`` / ``probe_subdir`` for conf/probe.yaml's hydra.run.dir."""
    resolvers = {
        "mul": lambda *xs: math.prod(float(x) for x in xs),
        "prod": lambda xs: int(math.prod(int(x) for x in xs)),
        "neg": lambda x: -x,
        "first_set": lambda *xs: next((x for x in xs if x not in (None, "", "null")), None),
        "probe_dir": probe_dir,
        # out= given: nothing but the PNG is written (no .hydra/ next to the user's file)
        "probe_subdir": lambda out: None if out not in (None, "") else ".hydra",
    }
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


register_resolvers()

# conf/config.yaml lists the structured config `run_schema`: register it wherever configs are composed
from snnrun.schema import register as _register_schemas  # noqa: E402

_register_schemas()
