"""``snnrun reproduce experiment=NAME seeds=N [overrides]``: a paper recipe over N seeds.

Runs ``conf/experiment/NAME.yaml`` as one Hydra multirun over ``seed=0..N-1`` (or the seeds of
``seeds=[a,b,...]``) in ``outputs/reproduce/<date>/<time>_<NAME>/<job>/`` (or ``hydra.sweep.dir``),
then prints the recipe's published figure (its ``paper:`` node: ``figure``, ``metric``, ``source``)
beside snnrun's mean ± std (ddof=1) over the seeds and the wall time, and writes the same as
``reproduce.json`` in the sweep directory. Any other override applies to every seed
(``data.root=DIR device=cuda``).
"""

from __future__ import annotations

import math
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from snnrun.errors import ConfigError
from snnrun.run.console import console, write_json_atomic
from snnrun.run.sweep import find_runs, read_run

USAGE = """usage: snnrun reproduce experiment=NAME [seeds=N] [overrides ...]

  Run a paper recipe (conf/experiment/NAME.yaml) with seeds 0..N-1 (default 2; or seeds=[3,7])
  as one sweep, then print the paper's figure beside the mean ± std (ddof=1) over the seeds
  and the wall time; reproduce.json in the sweep directory holds the same.

  experiment  one of: {names}
  seeds       how many seeds (seed 0..N-1), or a list [a,b,...]
  overrides   Hydra overrides for every run (data.root=DIR device=cuda trainer.batch_size=64 ...)

  e.g. snnrun reproduce experiment=dc_mnist_400 seeds=2 data.root=../shared/data/mnist device=cuda"""


def experiment_names() -> list[str]:
    from snnrun.config import config_dir

    return sorted(p.stem for p in (config_dir() / "experiment").glob("*.yaml"))


def usage() -> str:
    return USAGE.format(names=", ".join(experiment_names()))


def parse_seeds(value: str) -> list[int]:
    """``N`` -> [0, ..., N-1]; ``[a,b]`` -> [a, b]."""
    text = value.strip()
    try:
        if text.startswith("["):
            seeds = [int(s) for s in text.strip("[]").split(",") if s.strip()]
            if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
                raise ValueError
            return seeds
        n = int(text)
    except ValueError:
        raise ConfigError(f"a number of seeds (seeds=3: seeds 0, 1, 2) or a list of distinct seeds >= 0 "
                          f"(seeds=[3,7]), got {value!r}", key="seeds") from None
    if not 1 <= n <= 100:
        raise ConfigError(f"a number of seeds from 1 to 100, got {n}", key="seeds")
    return list(range(n))


def parse_args(args: list[str]) -> tuple[str, list[int], list[str]]:
    """(experiment name, seeds, the other overrides); ConfigError on bad input."""
    from snnrun.registry import did_you_mean

    name, seeds, rest = None, [0, 1], []
    for a in args:
        key, eq, value = a.partition("=")
        if key.lstrip("+") == "experiment" and eq:
            name = value
        elif key == "seeds" and eq:
            seeds = parse_seeds(value)
        elif key.lstrip("+~") == "seed":
            raise ConfigError("reproduce runs several seeds: use seeds=N (seeds 0..N-1) or seeds=[a,b]", key="seed")
        elif a.startswith("-"):  # -m, --cfg ...: reproduce is a sweep by itself
            raise ConfigError(f"'{a}' is not an option of reproduce (snnrun reproduce --help)", key="reproduce")
        else:
            rest.append(a)
    names = experiment_names()
    if not name:
        raise ConfigError(f"name the recipe: snnrun reproduce experiment=NAME, one of {', '.join(names)}",
                          key="experiment")
    if name not in names:
        raise ConfigError(f"no recipe '{name}'.{did_you_mean(name, names)} Recipes (conf/experiment/): "
                          f"{', '.join(names)}", key="experiment")
    return name, seeds, rest


def paper_of(cfg) -> dict[str, Any]:
    paper = cfg.get("paper")
    if paper is None:
        raise ConfigError("this recipe has no paper: node (figure, metric, source) to compare with", key="paper")
    from omegaconf import OmegaConf

    return OmegaConf.to_container(paper, resolve=True)


def sweep_dir_for(name: str, overrides: list[str]) -> tuple[str, list[str]]:
    for o in overrides:
        if o.split("=", 1)[0] == "hydra.sweep.dir":
            return o.split("=", 1)[1], overrides
    d = f"outputs/reproduce/{datetime.now():%Y-%m-%d}/{datetime.now():%H-%M-%S}_{name}"
    return d, [*overrides, f"hydra.sweep.dir={d}"]


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
    return mean, std


def reaches(mean: float, figure: float) -> bool:
    """Whether the mean reaches the paper's figure. Accuracies are saved as float32, where 9,940 of
    10,000 is 0.99399998...: a mean within float32's rounding of the figure reaches it."""
    return mean >= float(figure) - 1e-6


