"""Results tables across runs: the end of every ``-m`` sweep, and ``snnrun compare DIR...``.

A run is a directory with ``.hydra/overrides.yaml`` (what the user typed) and, once finished,
``summary.json``. The table's rows are the distinct values of the overrides that vary between
runs; when ``seed`` varies, runs that differ only in seed are one row, with the mean and the
standard deviation (ddof=1) of each metric over seeds. The same rows go to ``sweep_summary.csv``.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf
from rich.markup import escape
from rich.table import Table

from snnrun.errors import ConfigError
from snnrun.run.console import console, fmt, print_table

METRICS = ("test_accuracy", "train_images_per_s", "wall_s")
SEED = "seed"
IGNORED = ("resume", "hydra.")  # never a result-changing choice
CSV_NAME = "sweep_summary.csv"


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
    for o in saved:
        key, _, value = str(o).partition("=")
        key = key.lstrip("+~")
        if not key.startswith(IGNORED) and key not in IGNORED:
            overrides[key] = value
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
    for r in rows:
        cells = [fmt(_short(r.get(k, "-"))) for k in key_columns] + [r["finished"]]
        for m in METRICS:
            cell = fmt(r.get(m))
            if with_std and r.get(f"{m}_std") is not None:
                cell += f" ± {fmt(r[f'{m}_std'])}"
            cells.append(cell)
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
        console.print(f"[yellow]warning:[/] skipped {escape(str(p))}: {escape(why)}", soft_wrap=True)
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

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            compare([sweep_dir], csv_path=sweep_dir / CSV_NAME, title=f"sweep {sweep_dir}")
        except ConfigError as e:  # e.g. every job failed before writing anything
            console.print(f"[yellow]no sweep summary:[/] {e.message}")
