"""The ``snnrun`` command: picks the subcommand, hands the rest of the arguments to Hydra.

    snnrun train +model=diehl_cook [overrides]      (Hydra app: -m sweeps, --cfg job, hydra.run.dir=...)
    snnrun eval run_dir=DIR [key=value ...]          re-evaluate a finished run
    snnrun list [neurons|encoders|connections|learners|decoders|datasets|models]
    snnrun probe neuron=NAME [input=step input.amplitude=10 time=500 | sweep=fi]   plot one neuron model
    snnrun resume run_dir=DIR [device=...]            continue a stopped run from its checkpoint
    snnrun report run_dir=DIR                         summary, config diff, figures of a run
    snnrun compare DIR... [csv=FILE]                  results table of runs / sweep directories
    snnrun bench workload=dc_train [workload.n=400 workload.batch=1,256 ...]   speed on this machine
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Callable

from omegaconf.errors import OmegaConfBaseException
from rich.markup import escape

from snnrun.errors import ConfigError, TrainingInterrupted
from snnrun.run.console import console

USAGE = __doc__


@contextlib.contextmanager
def user_errors():
    """Print user errors as one clear block without a traceback, exit code 2."""
    try:
        yield
    except ConfigError as e:
        where = f"[bold]{e.key}[/]: " if e.key else ""
        # messages quote config values such as [1, 28, 28]: not rich markup
        console.print(f"[bold red]error:[/] {where}{escape(e.message)}", soft_wrap=True)
        sys.exit(2)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None)
        msg = str(e).splitlines()[0]
        console.print(f"[bold red]error:[/] {f'[bold]{key}[/]: ' if key else ''}{escape(msg)}", soft_wrap=True)
        sys.exit(2)
    except TrainingInterrupted as e:
        console.print(f"[yellow]{e}[/]; continue with: snnrun resume run_dir={e.run_dir}", soft_wrap=True)
        sys.exit(e.exit_code)


def _hydra_app(task: Callable, args: list[str]) -> None:
    import hydra

    from snnrun.config import PACKAGE_DIR, config_dir

    conf = config_dir()
    config_path = "pkg://snnrun.conf" if conf == PACKAGE_DIR / "conf" else str(conf)
    if os.environ.get("RANK", "0") != "0":  # torchrun's other ranks: rank 0 alone writes the run dir
        args = [*args, "hydra.output_subdir=null", "hydra.run.dir=.", "hydra/job_logging=disabled",
                "hydra/hydra_logging=disabled"]
    sys.argv = ["snnrun", *args]
    hydra.main(version_base="1.3", config_path=config_path, config_name="config")(task)()


def _train_task(cfg):
    from hydra.core.hydra_config import HydraConfig

    from snnrun.engine.loop import train

    with user_errors():
        summary = train(cfg, output_dir=HydraConfig.get().runtime.output_dir)
    return summary["test_accuracy"]  # the objective for Hydra sweepers (Optuna)


def _eval(args: list[str]) -> None:
    from snnrun.engine.loop import evaluate_run

    with user_errors():
        kv = dict(a.split("=", 1) for a in args if "=" in a)
        bad = [a for a in args if "=" not in a]
        if bad:
            raise ConfigError(f"arguments are key=value, got {bad[0]!r}", key="eval")
        if "run_dir" not in kv:
            raise ConfigError("say which run to evaluate: snnrun eval run_dir=outputs/<date>/<time>_<model>",
                              key="run_dir")
        run_dir = kv.pop("run_dir")
        out = evaluate_run(run_dir, [f"{k}={v}" for k, v in kv.items()])
        console.print(f"test_accuracy {out['test_accuracy']:.4f} ({out['best_decoder']}); "
                      f"written to {run_dir}/eval.json")


def _list(args: list[str]) -> None:
    from rich.table import Table

    from snnrun.config import config_dir, model_names
    from snnrun.registry import did_you_mean, first_doc_line

    kinds = registries()
    kinds_all = [*kinds, "models"]
    with user_errors():
        wanted = args or kinds_all
        for k in wanted:
            if k not in kinds_all:
                raise ConfigError(f"unknown kind '{k}'.{did_you_mean(k, kinds_all)} Allowed: "
                                  f"{', '.join(kinds_all)}", key="list")
    for k in wanted:
        table = Table(title=k, title_justify="left", show_header=False, box=None, padding=(0, 2))
        if k == "models":
            for name in model_names():
                first = (config_dir() / "model" / f"{name}.yaml").read_text().splitlines()[0]
                table.add_row(f"[bold]{name}[/]", first.lstrip("# "))
        else:
            reg = kinds[k]
            for name, cls in reg.items():
                aliases = reg.aliases_of(name)
                shown = name + (f" ({', '.join(aliases)})" if aliases else "")
                table.add_row(f"[bold]{shown}[/]", first_doc_line(cls))
        console.print(table)


def _bench(args: list[str]) -> None:
    from snnrun.commands.bench import run_bench

    with user_errors():
        run_bench(args)


def _key_values(args: list[str], cmd: str, required: tuple[str, ...] = ()) -> dict[str, str]:
    bad = [a for a in args if "=" not in a]
    if bad:
        raise ConfigError(f"arguments are key=value, got {bad[0]!r}", key=cmd)
    kv = dict(a.split("=", 1) for a in args)
    for k in required:
        if k not in kv:
            raise ConfigError(f"say which run: snnrun {cmd} {k}=outputs/<date>/<time>_<model>", key=k)
    return kv


def _resume(args: list[str]) -> None:
    from snnrun.engine.loop import resume_run

    with user_errors():
        kv = _key_values(args, "resume", ("run_dir",))
        run_dir = kv.pop("run_dir")
        resume_run(run_dir, [f"{k}={v}" for k, v in kv.items()])


def _report(args: list[str]) -> None:
    from snnrun.run.report import report_run

    with user_errors():
        report_run(_key_values(args, "report", ("run_dir",))["run_dir"])


def _compare(args: list[str]) -> None:
    from snnrun.run.sweep import compare

    with user_errors():
        dirs = [a for a in args if not a.startswith("csv=")]
        if not dirs:
            raise ConfigError("name the runs or sweep directories: snnrun compare DIR... [csv=FILE]",
                              key="compare")
        compare(dirs, csv_path=next((a[4:] for a in args if a.startswith("csv=")), None))


def _shell_completion(args: list[str]) -> None:
    """``snnrun train -sc install=bash`` installs a completer that calls ``snnrun -sc query=bash``
    with the whole line; Hydra must not see the subcommand word as an override."""
    import os

    line = os.environ.get("COMP_LINE")
    if line is not None:
        words = line.split(" ")
        os.environ["COMP_LINE"] = " ".join(w for i, w in enumerate(words) if not (i and w in COMMANDS))
    _hydra_app(_train_task, args)


def _probe(args: list[str]) -> None:
    from snnrun.commands.probe import run_probe

    with user_errors():
        path = run_probe(args)
    console.print(f"written {path}")


def registries() -> dict:
    import snnrun.data  # noqa: F401  (registration side effects)
    from snnrun.components.connections import Connection
    from snnrun.data import DatasetSource
    from snnrun.components.decoders import Decoder
    from snnrun.components.encoders import Encoder
    from snnrun.components.generators import Generator
    from snnrun.components.learning import LearningRule
    from snnrun.components.losses import Loss
    from snnrun.components.neurons import NeuronModel
    from snnrun.components.surrogates import Surrogate

    return {"neurons": NeuronModel.registry, "encoders": Encoder.registry,
            "connections": Connection.registry, "learners": LearningRule.registry,
            "decoders": Decoder.registry, "datasets": DatasetSource.registry,
            "surrogates": Surrogate.registry, "generators": Generator.registry,
            "losses": Loss.registry}


COMMANDS = {"train": lambda a: _hydra_app(_train_task, a), "eval": _eval, "list": _list, "probe": _probe,
            "resume": _resume, "report": _report, "compare": _compare, "bench": lambda a: _bench(a)}


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    cmd_at = next((i for i, a in enumerate(argv) if a in COMMANDS), None)
    if cmd_at is None and ("-sc" in argv or "--shell-completion" in argv):
        return _shell_completion(argv)
    if cmd_at is None:
        if argv and argv[0] in ("-h", "--help"):
            console.print(USAGE, markup=False, highlight=False, soft_wrap=True)
            return
        console.print(USAGE, markup=False, highlight=False, soft_wrap=True)
        unknown = next((a for a in argv if not a.startswith("-")), None)
        if unknown:
            from snnrun.registry import did_you_mean

            console.print(f"[bold red]error:[/] unknown command '{unknown}'.{did_you_mean(unknown, COMMANDS)} "
                          f"Commands: {', '.join(COMMANDS)}")
        sys.exit(2)
    cmd = argv[cmd_at]
    COMMANDS[cmd](argv[:cmd_at] + argv[cmd_at + 1:])


if __name__ == "__main__":
    main()
