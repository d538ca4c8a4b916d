"""The ``snnrun`` command: picks the subcommand, hands the rest of the arguments to Hydra.

    snnrun train +model=diehl_cook [overrides]      (Hydra app: -m sweeps, --cfg job, hydra.run.dir=...)
    snnrun eval run_dir=DIR [overrides]              re-evaluate a finished run (logger=plain device=cpu ...)
    snnrun list [neurons|encoders|connections|learners|decoders|datasets|models] [source=spaic]
    snnrun probe neuron=NAME [input=step input.amplitude=10 time=500 | sweep=fi] [out=FILE]   plot one neuron
    snnrun resume run_dir=DIR [device=...]            continue a stopped run from its checkpoint
    snnrun report run_dir=DIR [device=...]            summary, config diff, figures of a run
    snnrun compare DIR... [csv=FILE]                  results table of runs / sweep directories
    snnrun bench workload=dc_train [workload.n=400 workload.batch=1,256 ...]   speed on this machine
    snnrun export run_dir=DIR format=nir out=FILE [dt=1e-4]   the trained network as a NIR graph
    snnrun predict run_dir=DIR input=PATH [PATH ...]  classify image files or saved tensors
    snnrun reproduce experiment=NAME [seeds=N] [overrides]   a paper recipe over N seeds vs the paper

Every command composes its config with Hydra: overrides are key=value, group=option (data=mnist),
+key=value (a new key), ~key. train, probe and bench are Hydra apps: `snnrun probe --help` lists
their config groups and config; eval, resume and report compose the run's saved config.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Callable

from snnrun.errors import ConfigError
from snnrun.run.console import console
from snnrun.run.user_errors import user_errors

USAGE = __doc__


# Hydra flags that print or install something instead of running a job
INFO_FLAGS = ("--cfg", "-c", "--help", "-h", "--hydra-help", "--info", "-i", "-sc", "--shell-completion")


def _hydra_app(task: Callable, args: list[str], config_name: str = "config",
               precheck: Callable | None = None, stage_hydra: bool = False) -> None:
    """Run ``task`` as a Hydra app. ``stage_hydra``: Hydra writes each job's .hydra files into a
    staging folder; the task puts them in the run dir once it proceeds (snnrun.run.rundir)."""
    import hydra

    from snnrun.config import PACKAGE_DIR, config_dir

    with user_errors():
        check_config_dirs(args)
    _precheck(config_name, args, precheck)
    conf = config_dir()
    config_path = "pkg://snnrun.conf" if conf == PACKAGE_DIR / "conf" else str(conf)
    stage = None
    if os.environ.get("RANK", "0") != "0":  # torchrun's other ranks: rank 0 alone writes the run dir
        args = [*args, "hydra.output_subdir=null", "hydra.run.dir=.", "hydra/job_logging=disabled",
                "hydra/hydra_logging=disabled"]
    elif stage_hydra and not any(a.split("=", 1)[0] in INFO_FLAGS for a in args) and \
            not any(a.split("=", 1)[0].lstrip("+~") == "hydra.output_subdir" for a in args):
        from snnrun.run.rundir import hydra_stage_override, make_stage_root

        stage = make_stage_root()
        args = [*args, hydra_stage_override(stage)]
    sys.argv = ["snnrun", *args]
    try:
        hydra.main(version_base="1.3", config_path=config_path, config_name=config_name)(task)()
    finally:
        if stage is not None:
            import shutil

            shutil.rmtree(stage, ignore_errors=True)
    from snnrun.run.sweep import sweep_exit_code

    if sweep_exit_code():  # a -m sweep ran every point; some failed (named in its table)
        sys.exit(sweep_exit_code())


def config_dir_args(args: list[str]) -> list[str]:
    """The folders given with Hydra's ``--config-dir DIR`` / ``--config-dir=DIR`` / ``-cd DIR``."""
    dirs = []
    for i, a in enumerate(args):
        if a in ("--config-dir", "-cd") and i + 1 < len(args):
            dirs.append(args[i + 1])
        elif a.startswith("--config-dir="):
            dirs.append(a.split("=", 1)[1])
    return dirs


