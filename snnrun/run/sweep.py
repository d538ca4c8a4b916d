"""Results tables across runs: the end of every ``-m`` sweep, and ``snnrun compare DIR...``.

A run is a directory with ``.hydra/overrides.yaml`` (what the user typed) and, once finished,
``summary.json``. The table's rows are the distinct values of the overrides that vary between
runs; when ``seed`` varies, runs that differ only in seed are one row, with the mean and the
standard deviation (ddof=1) of each metric over seeds. The same rows go to ``sweep_summary.csv``.

A sweep point that fails (a bad value: ``model.n_neurons=10,0``) does not stop the sweep: the job
prints its error, leaves no run dir, and records it in ``<sweep dir>/failed_jobs/<job>.json``; the
other points run, the table has a ``failed`` column naming the point's error, and ``snnrun -m``
exits non-zero at the end (``sweep_exit_code``). A rerun of the point that succeeds removes its record.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import re
import traceback
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf
from rich.markup import escape
from rich.table import Table

from snnrun.errors import ConfigError
from snnrun.run.console import console, fmt, print_table, write_json_atomic
from snnrun.run.user_errors import explain

METRICS = ("test_accuracy", "train_images_per_s", "wall_s")
SEED = "seed"
IGNORED = ("resume", "hydra.")  # never a result-changing choice
CSV_NAME = "sweep_summary.csv"
FAILED_DIR = "failed_jobs"
_FAILED_EXIT: list[int] = []  # exit codes of the failed points of this process's sweeps


# -- failed sweep points ---------------------------------------------------------------------------
def _failure_path(sweep_dir: str | Path, job: int | str) -> Path:
    return Path(sweep_dir) / FAILED_DIR / f"{job}.json"


@contextlib.contextmanager
def sweep_job_errors(sweep_dir: str | Path, job: int, overrides: list[str]):
    """Around one job of a multirun: an error is printed (a user error without traceback), recorded
    in ``failed_jobs/<job>.json`` and swallowed so the other points still run; a stop by a signal
    ends the sweep. A job that finishes removes an old record of its own."""
    try:
        yield
    except Exception as e:
        told = explain(e)
        if told is not None and told[1] >= 128:  # TrainingInterrupted: the whole sweep stops
            raise
        if told is None:  # not a user error: the traceback is the report
            traceback.print_exc()
            text, code = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", 1
        else:
            console.print(told[0], soft_wrap=True)
            text, code = str(e), told[1]
        console.print(f"[yellow]sweep point #{job} failed[/] ({escape(' '.join(overrides))}); "
                      "the other points go on", soft_wrap=True)
        path = _failure_path(sweep_dir, job)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, {"job": job, "overrides": list(overrides), "error": text, "exit_code": code})
    else:
        _failure_path(sweep_dir, job).unlink(missing_ok=True)


def read_failures(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """The failed points recorded in a sweep dir (unreadable records are skipped)."""
    out = []
    for p in sorted((Path(sweep_dir) / FAILED_DIR).glob("*.json"), key=lambda q: _natural(q.name)):
        try:
            rec = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and isinstance(rec.get("overrides"), list):
            out.append(rec)
    return out


def sweep_exit_code() -> int:
    """Non-zero when a point of a sweep this process ran failed (the largest of their codes)."""
    return max(_FAILED_EXIT, default=0)


def find_runs(paths: list[str | Path], skipped: list[tuple[Path, str]] | None = None) -> list[Path]:
    """Run directories in ``paths``: each path is a run, or a sweep dir whose children are runs.

    A path that is neither (missing, empty, no run inside) is appended to ``skipped`` with the
    reason; without ``skipped`` it is an error."""
    runs = []
    for p in map(Path, paths):
        if (p / ".hydra" / "overrides.yaml").is_file():
            runs.append(p)
            continue
        if p.is_dir():
            found = sorted((d for d in p.iterdir() if (d / ".hydra" / "overrides.yaml").is_file()),
                           key=lambda d: _natural(d.name))
            why = None if found else "holds no snnrun runs (no .hydra/overrides.yaml, nor */.hydra/overrides.yaml)"
        else:
            found, why = [], "is not a directory"
        if why is not None:
            if skipped is None:
                raise ConfigError(f"{p} {why}", key="compare")
            skipped.append((p, why))
        runs += found
    return runs


def _natural(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _overrides_of(saved) -> dict[str, str]:
    overrides = {}
    for o in saved:
        key, _, value = str(o).partition("=")
        key = key.lstrip("+~")
        if not key.startswith(IGNORED) and key not in IGNORED:
            overrides[key] = value
    return overrides


def failed_runs(paths: list[str | Path]) -> list[dict[str, Any]]:
    """The recorded failed points of the sweep dirs among ``paths``, as rows for :func:`summarize`."""
    out = []
    for p in map(Path, paths):
        for rec in read_failures(p):
            out.append({"dir": p / str(rec.get("job", "?")), "overrides": _overrides_of(rec["overrides"]),
                        "summary": None, "error": f"#{rec.get('job', '?')}: {rec.get('error', '?')}",
                        "exit_code": int(rec.get("exit_code") or 1)})
    return out


def read_run(run: Path) -> dict[str, Any]:
    """``{"dir", "overrides": {key: value}, "summary": dict | None}``; unfinished runs have no summary."""
    overrides = {}
    path = run / ".hydra" / "overrides.yaml"
    try:
        saved = OmegaConf.load(path)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same problem to the user
        raise ConfigError(f"cannot read {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
                          key="compare") from e
    if not isinstance(saved, ListConfig):
        raise ConfigError(f"{path} does not hold a list of overrides", key="compare")
    overrides = _overrides_of(saved)
    summary_path = run / "summary.json"
    summary = None
    if summary_path.is_file():
        try:
            summary = json.loads(summary_path.read_text())
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot read {summary_path}: {e}", key="compare") from e
        if not isinstance(summary, dict):
            raise ConfigError(f"{summary_path} does not hold a summary mapping", key="compare")
    return {"dir": run, "overrides": overrides, "summary": summary}


def summarize(runs: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Group runs by the varying overrides other than seed; -> (key columns, rows)."""
    keys: list[str] = []
    for r in runs:
        keys += [k for k in r["overrides"] if k not in keys]
    varying = [k for k in keys if len({r["overrides"].get(k) for r in runs}) > 1]
    by_seed = SEED in varying
    group_keys = [k for k in varying if k != SEED]
    if not group_keys and not by_seed:  # nothing varies (compare of repeated runs): one row per run
        group_keys = ["run"]
        for r in runs:
            r["overrides"]["run"] = r["dir"].name
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault(tuple(r["overrides"].get(k, "-") for k in group_keys), []).append(r)
    rows = []
    for values, members in groups.items():
        done = [m["summary"] for m in members if m["summary"] is not None]
        row: dict[str, Any] = dict(zip(group_keys, values))
        if by_seed:
            row["seeds"] = ",".join(m["overrides"].get(SEED, "-") for m in members)
        row["finished"] = f"{len(done)}/{len(members)}"
        for metric in METRICS:
            vals = [float(s[metric]) for s in done if s.get(metric) is not None]
            row[metric] = sum(vals) / len(vals) if vals else None
            if by_seed:
                row[f"{metric}_std"] = _std(vals)
        row["runs"] = " ".join(m["dir"].name for m in members)
        errors = [m["error"] for m in members if m.get("error")]
        if errors:
            row["failed"] = "; ".join(errors)
        rows.append(row)
    return group_keys + (["seeds"] if by_seed else []), rows


