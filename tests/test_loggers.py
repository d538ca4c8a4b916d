"""One metrics stream, several loggers: metrics.jsonl, csv, tensorboard; exact steps after resume."""

import csv
import json
import sys

import pytest

from snnrun.errors import ConfigError
from snnrun.run.metrics import build_sinks, open_metrics
from snnrun.engine.loop import train
from tests.conftest import TINY


def csv_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def tb_scalars(log_dir, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_csv_logger_mirrors_metrics_jsonl(compose_cfg, tmp_path):
    train(compose_cfg("+model=diehl_cook", *TINY, "logger=[plain,csv]"), tmp_path)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    rows = csv_rows(tmp_path / "metrics.csv")
    assert [int(r["step"]) for r in rows] == [r["step"] for r in lines] == list(range(len(lines)))
    assert [r["phase"] for r in rows] == [r["phase"] for r in lines]
    test = rows[-1]
    assert float(test["test_accuracy"]) == lines[-1]["test_accuracy"]
    assert "decoders/all_activity/test_accuracy" in test  # nested metrics become flat columns
    trained = [r for r in lines if r["phase"] == "train" and r["running_accuracy"]]
    assert trained and all(float(rows[r["step"]]["running_accuracy/all_activity"])
                           == r["running_accuracy"]["all_activity"] for r in trained)


def test_tensorboard_logger_writes_the_same_stream(compose_cfg, tmp_path):
    pytest.importorskip("tensorboard")
    train(compose_cfg("+model=diehl_cook", *TINY, "logger=[plain,csv,tensorboard]"), tmp_path)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    test = lines[-1]
    assert tb_scalars(tmp_path / "tensorboard", "test/test_accuracy") == [(test["step"], test["test_accuracy"])]
    trained = [(r["step"], r["running_accuracy"]["all_activity"]) for r in lines
               if r["phase"] == "train" and r["running_accuracy"]]
    got = tb_scalars(tmp_path / "tensorboard", "train/running_accuracy/all_activity")
    assert [s for s, _ in got] == [s for s, _ in trained]
    assert [v for _, v in got] == pytest.approx([v for _, v in trained])


def test_resume_drops_records_after_the_checkpoint_in_every_sink(tmp_path):
    pytest.importorskip("tensorboard")
    cfg = {"progress": False, "csv": {"file": "metrics.csv"}, "tensorboard": {"dir": "tb"}}
    m = open_metrics(cfg, tmp_path)
    for i in range(3):
        m.log(phase="train", loss=float(i))
    saved = m.position()  # what a checkpoint stores
    for i in range(3, 5):
        m.log(phase="train", loss=float(i))  # written, then the process is killed
    m.close()

    m = open_metrics(cfg, tmp_path, resume_from=saved)
    for i in range(3, 6):
        m.log(phase="train", loss=10.0 + i)  # the resumed run writes these steps again
    m.close()
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == list(range(6))
    assert [r["loss"] for r in lines] == [0.0, 1.0, 2.0, 13.0, 14.0, 15.0]
    assert [float(r["loss"]) for r in csv_rows(tmp_path / "metrics.csv")] == [r["loss"] for r in lines]
    assert tb_scalars(tmp_path / "tb", "train/loss") == [(r["step"], r["loss"]) for r in lines]


def test_unknown_logger_and_missing_tensorboard_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(ConfigError) as e:
        build_sinks({"progress": True, "comet": {}}, tmp_path)
    assert e.value.key == "logger.comet" and all(s in e.value.message for s in ("csv", "tensorboard", "mlflow", "wandb"))
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if tensorboard were not installed
    with pytest.raises(ConfigError) as e:
        build_sinks({"tensorboard": {"dir": "tb"}}, tmp_path)
    assert e.value.key == "logger.tensorboard" and "pip install" in e.value.message