def check_config_dirs(args: list[str]) -> None:
    """A ``--config-dir`` that is missing, or holds a YAML file that does not parse, is a ConfigError
    naming the folder, or the file and line first (Hydra would print a parser traceback)."""
    import yaml

    from pathlib import Path

    for d in config_dir_args(args):
        root = Path(d)
        if not root.is_dir():
            raise ConfigError(f"{d} is not a directory", key="--config-dir")
        for path in sorted(root.rglob("*.yaml")) + sorted(root.rglob("*.yml")):
            try:
                text = path.read_text(encoding="utf-8")
                yaml.load(text, Loader=yaml.SafeLoader)
            except yaml.MarkedYAMLError as e:
                mark, ctx = e.problem_mark or e.context_mark, e.context_mark
                where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
                context = e.context + (f" (from line {ctx.line + 1}, column {ctx.column + 1})"
                                       if ctx is not None and ctx is not mark else "") if e.context else ""
                what = "; ".join(x for x in (context, e.problem) if x)
                raise ConfigError(f"not valid YAML (--config-dir {d}): {what}", key=where) from None
            except yaml.YAMLError as e:
                raise ConfigError(f"not valid YAML (--config-dir {d}): {e}", key=str(path)) from None
            except (OSError, UnicodeDecodeError) as e:
                raise ConfigError(f"cannot read {path}: {e}", key="--config-dir") from None


def _precheck(config_name: str, args: list[str], check: Callable | None = None) -> None:
    """Compose once before Hydra runs the app, so that a bad override is one clear error (key,
    message, did-you-mean) with exit code 2 and nothing is created. Hydra's own flags (--help,
    --cfg, -m ...) and sweeps go straight to Hydra."""
    if any(a.startswith("-") for a in args):
        return
    from snnrun.run.compose import compose

    with user_errors():
        check(args) if check is not None else compose(config_name, args)


def _train_task(cfg):
    from hydra.core.hydra_config import HydraConfig

    from snnrun.engine.experiment import check_added_model_keys
    from snnrun.engine.loop import train
    from snnrun.run.rundir import RunDirGuard

    from hydra.types import RunMode

    from snnrun.run.sweep import sweep_job_errors

    hc = HydraConfig.get()
    summary = None
    # one point of a -m sweep: an error is recorded and the other points go on (snnrun.run.sweep)
    errors = sweep_job_errors(hc.sweep.dir, hc.job.num, list(hc.overrides.task)) \
        if hc.mode == RunMode.MULTIRUN else contextlib.nullcontext()
    with user_errors(), errors:
        # the run dir's lock; .hydra files and a new run dir are kept only once the run proceeds
        with RunDirGuard(hc.runtime.output_dir, hc) as guard:
            check_added_model_keys(cfg, list(hc.overrides.task))
            summary = train(cfg, output_dir=hc.runtime.output_dir, on_start=guard.start)
    # the objective for Hydra sweepers (Optuna); NaN marks a failed point (Optuna: a failed trial)
    return float("nan") if summary is None else summary["test_accuracy"]


RUN_DIR_USAGE = {
    "eval": "re-evaluate a finished run on its test split from its checkpoint; writes eval.json in the run",
    "resume": "continue a stopped run from its last checkpoint, in its own directory",
    "report": "print a run's summary and its config vs. its model's defaults; redraw its figures",
}


def _run_dir_usage(cmd: str) -> str:
    resume_note = ("\n  Only keys that change nothing learned may differ from the saved config: device, logger,\n"
                   "  trainer.checkpoint_every, trainer.eval_batch_size, trainer.strategy, trainer.backend.\n"
                   if cmd == "resume" else "")
    return (f"usage: snnrun {cmd} run_dir=DIR [overrides ...]\n\n"
            f"  {RUN_DIR_USAGE[cmd]}.\n\n"
            "  run_dir    a run directory written by `snnrun train` (outputs/<date>/<time>_<model>, or one job\n"
            "             of a sweep): its .hydra/config.yaml is the config the run was started with.\n"
            "  overrides  Hydra overrides applied to that saved config, as `snnrun train` applies them:\n"
            "             key=value sets a value (device=cpu, data.limit_test=100); group=option picks a preset\n"
            "             from snnrun's conf tree (logger=plain, data=mnist); +key=value adds a key.\n"
            "             A bad override is an error naming the key; nothing in the run is changed then.\n"
            f"{resume_note}\n"
            f"  e.g. snnrun {cmd} run_dir=outputs/2024-05-01/12-00-00_diehl_cook logger=plain device=cpu")


