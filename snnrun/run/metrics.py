"""Extra metric sinks fed by the run's one metrics stream (``MetricsLog``): csv, tensorboard, and
the experiment trackers mlflow and wandb.

Chosen with the ``logger`` config group; several at once merge into one node, e.g.
``logger=[rich,csv,tensorboard]`` gives ``{progress: true, csv: {...}, tensorboard: {...}}``.
Each sink gets ``start(records, step)`` once (the records already in metrics.jsonl, so a
resumed run rebuilds/purges what came after its checkpoint), then ``log(record)`` per step.
"""

from __future__ import annotations

import csv
import json
import os
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


def numeric_metrics(record: dict[str, Any]) -> dict[str, float]:
    """The record's numbers as ``<phase>/<metric>`` scalars (what trackers plot)."""
    phase = record.get("phase", "metrics")
    return {f"{phase}/{k}": float(v) for k, v in flatten(record).items()
            if k not in ("step", "time", "phase") and isinstance(v, (int, float)) and not isinstance(v, bool)}


def run_params(output_dir: Path) -> dict[str, Any]:
    """The run's resolved config (``resolved_config.yaml``, written before the metrics stream
    opens), flattened to ``a/b`` keys: the parameters a tracker records with the run."""
    import yaml

    path = Path(output_dir) / "resolved_config.yaml"
    cfg = yaml.safe_load(path.read_text()) if path.is_file() else {}
    return flatten(cfg or {})


class _TrackerIds:
    """The tracker run a sink wrote last (``<run dir>/trackers.json``), so that a resumed run can
    drop it and write a new one holding exactly the records of metrics.jsonl."""

    def __init__(self, output_dir: Path):
        self.path = Path(output_dir) / "trackers.json"

    def get(self, name: str) -> Any:
        return json.loads(self.path.read_text()).get(name) if self.path.is_file() else None

    def set(self, name: str, value: Any) -> None:
        data = json.loads(self.path.read_text()) if self.path.is_file() else {}
        data[name] = value
        atomic_write(self.path, lambda f: f.write(json.dumps(data, indent=2) + "\n"), mode="w")


class MlflowSink:
    """MLflow tracking (``pip install 'snnrun[mlflow]'``): one MLflow run per snnrun run, its
    parameters the resolved config, its metrics ``<phase>/<metric>`` at step = metrics step.

    ``tracking_uri`` defaults to a file store in the run dir (``file:<run dir>/mlruns``; view with
    ``mlflow ui --backend-store-uri <run dir>/mlruns``); give a server's URI to log there. A resumed
    run deletes the MLflow run it wrote before and logs metrics.jsonl's records again into a new
    one, so every step appears once (as in the csv and tensorboard sinks)."""

    def __init__(self, output_dir: Path, tracking_uri: str | None = None, experiment: str = "snnrun",
                 run_name: str | None = None):
        try:
            from mlflow.entities import Metric, Param
            from mlflow.tracking import MlflowClient
        except ImportError as e:
            raise ConfigError("logger mlflow needs the mlflow package: pip install 'snnrun[mlflow]' "
                              "(or pip install mlflow-skinny)", key="logger.mlflow") from e
        self._Metric, self._Param = Metric, Param
        self.output_dir = Path(output_dir)
        uri = tracking_uri or (self.output_dir / "mlruns").resolve().as_uri()
        if uri.startswith("file:"):
            # MLflow 3 keeps its file store in maintenance mode behind this opt-in; a file store in
            # the run dir is what needs no server (a database or server: set tracking_uri)
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        self.uri = uri
        self.experiment, self.run_name = experiment, run_name or self.output_dir.name
        self.ids = _TrackerIds(self.output_dir)
        self.run_id: str | None = None

    def start(self, records: list[dict[str, Any]], step: int) -> None:
        old = self.ids.get("mlflow")
        if old:  # a resumed run: its old MLflow run may hold steps logged after the checkpoint
            try:
                self.client.delete_run(old)
            except Exception:  # noqa: BLE001 - gone already (or another store): nothing to drop
                pass
        try:
            exp = self.client.get_experiment_by_name(self.experiment)
            exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(self.experiment)
            self.run_id = self.client.create_run(exp_id, run_name=self.run_name).info.run_id
        except Exception as e:  # noqa: BLE001 - MLflow's store errors: one clear message
            raise ConfigError(f"MLflow cannot log to {self.uri}: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
                              key="logger.mlflow.tracking_uri") from e
        self.ids.set("mlflow", self.run_id)
        params = [self._Param(k[:250], str(v)[:6000]) for k, v in run_params(self.output_dir).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=params[i:i + 100])
        for r in records:
            if r.get("step", 0) < step:
                self.log(r)

    def log(self, record: dict[str, Any]) -> None:
        ts = int(float(record.get("time", 0.0)) * 1000) if isinstance(record.get("time"), (int, float)) else 0
        metrics = [self._Metric(k, v, ts, int(record["step"])) for k, v in numeric_metrics(record).items()]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def close(self) -> None:
        if self.run_id is not None:
            self.client.set_terminated(self.run_id)


class WandbSink:
    """Weights & Biases (``pip install 'snnrun[wandb]'``): one W&B run per snnrun run, its config
    the resolved config, its history ``<phase>/<metric>`` at step = metrics step.

    ``mode: offline`` (default) writes to ``<run dir>/wandb/`` without a network or an account
    (upload later with ``wandb sync <run dir>/wandb/offline-run-*``); ``online`` logs to the server
    of your ``wandb login``. A resumed run writes a new W&B run from metrics.jsonl's records (an
    offline one replaces the previous offline run's folder), so every step appears once."""

    def __init__(self, output_dir: Path, project: str = "snnrun", mode: str = "offline", entity: str | None = None,
                 name: str | None = None):
        try:
            import wandb
        except ImportError as e:
            raise ConfigError("logger wandb needs the wandb package: pip install 'snnrun[wandb]' "
                              "(or pip install wandb)", key="logger.wandb") from e
        if mode not in ("offline", "online", "disabled"):
            raise ConfigError(f"unknown mode '{mode}'. Allowed: offline, online, disabled", key="logger.wandb.mode")
        self.wandb, self.output_dir = wandb, Path(output_dir)
        self.project, self.mode, self.entity = project, mode, entity
        self.name = name or self.output_dir.name
        self.ids = _TrackerIds(self.output_dir)
        self.run = None

    def start(self, records: list[dict[str, Any]], step: int) -> None:
        import shutil

        old = self.ids.get("wandb")
        if old and self.mode == "offline" and old.get("dir") and Path(old["dir"]).is_dir():
            shutil.rmtree(old["dir"], ignore_errors=True)  # never uploaded: the new run replaces it
        self.run = self.wandb.init(project=self.project, entity=self.entity, name=self.name, mode=self.mode,
                                   dir=str(self.output_dir), config=run_params(self.output_dir), reinit=True,
                                   settings=self.wandb.Settings(silent=True, console="off"))
        run_dir = Path(self.run.dir).parent if self.mode == "offline" else None
        self.ids.set("wandb", {"id": self.run.id, "dir": str(run_dir) if run_dir else None})
        for r in records:
            if r.get("step", 0) < step:
                self.log(r)

    def log(self, record: dict[str, Any]) -> None:
        metrics = numeric_metrics(record)
        if metrics:
            self.run.log(metrics, step=int(record["step"]))

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None


SINKS = {"csv": CsvSink, "tensorboard": TensorBoardSink, "mlflow": MlflowSink, "wandb": WandbSink}
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
