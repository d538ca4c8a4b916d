"""Experiment trackers fed by the one metrics stream: MLflow (file store) and W&B (offline).

Each is read back from what it wrote (MLflow's store through its client; W&B's offline run file
through its record protos) and compared with metrics.jsonl, also across a resume.
"""

from __future__ import annotations

import json
import struct
import time
import sys
from pathlib import Path

import pytest

from snnrun.engine.loop import train
from snnrun.errors import ConfigError
from snnrun.run.metrics import build_sinks, open_metrics
from tests.conftest import TINY


def jsonl(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def trackers(run):
    return json.loads((run / "trackers.json").read_text())


# --------------------------------------------------------------------------- mlflow
def mlflow_client(run):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=(run / "mlruns").resolve().as_uri())


def history(client, run_id, key):
    return [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def test_mlflow_logs_the_metrics_stream_and_the_config(compose_cfg, tmp_path):
    pytest.importorskip("mlflow")
    train(compose_cfg("+model=diehl_cook", *TINY, "logger=[plain,mlflow]"), tmp_path)
    lines = jsonl(tmp_path)
    client, run_id = mlflow_client(tmp_path), trackers(tmp_path)["mlflow"]
    test = lines[-1]
    assert history(client, run_id, "test/test_accuracy") == [(test["step"], test["test_accuracy"])]
    trained = [(r["step"], r["running_accuracy"]["all_activity"]) for r in lines
               if r["phase"] == "train" and r["running_accuracy"]]
    assert trained and history(client, run_id, "train/running_accuracy/all_activity") == trained
    run = client.get_run(run_id)
    assert run.data.params["model/n_neurons"] == "10" and run.data.params["data/type"] == "synthetic"
    assert run.info.status == "FINISHED"


def test_mlflow_resume_replaces_the_run_with_exactly_the_kept_steps(tmp_path):
    pytest.importorskip("mlflow")
    cfg = {"progress": False, "mlflow": {"experiment": "resume"}}
    m = open_metrics(cfg, tmp_path)
    for i in range(3):
        m.log(phase="train", loss=float(i))
    saved = m.position()
    for i in range(3, 5):
        m.log(phase="train", loss=float(i))  # logged, then the process is killed
    m.close()
    first = trackers(tmp_path)["mlflow"]
    m = open_metrics(cfg, tmp_path, resume_from=saved)
    for i in range(3, 6):
        m.log(phase="train", loss=10.0 + i)
    m.close()
    client, second = mlflow_client(tmp_path), trackers(tmp_path)["mlflow"]
    assert second != first and client.get_run(first).info.lifecycle_stage == "deleted"
    assert history(client, second, "train/loss") == [(r["step"], r["loss"]) for r in jsonl(tmp_path)] == \
        [(0, 0.0), (1, 1.0), (2, 2.0), (3, 13.0), (4, 14.0), (5, 15.0)]


# --------------------------------------------------------------------------- wandb
def wandb_history(run_dir, at_least: int = 1, wait_s: float = 20.0) -> list[dict]:
    """The history rows of an offline W&B run, read again for up to ``wait_s`` until there are
    ``at_least`` of them: wandb's service process can still be writing the file after
    ``run.finish()`` returns on a loaded machine (seen once in a full run on 2 cores)."""
    deadline = time.monotonic() + wait_s
    while True:
        rows = _wandb_rows(run_dir)
        if len(rows) >= at_least or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def _wandb_rows(run_dir) -> list[dict]:
    """The history rows in an offline W&B run's .wandb file, a LevelDB-style log (a 7-byte file
    header ':W&B', 0xBEE1, version; 32 KiB blocks of records, each a 7-byte header: crc, length,
    type 1 full / 2 first / 3 middle / 4 last) of wandb_internal_pb2.Record protos."""
    from wandb.proto import wandb_internal_pb2

    (path,) = list(run_dir.glob("run-*.wandb"))
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, rows, buf = 7, 32768, [], b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, n, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if pos + 7 + n > len(data):  # a record still being written
            break
        chunk, pos = data[pos + 7:pos + 7 + n], pos + 7 + n
        if kind == 0:
            continue
        buf = chunk if kind in (1, 2) else buf + chunk
        if kind in (1, 4):
            rec = wandb_internal_pb2.Record()
            rec.ParseFromString(buf)
            if rec.WhichOneof("record_type") == "history":
                rows.append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in rec.history.item})
    return rows


def test_wandb_offline_logs_the_metrics_stream(compose_cfg, tmp_path):
    pytest.importorskip("wandb")
    train(compose_cfg("+model=diehl_cook", *TINY, "logger=[plain,wandb]"), tmp_path)
    lines = jsonl(tmp_path)
    rows = wandb_history(Path(trackers(tmp_path)["wandb"]["dir"]), at_least=len(lines))
    assert [r["_step"] for r in rows] == [r["step"] for r in lines]
    assert rows[-1]["test/test_accuracy"] == lines[-1]["test_accuracy"]
    trained = [(r["step"], r["running_accuracy"]["all_activity"]) for r in lines
               if r["phase"] == "train" and r["running_accuracy"]]
    got = [(r["_step"], r["train/running_accuracy/all_activity"]) for r in rows
           if "train/running_accuracy/all_activity" in r]
    assert trained and got == trained


def test_wandb_resume_writes_exactly_the_kept_steps(tmp_path):
    pytest.importorskip("wandb")
    cfg = {"progress": False, "wandb": {"project": "resume", "mode": "offline"}}
    m = open_metrics(cfg, tmp_path)
    for i in range(3):
        m.log(phase="train", loss=float(i))
    saved = m.position()
    m.log(phase="train", loss=3.0)
    m.close()
    first = Path(trackers(tmp_path)["wandb"]["dir"])
    m = open_metrics(cfg, tmp_path, resume_from=saved)
    for i in range(3, 5):
        m.log(phase="train", loss=10.0 + i)
    m.close()
    second = Path(trackers(tmp_path)["wandb"]["dir"])
    assert second != first and not first.exists()
    assert [(r["_step"], r["train/loss"]) for r in wandb_history(second, at_least=5)] == [(0, 0.0), (1, 1.0), (2, 2.0), (3, 13.0),
                                                                              (4, 14.0)]


# --------------------------------------------------------------------------- errors
def test_an_unknown_wandb_mode_names_the_key(tmp_path):
    pytest.importorskip("wandb")
    with pytest.raises(ConfigError) as e:
        build_sinks({"wandb": {"mode": "sometimes"}}, tmp_path)
    assert e.value.key == "logger.wandb.mode" and "offline" in e.value.message


@pytest.mark.parametrize("name", ["mlflow", "wandb"])
def test_without_the_package_the_error_says_how_to_install_it(tmp_path, monkeypatch, name):
    for module in (name, f"{name}.tracking", f"{name}.entities"):
        monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    with pytest.raises(ConfigError) as e:
        build_sinks({name: {}}, tmp_path)
    assert e.value.key == f"logger.{name}" and f"snnrun[{name}]" in e.value.message