def _run_dir_args(cmd: str, args: list[str]) -> tuple[str, list[str]] | None:
    """``run_dir=DIR`` (or DIR as the first bare word) and the Hydra overrides; None after --help."""
    if any(a in ("-h", "--help") for a in args):
        console.print(_run_dir_usage(cmd), markup=False, highlight=False, soft_wrap=True)
        return None
    run_dir, overrides = None, []
    for a in args:
        if a.startswith("run_dir=") and run_dir is None:
            run_dir = a.split("=", 1)[1]
        elif run_dir is None and "=" not in a and not a.startswith(("+", "~", "-")):
            run_dir = a
        else:
            overrides.append(a)
    if not run_dir:
        raise ConfigError(f"say which run: snnrun {cmd} run_dir=outputs/<date>/<time>_<model> "
                          f"(snnrun {cmd} --help)", key="run_dir")
    return run_dir, overrides


def _eval(args: list[str]) -> None:
    from snnrun.engine.evaluation import evaluate_run
    from snnrun.run.rundir import lock_run_dir

    with user_errors():
        parsed = _run_dir_args("eval", args)
        if parsed is None:
            return
        run_dir, overrides = parsed
        with lock_run_dir(run_dir):
            out = evaluate_run(run_dir, overrides)
        console.print(f"test_accuracy {out['test_accuracy']:.4f} ({out['best_decoder']}); "
                      f"written to {run_dir}/eval.json")


# registries whose configs have presets in the conf tree: (group folder, how an override picks one)
PRESET_GROUPS = {
    "neurons": ("neuron", "neuron@model.network.groups.<G>=NAME, e.g. neuron@model.network.groups.Ai=NAME; "
                          "snnrun probe neuron=NAME"),
    "encoders": ("encoder", "encoder@model.encoder=NAME"),
    "connections": ("connection", "connection@model.network.connections.<C>=NAME"),
    "learners": ("learner", "learner@model.learner=NAME"),
    "losses": ("loss", "loss@model.loss=NAME"),
    "datasets": ("data", "data=NAME"),
    "generators": ("input", "snnrun probe input=NAME"),
}


def first_sentence(text: str) -> str:
    """The first sentence of a paragraph (lines joined): a summary that never stops mid-sentence."""
    import re

    text = " ".join(text.split())
    m = re.search(r"(?<=[.!?])\s+(?=[A-Z`(])", text)
    return text[:m.start()] if m else text


def doc_summary(obj) -> str:
    import inspect

    doc = inspect.getdoc(obj) or ""
    return first_sentence(doc.strip().split("\n\n")[0]) if doc.strip() else ""


def preset_description(path) -> tuple[str, str | None]:
    """(the leading comment block of a preset file, first sentence; the ``type:`` it sets)."""
    import yaml

    lines, text = [], path.read_text()
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        if not line.lstrip("# ").startswith("@package"):
            lines.append(line.lstrip("#").strip())
    try:
        node = yaml.safe_load(text)
    except yaml.YAMLError:
        node = None
    kind = node.get("type") if isinstance(node, dict) else None
    return first_sentence(" ".join(lines)), None if kind is None else str(kind)


class _Listing:
    """Two columns (name, description) as plain text wrapped to the console's width (80 when
    piped): long descriptions wrap at words, a long name puts its description on the next line."""

    def __init__(self, title: str):
        self.title, self.rows = title, []

    def add_row(self, name: str, desc: str = "") -> None:
        self.rows.append((name, desc))

    def render(self, width: int) -> str:
        import textwrap

        from snnrun.run.console import key_value_lines

        width = max(width, 40)
        out = textwrap.wrap(self.title, width, subsequent_indent="    ", break_on_hyphens=False) or [""]
        col = min(max((len(n) for n, _ in self.rows), default=0), 24)
        indent = " " * (2 + col + 2)
        for name, desc in self.rows:
            if not desc:
                out.append(f"  {name}")
                continue
            wrapped = textwrap.wrap(desc, width - len(indent), break_on_hyphens=False, break_long_words=True)
            out += key_value_lines(name, wrapped, col)
        return "\n".join(out)

    def print(self) -> None:
        console.print(self.render(console.width), markup=False, highlight=False, soft_wrap=True)


def _wrapped(text: str, indent: str = "  ") -> None:
    import textwrap

    console.print("\n".join(textwrap.wrap(text, max(console.width, 40), initial_indent=indent,
                                         subsequent_indent=indent + "  ", break_on_hyphens=False)),
                  markup=False, highlight=False, soft_wrap=True)