def results(sweep_dir: Path, paper: dict[str, Any], seeds: list[int], wall_s: float) -> dict[str, Any]:
    """The figures of the finished runs in ``sweep_dir`` against the paper's."""
    metric = paper.get("metric", "test_accuracy")
    per_seed, walls, unfinished, best_test = {}, [], [], {}
    for run in find_runs([sweep_dir], skipped=[]):
        r = read_run(run)
        seed = r["overrides"].get("seed", "-")
        s = r["summary"]
        if s is None or s.get(metric) is None:
            unfinished.append(str(run))
            continue
        per_seed[str(seed)] = float(s[metric])
        walls.append(float(s.get("wall_s") or 0.0))
        if s.get("best_epoch_test_accuracy") is not None:  # trainer.test_every_epoch
            best_test[str(seed)] = float(s["best_epoch_test_accuracy"])
    mean, std = mean_std(list(per_seed.values()))
    out = {"experiment": sweep_dir.name, "metric": metric, "paper": paper.get("figure"),
           "source": paper.get("source"), "note": paper.get("note"), "mean": mean, "std": std,
           "n_seeds": len(per_seed), "per_seed": per_seed, "run_wall_s_mean": mean_std(walls)[0],
           "total_wall_s": wall_s, "reached": None if mean is None else reaches(mean, paper["figure"]),
           "unfinished": unfinished, "seeds": seeds}
    if best_test and len(best_test) == len(per_seed):
        # the best test accuracy over the epochs, the figure some papers report (paper.best_epoch_figure)
        b_mean, b_std = mean_std(list(best_test.values()))
        out["best_test_epoch"] = {"paper": paper.get("best_epoch_figure"), "mean": b_mean, "std": b_std,
                                  "per_seed": best_test}
    return out


def figure_cells(paper, mean, std, per_seed: dict[str, float]) -> tuple[str, str, str, str]:
    """A table row's paper, snnrun (mean ± std), seeds and per-seed cells."""
    snn = "-" if mean is None else f"{mean:.4f}" + (f" ± {std:.4f}" if std is not None else "")
    return ("-" if paper is None else f"{float(paper):.4f}", snn, str(len(per_seed)),
            ", ".join(f"{k}: {v:.4f}" for k, v in per_seed.items()))


def print_results(name: str, res: dict[str, Any]) -> None:
    t = Table(title=f"reproduce {name}", title_justify="left", caption_justify="left",
              caption=f"{res['metric']}: mean ± std (ddof=1) over seeds; paper: {escape(str(res['source']))}"
                      + (f" ({escape(res['note'])})" if res.get("note") else ""))
    for col in ("paper", "snnrun", "seeds", "per seed", "wall per run", "wall total"):
        t.add_column(col, justify="right" if col != "per seed" else "left", no_wrap=col != "per seed")
    t.add_row(*figure_cells(res["paper"], res["mean"], res["std"], res["per_seed"]),
              "-" if res["run_wall_s_mean"] is None else f"{res['run_wall_s_mean']:.1f} s",
              f"{res['total_wall_s']:.1f} s")
    best = res.get("best_test_epoch")
    if best is not None:
        paper, snn, n, seeds = figure_cells(best["paper"], best["mean"], best["std"], best["per_seed"])
        t.add_row(paper, snn, n, seeds + " (best test epoch)", "", "")
    console.print(t)
    if res["unfinished"]:
        console.print(f"[yellow]warning:[/] {len(res['unfinished'])} run(s) did not finish: "
                      f"{escape(', '.join(res['unfinished']))}", soft_wrap=True)
    if res.get("data"):
        console.print(f"the paper's figure is of {escape(str(res['data']['recipe']))}; these runs used "
                      f"{escape(str(res['data']['ran']))}: not compared", soft_wrap=True)
    elif res["reached"] is not None:
        gap = res["mean"] - float(res["paper"])
        console.print(f"[green]reached[/] the paper's figure ({gap:+.4f})" if res["reached"]
                      else f"[yellow]below[/] the paper's figure by {-gap:.4f}")


def reproduce(args: list[str], launch) -> dict[str, Any] | None:
    """Check the input, launch the sweep (``launch(hydra_args)``: the train app), report."""
    from snnrun.run.compose import compose

    if any(a in ("-h", "--help") for a in args):
        console.print(usage(), markup=False, highlight=False, soft_wrap=True)
        return None
    name, seeds, overrides = parse_args(args)
    cfg = compose("config", [f"experiment={name}", f"seed={seeds[0]}", *overrides])  # bad overrides fail here
    paper = paper_of(cfg)
    recipe_data = compose("config", [f"experiment={name}"]).data.get("type")
    ran_data = cfg.data.get("type")
    if cfg.get("model") is None:
        raise ConfigError(f"recipe '{name}' chooses no model", key="experiment")
    sweep_dir, overrides = sweep_dir_for(name, overrides)
    if Path(sweep_dir).exists() and any(Path(sweep_dir).iterdir()) and \
            not any(o.split("=", 1)[0] == "resume" and o.endswith("true") for o in overrides):
        raise ConfigError(f"{sweep_dir} already holds runs; choose another hydra.sweep.dir or continue "
                          "them with resume=true", key="hydra.sweep.dir")
    console.print(f"[bold]reproduce[/] {name}: seeds {', '.join(map(str, seeds))} in {sweep_dir}", soft_wrap=True)
    t0 = time.perf_counter()
    launch(["-m", f"experiment={name}", f"seed={','.join(map(str, seeds))}", *overrides])
    res = results(Path(sweep_dir), paper, seeds, time.perf_counter() - t0)
    res["experiment"] = name
    if ran_data != recipe_data:  # data=... on the command line: the paper's figure is of other data
        res["reached"] = None
        res["data"] = {"recipe": recipe_data, "ran": ran_data}
    print_results(name, res)
    write_json_atomic(Path(sweep_dir) / "reproduce.json", res)
    return res