def _std(vals: list[float]) -> float | None:
    if len(vals) < 2:
        return None
    mean = sum(vals) / len(vals)
    return math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))


def table(title: str, key_columns: list[str], rows: list[dict[str, Any]]) -> Table:
    with_std = any(f"{m}_std" in r for r in rows for m in METRICS)
    t = Table(title=title, title_justify="left", caption_justify="left",
              caption="mean ± std (ddof=1) over seeds" if with_std else None)
    for k in key_columns:
        t.add_column(k, overflow="fold")
    t.add_column("finished", justify="right", no_wrap=True)
    for m in METRICS:
        t.add_column(m, justify="right", no_wrap=True)
    failed = any(r.get("failed") for r in rows)
    if failed:
        t.add_column("failed", overflow="fold", style="red")
    for r in rows:
        cells = [fmt(_short(r.get(k, "-"))) for k in key_columns] + [r["finished"]]
        for m in METRICS:
            cell = fmt(r.get(m))
            if with_std and r.get(f"{m}_std") is not None:
                cell += f" ± {fmt(r[f'{m}_std'])}"
            cells.append(cell)
        if failed:
            cells.append(r.get("failed", ""))
        t.add_row(*cells)
    return t


def _short(value: Any) -> str:
    """Swept floats as 4 significant digits in the table (the CSV keeps them whole)."""
    try:
        return f"{float(value):.4g}" if "." in str(value) else str(value)
    except ValueError:
        return str(value)


