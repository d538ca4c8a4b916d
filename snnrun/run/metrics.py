"""Extra metric sinks fed by the run's one metrics stream (``MetricsLog``): csv, tensorboard.

Chosen with the ``logger`` config group; several at once merge into one node, e.g.
``logger=[rich,csv,tensorboard]`` gives ``{progress: true, csv: {...}, tensorboard: {...}}``.
Each sink gets ``start(records, step)`` once (the records already in metrics.jsonl, so a
resumed run rebuilds/purges what came after its checkpoint), then ``log(record)`` per step.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from snnrun.errors import ConfigError, OutputError
from snnrun.run.console import flatten
from snnrun.run.files import atomic_write, describe


class CsvSink:
    """``metrics.csv``: one row per step, one column per (flattened) metric.

    Rows of different phases have different keys, so the header is the union seen so far; a new
    key rewrites the (small) file with the wider header, otherwise rows are appended.
    """

    def __init__(self, output_dir: Path, file: str = "metrics.csv"):
        self.path = Path(output_dir) / file
        self.rows: list[dict[str, Any]] = []
        self.columns: list[str] = []

    def start(self, records: list[dict[str, Any]], step: int) -> None:
        self.rows = [flatten(r) for r in records if r.get("step", 0) < step]
        self.columns = []
        for r in self.rows:
            self.columns += [k for k in r if k not in self.columns]
        self._rewrite()

    def _rewrite(self) -> None:
        def write(f):
            w = csv.DictWriter(f, self.columns)
            w.writeheader()
            w.writerows(self.rows)

        atomic_write(self.path, write, mode="w")

    def log(self, record: dict[str, Any]) -> None:
        row = flatten(record)
        self.rows.append(row)
        new = [k for k in row if k not in self.columns]
        if new:
            self.columns += new
            self._rewrite()
        else:
            try:
                with open(self.path, "a", newline="") as f:
                    csv.DictWriter(f, self.columns).writerow(row)
            except OSError as e:
                raise OutputError(self.path, describe(e)) from None

    def close(self) -> None:
        pass


class TensorBoardSink:
    """Scalars under ``<phase>/<metric>`` at global step = metrics step (``pip install tensorboard``)."""

    def __init__(self, output_dir: Path, dir: str = "tensorboard"):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:  # torch raises ImportError when the tensorboard package is absent
            raise ConfigError("logger tensorboard needs the tensorboard package: "
                              "pip install 'snnrun[tensorboard]' (or pip install tensorboard)",
                              key="logger.tensorboard") from e
        self._writer_cls = SummaryWriter
        self.log_dir = Path(output_dir) / dir
        self.writer = None

    def start(self, records: list[dict[str, Any]], step: int) -> None:
        # purge_step drops events a killed run logged after its checkpoint: no duplicated steps
        self.writer = self._writer_cls(str(self.log_dir), purge_step=step if records else None)

    def log(self, record: dict[str, Any]) -> None:
        phase = record.get("phase", "metrics")
        for k, v in flatten(record).items():
            if k not in ("step", "time", "phase") and isinstance(v, (int, float)) and not isinstance(v, bool):
                self.writer.add_scalar(f"{phase}/{k}", v, global_step=record["step"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


SINKS = {"csv": CsvSink, "tensorboard": TensorBoardSink}
CONSOLE_KEYS = {"progress"}


def build_sinks(logger_cfg: dict[str, Any] | None, output_dir: Path) -> list:
    """The sinks named in the ``logger`` node (keys other than the console's ``progress``)."""
    sinks = []
    for name, opts in (logger_cfg or {}).items():
        if name in CONSOLE_KEYS or opts is None or opts is False:
            continue
        if name not in SINKS:
            raise ConfigError(f"unknown logger '{name}'. Allowed: progress, {', '.join(SINKS)}",
                              key=f"logger.{name}")
        opts = {} if opts is True else dict(opts)
        try:
            sinks.append(SINKS[name](output_dir, **opts))
        except TypeError as e:
            raise ConfigError(f"bad option for logger {name}: {e}", key=f"logger.{name}") from e
    return sinks


def open_metrics(logger_cfg: dict[str, Any] | None, output_dir: Path, resume_from: dict | None = None):
    """The run's metrics stream with the configured sinks attached (what training loops call)."""
    from snnrun.run.ranks import is_main
    from snnrun.run.console import MetricsLog, NullMetrics

    if not is_main():  # data-parallel runs: rank 0 logs (the metrics it logs are reduced over ranks)
        return NullMetrics()
    return MetricsLog(output_dir, build_sinks(logger_cfg, output_dir), resume_from=resume_from)
