"""Run output: rich console (progress bar, tables) and machine-readable metrics files."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console(stderr=False, highlight=False)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON via a temp file + rename, so a crash never leaves a half-written file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


class MetricsLog:
    """Appends one JSON object per logged step to ``metrics.jsonl`` (flushed at once)."""

    def __init__(self, output_dir: Path):
        self.path = Path(output_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a", buffering=1)

    def log(self, **record: Any) -> None:
        record.setdefault("time", round(time.time(), 3))
        self._f.write(json.dumps(record) + "\n")

    def close(self) -> None:
        self._f.close()


class PhaseProgress:
    """A rich progress bar for one phase, showing images/s and a running metric."""

    def __init__(self, description: str, total: int, enabled: bool = True):
        self.enabled = enabled
        self.total = total
        self.start = time.perf_counter()
        self.done = 0
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>8.1f} img/s"), TextColumn("{task.fields[extra]}"),
            TimeElapsedColumn(), console=console, transient=False, disable=not enabled,
        )
        self.task = self.progress.add_task(description, total=total, rate=0.0, extra="")

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)

    def advance(self, n: int, extra: str | None = None) -> None:
        self.done += n
        fields = {"rate": self.images_per_s}
        if extra is not None:
            fields["extra"] = extra
        self.progress.update(self.task, advance=n, **fields)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    @property
    def images_per_s(self) -> float:
        return self.done / max(self.elapsed, 1e-9)


def results_table(title: str, rows: dict[str, dict[str, Any]], columns: list[str]) -> Table:
    table = Table(title=title)
    table.add_column("")
    for c in columns:
        table.add_column(c, justify="right")
    for name, row in rows.items():
        table.add_row(name, *[fmt(row.get(c)) for c in columns])
    return table


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 10 else f"{v:,.1f}"
    return str(v)
