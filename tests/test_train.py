"""train(cfg, output_dir) end to end on tiny settings: outputs, reproducibility, re-evaluation."""

import json

import pytest
import torch

from snnrun.errors import ConfigError
from snnrun.engine.evaluation import evaluate_run
from snnrun.engine.loop import train
from tests.conftest import TINY

SUMMARY_KEYS = {"test_accuracy", "best_decoder", "decoders", "train_images_per_s", "wall_s", "device",
                "seed", "versions", "n_train", "n_test"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from hydra import compose, initialize_config_dir

    from snnrun.config import config_dir

    out = tmp_path_factory.mktemp("run")
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=["+model=diehl_cook", *TINY])
    # `snnrun eval` reads the saved config from .hydra/, as the CLI writes it
    (out / ".hydra").mkdir()
    from omegaconf import OmegaConf

    (out / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    return cfg, out, train(cfg, out)


def test_outputs_written(tiny_run):
    _, out, summary = tiny_run
    for name in ("metrics.jsonl", "summary.json", "checkpoint.pt", "weights.png", "confusion.png",
                 "resolved_config.yaml"):
        assert (out / name).stat().st_size > 0, name
    saved = json.loads((out / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(saved)
    assert set(saved["decoders"]) == {"all_activity", "proportion_weighting"}
    assert saved["test_accuracy"] == max(d["test_accuracy"] for d in saved["decoders"].values())
    phases = [json.loads(l)["phase"] for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert phases[0] == "train" and phases[-2:] == ["assign", "test"]


def test_learns_above_chance(tiny_run):
    # 4 synthetic classes: chance is 0.25
    assert tiny_run[2]["test_accuracy"] >= 0.6


def test_checkpoint_holds_label_assignment(tiny_run):
    _, out, _ = tiny_run
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["assignment"]["assignments"].shape == (10,)
    assert "groups.Ae.theta" in state["network"] and "connections.X_Ae.w" in state["network"]
    assert state["network"]["groups.Ae.theta"].sum() > 0  # thresholds adapted during learning


def test_same_seed_same_metrics(tiny_run, tmp_path):
    cfg, _, summary = tiny_run
    again = train(cfg, tmp_path)
    for k in ("test_accuracy", "decoders", "silent_test_samples", "train_samples"):
        assert again[k] == summary[k]


def test_eval_reproduces_test_accuracy(tiny_run):
    _, out, summary = tiny_run
    result = evaluate_run(out)
    assert result["test_accuracy"] == summary["test_accuracy"]
    assert result["decoders"] == summary["decoders"]
    saved = json.loads((out / "eval.json").read_text())
    assert set(json.loads((out / "summary.json").read_text())) <= set(saved)


def test_eval_of_corrupt_checkpoint_is_clear(tiny_run, tmp_path):
    _, out, _ = tiny_run
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    (bad / "checkpoint.pt").write_bytes((bad / "checkpoint.pt").read_bytes()[:100])
    with pytest.raises(ConfigError, match="corrupt or truncated"):
        evaluate_run(bad)
    with pytest.raises(ConfigError, match="not a snnrun run directory"):
        evaluate_run(tmp_path)


def test_no_model_lists_models(compose_cfg, tmp_path):
    with pytest.raises(ConfigError) as e:
        train(compose_cfg(), tmp_path)
    assert "+model=" in str(e.value) and "diehl_cook" in str(e.value)


def test_mismatched_one_to_one_is_a_config_error(compose_cfg, tmp_path):
    cfg = compose_cfg("+model=diehl_cook", *TINY, "model.network.groups.Ai.n=7")
    with pytest.raises(ConfigError) as e:
        train(cfg, tmp_path)
    assert e.value.key == "model.network.connections.Ae_Ai" and "10" in str(e.value) and "7" in str(e.value)


def test_unknown_group_in_connection(compose_cfg, tmp_path):
    cfg = compose_cfg("+model=diehl_cook", *TINY, "model.network.connections.Ai_Ae.source=Aj")
    with pytest.raises(ConfigError) as e:
        train(cfg, tmp_path)
    assert e.value.key == "model.network.connections.Ai_Ae.source" and "Ai" in str(e.value)


def test_batched_training_runs(compose_cfg, tmp_path):
    summary = train(compose_cfg("+model=diehl_cook", *TINY, "trainer.batch_size=8"), tmp_path)
    assert summary["train_samples"] == 40


def test_eval_accepts_a_group_choice_override(tiny_run):
    # `logger=plain` names a config file, as it does for `snnrun train`
    _, out, summary = tiny_run
    result = evaluate_run(out, ["logger=plain"])
    assert result["test_accuracy"] == summary["test_accuracy"]


def test_batch_warmup_presents_the_first_images_in_small_batches(compose_cfg, tmp_path, monkeypatch):
    """trainer.warmup_images: the run's first N images in batches of warmup_batch_size, then
    batch_size; over two epochs the warm-up happens once (it counts the run's images)."""
    from snnrun.engine.loop import Trainer

    sizes = []
    real = Trainer.train_batch

    def record(self, xb, yb, *a):
        sizes.append(len(xb))
        return real(self, xb, yb, *a)

    monkeypatch.setattr(Trainer, "train_batch", record)
    cfg = compose_cfg("+model=diehl_cook", *TINY, "trainer.epochs=2", "trainer.batch_size=16",
                      "trainer.warmup_images=10", "trainer.warmup_batch_size=4")
    summary = train(cfg, tmp_path)
    # 40 images per epoch: 4+4+4 (12 >= 10), then 16, 12; the second epoch 16, 16, 8
    assert sizes == [4, 4, 4, 16, 12, 16, 16, 8]
    assert summary["train_samples"] == 80


@pytest.mark.parametrize("min_s, expected", [(0, [10, 20, 30, 40, 40]), (3600, [40, 40])])
def test_periodic_checkpoints_are_checkpoint_min_s_apart(compose_cfg, tmp_path, monkeypatch, min_s, expected):
    """trainer.checkpoint_every=10 samples: with checkpoint_min_s=0 a checkpoint every 10 samples
    and the epoch end's and final ones; with an hour's minimum only those two (a fast run would
    otherwise copy and write its whole state every few batches)."""
    from snnrun.engine.loop import Trainer

    at = []
    real = Trainer.checkpoint

    def record(self, *a, **kw):
        at.append(self.prog.samples)
        return real(self, *a, **kw)

    monkeypatch.setattr(Trainer, "checkpoint", record)
    cfg = compose_cfg("+model=diehl_cook", *TINY, "trainer.batch_size=5", "trainer.checkpoint_every=10",
                      f"trainer.checkpoint_min_s={min_s}")
    train(cfg, tmp_path)
    assert at == expected
    with pytest.raises(ConfigError) as e:
        train(compose_cfg("+model=diehl_cook", *TINY, "trainer.checkpoint_min_s=-1"), tmp_path / "bad")
    assert e.value.key == "trainer.checkpoint_min_s" and "seconds >= 0" in str(e.value)
    assert not (tmp_path / "bad").exists()  # refused before the run dir is made


@pytest.mark.parametrize("every, batch, lines_at", [
    ("auto", 5, [40]),          # auto: max(250, 10 batches) = 250 samples > the epoch's 40: the epoch end only
    (10, 5, [10, 20, 30, 40]),  # a whole number: a line once that many samples are in, at the batch end
    (12, 5, [15, 30, 40]),
    (10, 16, [16, 32, 40]),     # a batch larger than the window: a line per batch
])
def test_metrics_lines_every_assign_every_samples(compose_cfg, tmp_path, every, batch, lines_at):
    """trainer.assign_every: running-accuracy lines in metrics.jsonl at the first batch end after
    that many samples, and at the epoch end."""
    import json

    cfg = compose_cfg("+model=diehl_cook", *TINY, f"trainer.batch_size={batch}", f"trainer.assign_every={every}")
    train(cfg, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["samples"] for r in rows if r.get("phase") == "train"] == lines_at


def test_assign_every_auto_is_ten_batches_or_250_samples():
    from snnrun.engine.loop import metrics_window

    assert metrics_window("auto", 1) == 250 and metrics_window("auto", 16) == 250
    assert metrics_window("auto", 256) == 2560 and metrics_window(None, 64) == 640
    assert metrics_window(32, 256) == 32 and metrics_window("32", 1) == 32
    for bad in (0, -5, 2.5, "often"):
        with pytest.raises(ConfigError) as e:
            metrics_window(bad, 16)
        assert e.value.key == "trainer.assign_every" and "auto" in str(e.value)


@pytest.mark.parametrize("overrides, key", [
    (["+model=diehl_cook", "trainer.warmup_images=-1"], "trainer.warmup_images"),
    (["+model=diehl_cook", "trainer.warmup_images=10", "trainer.warmup_batch_size=0"], "trainer.warmup_batch_size"),
    (["+model=snn_mlp", "trainer.warmup_images=10"], "trainer.warmup_images"),  # a gradient learner
])
def test_batch_warmup_bad_values_name_the_key(compose_cfg, tmp_path, overrides, key):
    tiny = TINY if "diehl_cook" in overrides[0] else ["data=synthetic", "data.n_train=40", "data.n_test=20", "logger=plain"]
    with pytest.raises(ConfigError) as e:
        train(compose_cfg(*tiny, *overrides), tmp_path / "run")
    assert e.value.key == key and "trainer." in key
    assert not (tmp_path / "run").exists()  # refused before the run dir is made


def test_baseline_running_mean_is_checkpointed_and_re_evaluates_the_same(compose_cfg, tmp_path):
    from tests.conftest import train_like_cli

    cfg = compose_cfg("+model=diehl_cook", *TINY, "trainer.batch_size=4", "+model.learner.baseline=running_mean")
    summary = train_like_cli(cfg, tmp_path)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    mean = state["network"]["connections.X_Ae.pre_mean"]
    assert mean.shape == (64,) and float(mean.sum()) > 0  # the running mean of the inputs' traces
    again = evaluate_run(tmp_path)
    assert again["test_accuracy"] == summary["test_accuracy"]