def _list_source(args: list[str]) -> tuple[list[str], str | None]:
    """Split ``source=NAME`` (the filter of ``snnrun list``) from the kinds."""
    kinds, source = [], None
    for a in args:
        if a.startswith("source="):
            source = a.partition("=")[2]
            if not source:
                raise ConfigError("say which source: source=NAME (e.g. source=spaic)", key="source")
        else:
            kinds.append(a)
    return kinds, source


def _source_tag(reg, name: str) -> str:
    return f"[{reg.source_of(name)}]"


def _list(args: list[str]) -> None:
    from snnrun.config import config_dir, model_names
    from snnrun.registry import did_you_mean

    kinds = registries()
    kinds_all = [*kinds, "models"]
    with user_errors():
        wanted, source = _list_source(args)
        wanted = wanted or (kinds_all if source is None else list(kinds))
        for k in wanted:
            if k not in kinds_all:
                raise ConfigError(f"unknown kind '{k}'.{did_you_mean(k, kinds_all)} Allowed: "
                                  f"{', '.join(kinds_all)} (and source=NAME to filter by source)", key="list")
        if source is not None and "models" in wanted:
            raise ConfigError("models have no source; filter a kind of component, e.g. "
                              "snnrun list neurons source=spaic", key="source")
        known = sorted({s for k in wanted if k in kinds for s in kinds[k].sources()})
        if source is not None and source not in known:
            raise ConfigError(f"unknown source '{source}' for {', '.join(wanted)}.{did_you_mean(source, known)} "
                              f"Allowed: {', '.join(known)}", key="source")
    for i, k in enumerate(wanted):
        if i:
            console.print()
        if k == "models":
            table = _Listing("models (+model=NAME)")
            for name in model_names():
                table.add_row(name, preset_description(config_dir() / "model" / f"{name}.yaml")[0])
            table.print()
            continue
        reg = kinds[k]
        suffix = "" if source is None else f" from source {source}"
        if k not in PRESET_GROUPS:
            table = _Listing(f"{k}{suffix} ([source] = the library whose equations it follows)")
            for name, cls in reg.items(source):
                aliases = reg.aliases_of(name)
                table.add_row(name + (f" ({', '.join(aliases)})" if aliases else ""),
                              f"{_source_tag(reg, name)} {doc_summary(cls)}")
            table.print()
            continue
        group, how = PRESET_GROUPS[k]
        presets = {p.stem: preset_description(p) for p in sorted((config_dir() / group).glob("*.yaml"))}
        if source is not None:
            presets = {n: (d, t) for n, (d, t) in presets.items() if t in reg and reg.source_of(t) == source}
        table = _Listing(f"{k}{suffix}: presets in conf/{group}/, picked by {how}; [source] = the library "
                         "whose equations it follows")
        for name, (desc, kind) in presets.items():
            cls = reg.get(kind, key=k) if kind in reg else None
            desc = desc or (doc_summary(cls) if cls is not None else "")
            typed = f"(type {kind})" if kind is not None and kind != name else ""
            tag = _source_tag(reg, kind) if kind in reg else ""
            table.add_row(name, " ".join(x for x in (tag, typed, desc) if x) or f"type {kind}")
        table.print()
        with_preset, table = [], _Listing(f"{k}{suffix}: registered types without a preset of that name "
                                          f"(not for {group}=NAME; set type: NAME in a node)")
        for name, cls in reg.items(source):
            aliases = reg.aliases_of(name)
            shown = name + (f" ({', '.join(aliases)})" if aliases else "")
            if {name, *aliases} & set(presets):
                with_preset.append(shown)
            else:
                table.add_row(shown, f"[no preset] {_source_tag(reg, name)} {doc_summary(cls)}")
        if with_preset:
            _wrapped(f"{k}: registered types with a preset of that name: {', '.join(with_preset)}", indent="")
        if table.rows:
            table.print()


def _bench(args: list[str]) -> None:
    """Comma lists (workload.n=100,400) sweep inside one bench run (one table); Hydra's flags
    (--help, --cfg job, -m for one process per configuration) go to the Hydra app on conf/bench.yaml."""
    from snnrun.commands.bench import run_bench

    if any(a.startswith("-") for a in args):
        _hydra_app(_bench_task, args, "bench")
        return
    with user_errors():
        run_bench(args)


