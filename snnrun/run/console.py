"""Run output: rich console (progress bar, tables) and machine-readable metrics files."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from snnrun.errors import OutputError
from snnrun.run.files import describe, write_text_atomic
from snnrun.run.ranks import rank_zero_only

console = Console(stderr=False, highlight=False)


def key_value_lines(key: str, lines: list[str], key_w: int) -> list[str]:
    """``key`` in a column ``key_w`` wide, then its wrapped ``lines`` beside it (under it, indented
    to the value column, when the key is wider): one entry of a narrow table or of a listing."""
    indent = " " * (2 + key_w + 2)
    if len(key) > key_w:
        return [f"  {key}"] + [indent + w for w in lines]
    return [f"  {key.ljust(key_w)}  {lines[0]}"] + [indent + w for w in lines[1:]]


@rank_zero_only  # data-parallel runs: one writer
def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON via a temp file + rename, so a crash never leaves a half-written file."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


class MetricsLog:
    """The one metrics stream of a run: every record gets a ``step`` number and goes to
    ``metrics.jsonl`` (flushed at once) and to every extra sink (``snnrun.run.metrics``: csv,
    tensorboard).

    ``position()`` is what a checkpoint stores; ``MetricsLog(dir, resume_from=position)``
    cuts ``metrics.jsonl`` back to that point (dropping records written after the checkpoint,
    which the resumed run writes again) so every step appears exactly once.
    """

    def __init__(self, output_dir: Path, sinks: list | None = None, resume_from: dict | None = None):
        self.path = Path(output_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.sinks = list(sinks or [])
        self.step = 0
        if resume_from is not None:
            with open(self.path, "a+b") as f:
                f.truncate(int(resume_from["offset"]))
            self.step = int(resume_from["step"])
        elif self.path.exists() and self.path.stat().st_size:
            # a fresh run in a used directory continues the numbering instead of repeating it
            self.step = len(self.records())
        for sink in self.sinks:
            sink.start(self.records(), self.step)
        self._f = open(self.path, "a", buffering=1)

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def log(self, **record: Any) -> None:
        record = {"step": self.step, **record}
        record.setdefault("time", round(time.time(), 3))
        try:
            self._f.write(json.dumps(record) + "\n")
        except OSError as e:
            raise OutputError(self.path, describe(e)) from None
        for sink in self.sinks:
            sink.log(record)
        self.step += 1

    def position(self) -> dict[str, int]:
        try:
            self._f.flush()
        except OSError as e:
            raise OutputError(self.path, describe(e)) from None
        return {"step": self.step, "offset": self.path.stat().st_size}

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()
        for sink in self.sinks:
            sink.close()


class NullMetrics:
    """The metrics stream of ranks other than 0 in a data-parallel run: logs nothing."""

    def log(self, **record: Any) -> None:
        pass

    def records(self) -> list[dict[str, Any]]:
        return []

    def position(self) -> dict[str, int]:
        return {"step": 0, "offset": 0}

    def close(self) -> None:
        pass


def flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a/b": 1}``: one column / one scalar tag per leaf."""
    out: dict[str, Any] = {}
    for k, v in record.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = v
    return out


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


def print_table(table: Table) -> None:
    """Print ``table`` as a grid when it fits the console's width (80 columns when piped), else
    as one block of ``header  value`` lines per row: rich would fold cells mid-word to fit."""
    if console.measure(table, options=console.options.update_width(10**6)).maximum <= console.width:
        console.print(table)
    else:
        console.print(vertical_text(table, console.width), markup=False, highlight=False, soft_wrap=True)


def vertical_text(table: Table, width: int) -> str:
    """The rows of ``table`` as blocks of aligned ``header  value`` lines, values wrapped at words.

    A column without a header (a row name) heads its block; a table without headers is read as
    key, value."""
    import textwrap

    def plain(cell: Any) -> str:
        return console.render_str(cell).plain if isinstance(cell, str) else str(cell)

    columns = [(plain(c.header) if table.show_header else "", [plain(x) for x in c.cells]) for c in table.columns]
    n = max((len(cells) for _, cells in columns), default=0)
    cell = [[cells[i] if i < len(cells) else "" for _, cells in columns] for i in range(n)]
    if not table.show_header and len(columns) > 1:  # key, value(s): one line per row
        rows = [[(r[0], " ".join(r[1:]))] for r in cell]
    else:
        rows = [[(h, r[j]) for j, (h, _) in enumerate(columns)] for r in cell]
    key_w = min(max((len(h) for row in rows for h, _ in row), default=0), 24)
    out = [plain(table.title)] if table.title else []
    for row in rows:
        if len(row) > 1:  # a blank line between blocks
            out.append("")
        for header, value in row:
            if not header:
                out += textwrap.wrap(value, width, break_long_words=False, break_on_hyphens=False) or [""]
                continue
            lines = textwrap.wrap(value, max(width - (key_w + 4), 20), break_long_words=False,
                                  break_on_hyphens=False) or ["-"]
            out += key_value_lines(header, lines, key_w)
    if table.caption:
        out += ["", plain(table.caption)]
    return "\n".join(out)


def results_table(title: str, rows: dict[str, dict[str, Any]], columns: list[str]) -> Table:
    table = Table(title=title)
    table.add_column("")
    for c in columns:
        table.add_column(c, justify="right")
    for name, row in rows.items():
        table.add_row(name, *[fmt(row.get(c)) for c in columns])
    return table


def fmt(v: Any) -> str:
    """A table cell: floats rounded; other values literal (a config value like [1, 28, 28] is
    not rich markup)."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 10 else f"{v:,.1f}"
    return escape(str(v))
