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


def register_resolvers() -> None:
    """``${mul:0.1,${data.n_inputs}}``, ``${prod:${data.shape}}``, ``${neg:${model.inh}}``."""
    resolvers = {
        "mul": lambda *xs: math.prod(float(x) for x in xs),
        "prod": lambda xs: int(math.prod(int(x) for x in xs)),
        "neg": lambda x: -x,
    }
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


register_resolvers()

# conf/config.yaml lists the structured config `run_schema`: register it wherever configs are composed
from snnrun.schema import register as _register_schemas  # noqa: E402

_register_schemas()
