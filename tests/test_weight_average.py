"""The gradient learner's moving average of the weights (``model.learner.ema``,
snnrun/components/learning/weight_average.py): its recurrence, the swap, and what a run does with it."""

import json

import pytest
import torch
from torch import nn

from snnrun.components.learning.weight_average import WeightAverage, averaged_tensors
from snnrun.engine.experiment import build_experiment
from snnrun.engine.loop import train
from snnrun.run.checkpoint import load_checkpoint
from tests.conftest import stop_request_at

TINY = ["+model=snn_mlp", "data=synthetic", "data.n_train=120", "data.n_test=40", "trainer.epochs=3",
        "trainer.batch_size=16", "trainer.eval_batch_size=64", "logger=plain"]


def test_the_average_follows_its_recurrence_with_warm_up():
    """ema_t = d_t ema_{t-1} + (1 - d_t) w_t with d_t = min(decay, (1 + t) / (10 + t)), over the
    parameters and the batch-norm running statistics, from ema_0 = w_0."""
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    avg = WeightAverage(model, decay=0.5)
    tensors = [*model.parameters(), model[1].running_mean, model[1].running_var]
    assert len(avg.avg) == len(tensors) == 6
    expected = [t.detach().clone().double() for t in tensors]
    torch.manual_seed(0)
    for t in range(1, 30):
        with torch.no_grad():
            for x in tensors:
                x.copy_(torch.randn_like(x))
        avg.update()
        d = min(0.5, (1 + t) / (10 + t))  # the warm-up rules the first 8 steps, then 0.5
        expected = [d * e + (1 - d) * x.detach().double() for e, x in zip(expected, tensors)]
        for a, e in zip(avg.avg, expected):
            assert torch.allclose(a.double(), e, rtol=1e-5, atol=1e-6)
    assert float(avg.steps) == 29


def test_swapped_exchanges_values_in_the_same_tensors():
    model = nn.Linear(4, 3)
    avg = WeightAverage(model, decay=0.9)
    with torch.no_grad():
        model.weight.add_(1.0)
    avg.update()
    live, averaged = model.weight.detach().clone(), avg.avg[0].clone()
    ptr = model.weight.data_ptr()
    with avg.swapped():
        assert torch.equal(model.weight, averaged) and model.weight.data_ptr() == ptr
    assert torch.equal(model.weight, live) and torch.equal(avg.avg[0], averaged)


def test_a_run_trains_the_same_and_validates_tests_and_keeps_the_average(compose_cfg, tmp_path):
    """The average does not change training (same losses with and without it); with no validation
    split the finished model is the average, whose live weights the learner's state keeps."""
    plain = train(compose_cfg(*TINY, "model.learner.val_fraction=0"), tmp_path / "plain")
    ema = train(compose_cfg(*TINY, "model.learner.val_fraction=0", "model.learner.ema=0.9"), tmp_path / "ema")

    def losses(run):
        return [r["loss"] for r in map(json.loads, (tmp_path / run / "metrics.jsonl").read_text().splitlines())
                if r.get("phase") == "train"]
    assert losses("plain") == losses("ema")
    a = load_checkpoint(tmp_path / "plain")["network"]
    b = load_checkpoint(tmp_path / "ema")
    live = b["learners"]["learner"]["average"]["avg"]
    # what each averaged tensor is: the order of averaged_tensors on the same model
    net = build_experiment(compose_cfg(*TINY)).network
    names = {t.data_ptr(): k for k, t in net.state_dict(keep_vars=True).items()}
    order = [names[t.data_ptr()] for t in averaged_tensors(net)]
    assert len(order) == len(live) and any(k.endswith(".w") for k in order)
    for k, t in zip(order, live):
        assert torch.equal(t, a[k]), k  # the learner's state holds the live weights: the plain run's model
        if k.endswith(".w"):  # and the model is their average, not the last step's weights
            assert not torch.equal(b["network"][k], a[k]), k
    assert 0.0 <= ema["test_accuracy"] <= 1.0 and ema["epochs"] == plain["epochs"]


def test_a_run_with_the_average_resumes_bit_identically(compose_cfg, tmp_path, monkeypatch):
    import snnrun.engine.loop as tg
    from snnrun.errors import TrainingInterrupted

    cfg = [*TINY, "model.learner.ema=0.8"]
    whole = train(compose_cfg(*cfg), tmp_path / "whole")

    real = tg.StopOnSignal
    monkeypatch.setattr(tg, "StopOnSignal", stop_request_at(9))  # a SIGTERM during epoch 2
    with pytest.raises(TrainingInterrupted):
        train(compose_cfg(*cfg), tmp_path / "cut")
    monkeypatch.setattr(tg, "StopOnSignal", real)
    resumed = train(compose_cfg(*cfg, "resume=true"), tmp_path / "cut")
    assert resumed["resumed"]
    for key in ("test_accuracy", "val_accuracy", "best_epoch", "train_samples"):
        assert resumed[key] == whole[key], key
    val = [[r["val_accuracy"] for r in map(json.loads, (tmp_path / run / "metrics.jsonl").read_text().splitlines())
            if r.get("phase") == "val"] for run in ("whole", "cut")]
    assert val[0] == val[1]
    # the average itself, and the model chosen from it, bit for bit
    a, b = load_checkpoint(tmp_path / "whole"), load_checkpoint(tmp_path / "cut")
    avg_a, avg_b = (c["learners"]["learner"]["average"] for c in (a, b))
    assert float(avg_a["steps"]) == float(avg_b["steps"]) > 0
    assert all(torch.equal(x, y) for x, y in zip(avg_a["avg"], avg_b["avg"]))
    assert all(torch.equal(a["network"][k], b["network"][k]) for k in a["network"])