def write_csv(path: Path, key_columns: list[str], rows: list[dict[str, Any]]) -> None:
    columns = key_columns + ["finished"]
    for m in METRICS:
        columns += [m] + ([f"{m}_std"] if any(f"{m}_std" in r for r in rows) else [])
    columns.append("runs")
    if any(r.get("failed") for r in rows):
        columns.append("failed")
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({c: ("" if r.get(c) is None else r.get(c)) for c in columns})


def compare(paths: list[str | Path], csv_path: str | Path | None = None, title: str = "runs"
            ) -> tuple[list[str], list[dict[str, Any]]]:
    """Print the results table of the runs in ``paths`` (and write it as CSV if asked). Paths and
    runs that cannot be read are named in a warning and left out; none readable is an error."""
    skipped: list[tuple[Path, str]] = []
    runs = []
    for r in find_runs(paths, skipped):
        try:
            runs.append(read_run(r))
        except ConfigError as e:
            skipped.append((r, e.message))
    for p, why in skipped:
        if not (why.startswith("holds no snnrun runs") and read_failures(p)):
            console.print(f"[yellow]warning:[/] skipped {escape(str(p))}: {escape(why)}", soft_wrap=True)
    runs += failed_runs(paths)
    if not runs:
        raise ConfigError("no readable snnrun runs in " + ", ".join(map(str, paths)), key="compare")
    key_columns, rows = summarize(runs)
    print_table(table(title, key_columns, rows))
    if csv_path is not None:
        write_csv(Path(csv_path), key_columns, rows)
        console.print(f"written to {csv_path}")
    return key_columns, rows


class SweepLogsCallback(Callback):
    """Hydra callback (conf/config.yaml: hydra.callbacks.sweep_logs): a sweep's log reads as plain
    lines. Optuna imports alembic, whose plugin set-up logs "setup plugin ..." at INFO, and logs
    through its own handler with colour codes even into a file; its records go through Hydra's
    logging instead."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        import logging

        logging.getLogger("alembic").setLevel(logging.WARNING)
        if "optuna" in str(OmegaConf.select(config, "hydra.sweeper._target_", default="")):
            import optuna

            optuna.logging.disable_default_handler()
            optuna.logging.enable_propagation()


class SweepSummaryCallback(Callback):
    """Hydra callback (conf/config.yaml: hydra.callbacks.sweep_summary): after a multirun, the
    results table of its jobs, also written as ``sweep_summary.csv`` in the sweep directory."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _FAILED_EXIT.clear()  # the exit code says how this sweep went

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            compare([sweep_dir], csv_path=sweep_dir / CSV_NAME, title=f"sweep {sweep_dir}")
        except ConfigError as e:  # e.g. every job failed before writing anything
            console.print(f"[yellow]no sweep summary:[/] {e.message}")
        failures = read_failures(sweep_dir)
        _FAILED_EXIT.extend(int(f.get("exit_code") or 1) for f in failures)
        if failures:
            console.print(f"[bold red]{len(failures)} of the sweep's points failed[/] (table column `failed`):",
                          soft_wrap=True)
            for f in failures:
                console.print(f"  #{f.get('job')}: {escape(str(f.get('error')))}", soft_wrap=True)