def _bench_task(cfg) -> None:
    from snnrun.commands.bench import run_bench

    with user_errors():
        run_bench(cfg)


def _resume(args: list[str]) -> None:
    from snnrun.engine.loop import resume_run
    from snnrun.run.rundir import lock_run_dir

    with user_errors():
        parsed = _run_dir_args("resume", args)
        if parsed is not None:
            with lock_run_dir(parsed[0]):
                resume_run(*parsed)


def _report(args: list[str]) -> None:
    from snnrun.run.report import report_run
    from snnrun.run.rundir import lock_run_dir

    with user_errors():
        parsed = _run_dir_args("report", args)
        if parsed is not None:
            with lock_run_dir(parsed[0]):
                report_run(*parsed)


def _compare(args: list[str]) -> None:
    from snnrun.run.sweep import compare

    with user_errors():
        dirs = [a for a in args if not a.startswith("csv=")]
        if not dirs:
            raise ConfigError("name the runs or sweep directories: snnrun compare DIR... [csv=FILE]",
                              key="compare")
        compare(dirs, csv_path=next((a[4:] for a in args if a.startswith("csv=")), None))


def _reproduce(args: list[str]) -> None:
    from snnrun.run.reproduce import reproduce

    with user_errors():
        reproduce(args, lambda hydra_args: _hydra_app(_train_task, hydra_args, stage_hydra=True))


def _shell_completion(args: list[str]) -> None:
    """``snnrun train -sc install=bash`` installs a completer that calls ``snnrun -sc query=bash``
    with the whole line; snnrun.completion answers what needs no config (the subcommand ...), and
    Hydra the overrides, on the command's own config without the subcommand word."""
    from snnrun import completion

    line = os.environ.get("COMP_LINE")
    if line is None or not any(a.startswith("query=") for a in args):  # install=bash etc.
        return _hydra_app(_train_task, args)
    point = os.environ.get("COMP_POINT", "")
    words = completion.words_at_cursor(line, int(point) if point.isdigit() else None)
    found = completion.complete(words, COMMANDS)
    if found is not None:
        print("\n".join(found))
        return
    cmd = completion.command_of(words, COMMANDS)
    # Hydra completes the last word of the line it is given: the line up to the cursor
    os.environ["COMP_LINE"] = " ".join(w for i, w in enumerate(words) if not (i and w == cmd))
    task = {"probe": _probe_task, "bench": _bench_task}.get(cmd, _train_task)
    _hydra_app(task, args, completion.HYDRA_CONFIGS[cmd])


def _probe(args: list[str]) -> None:
    from snnrun.commands.probe import parse_args

    _hydra_app(_probe_task, args, "probe", precheck=parse_args)


def _probe_task(cfg) -> None:
    from hydra.core.hydra_config import HydraConfig

    from snnrun.commands.probe import run_probe

    with user_errors():
        hc = HydraConfig.get()
        path = run_probe(cfg, out_dir=hc.runtime.output_dir, name=hc.runtime.choices.get("neuron"))
    console.print(f"written {path}", soft_wrap=True)


def registries() -> dict:
    from snnrun.components.connections import Connection
    from snnrun.data import DatasetSource  # the package registers every dataset
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


def _contained(module: str, function: str) -> Callable[[list[str]], None]:
    """A subcommand implemented in snnrun/commands/<module>.py, run with the CLI's error handling."""
    def run(args: list[str]) -> None:
        import importlib

        with user_errors():
            getattr(importlib.import_module(f"snnrun.commands.{module}"), function)(args)
    return run


COMMANDS = {"train": lambda a: _hydra_app(_train_task, a, stage_hydra=True), "eval": _eval, "list": _list, "probe": _probe,
            "resume": _resume, "report": _report, "compare": _compare, "bench": _bench,
            "export": _contained("export", "run_export"), "predict": _contained("predict", "run_predict"),
            "reproduce": _reproduce}


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
    from snnrun.run import rundir

    rundir.COMMAND[:] = argv  # what a run dir's lock says its owner runs
    try:
        COMMANDS[cmd](argv[:cmd_at] + argv[cmd_at + 1:])
    except KeyboardInterrupt:
        # Ctrl-C before training installed its own handler (which checkpoints and says how to
        # resume): nothing was learned yet, so one line, not a traceback
        console.print(f"[bold yellow]interrupted[/] (Ctrl-C) during 'snnrun {cmd}'", soft_wrap=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
