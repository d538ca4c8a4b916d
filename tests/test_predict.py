"""``snnrun predict`` on image files and saved tensors, and ``init_from=RUN_DIR`` warm starts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from snnrun.commands.predict import load_image, predict
from snnrun.engine.experiment import build_experiment
from snnrun.engine.loop import train
from snnrun.run.saved import load_run_config, load_run_state
from snnrun.errors import ConfigError
from snnrun.run.checkpoint import load_checkpoint
from tests.conftest import TINY, run_cli, compose_config, train_like_cli

BASE = ("device=cpu", "logger=plain", "seed=0")
MLP = ("+model=snn_mlp", "model.T=4", "model.hidden=32", "data.limit_train=192", "data.limit_test=32",
       "trainer.batch_size=32", "trainer.epochs=1", "model.neuron.v_threshold=0.1")


def cfg_of(*overrides):
    return compose_config(*BASE, *overrides)


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("mlp")
    torch.manual_seed(0)
    train_like_cli(cfg_of(*MLP), run)
    return run


def reference(run, x):
    """The run's own experiment, learning off: each decoder's class scores for a batch."""
    exp = build_experiment(load_run_config(run, ["device=cpu"]))
    load_run_state(exp, load_checkpoint(run, fallback=False), run)
    exp.network.eval()
    readout = exp.present(x)
    return {n: d.class_scores(readout, exp.assignment, exp.n_classes) for n, d in exp.decoders.items()}, exp


def test_predict_tensors_as_the_run_scores_them(mlp_run, tmp_path):
    exp = build_experiment(load_run_config(mlp_run, ["device=cpu"]))
    x = exp.data.test.x[:6]
    want, _ = reference(mlp_run, x)
    torch.save(x, tmp_path / "batch.pt")
    np.save(tmp_path / "one.npy", x[2, 0].numpy())  # (8, 8): one sample without its channel
    recs = predict(mlp_run, [str(tmp_path / "batch.pt"), str(tmp_path / "one.npy")], overrides=["device=cpu"])
    assert [r["index"] for r in recs] == [0, 1, 2, 3, 4, 5, 0]
    scores = torch.tensor([r["scores"]["spike_count"] for r in recs])
    assert torch.allclose(scores[:6], want["spike_count"].float(), atol=1e-6)
    assert torch.allclose(scores[6], want["spike_count"][2].float(), atol=1e-6)
    assert [r["class"] for r in recs[:6]] == want["spike_count"].argmax(1).tolist()
    assert want["spike_count"].sum() > 0


def test_images_are_grayscaled_resized_and_scaled(tmp_path):
    rgb = np.zeros((16, 16, 3), dtype=np.uint8)
    rgb[:, :8] = (255, 0, 0)   # red: L = 0.299 * 255 (ITU-R 601-2, PIL's convert("L"))
    rgb[:, 8:] = (0, 0, 255)   # blue: L = 0.114 * 255
    Image.fromarray(rgb).save(tmp_path / "img.png")
    x = load_image(tmp_path / "img.png", (1, 8, 8))
    assert x.shape == (1, 8, 8)
    assert torch.allclose(x[0, :, :3], torch.full((8, 3), round(0.299 * 255) / 255), atol=1 / 255)
    assert torch.allclose(x[0, :, 5:], torch.full((8, 3), round(0.114 * 255) / 255), atol=1 / 255)
    rgb3 = load_image(tmp_path / "img.png", (3, 4, 4))
    assert torch.allclose(rgb3[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))


def test_predict_cli_on_a_png(mlp_run, tmp_path, cli_env):
    exp = build_experiment(load_run_config(mlp_run, ["device=cpu"]))
    x = exp.data.test.x[:1]
    q = np.round(x[0, 0].numpy() * 255).astype(np.uint8)  # an 8x8 PNG: the sample up to 8-bit rounding
    Image.fromarray(q).save(tmp_path / "digit.png")
    want, _ = reference(mlp_run, torch.from_numpy(q.astype(np.float32) / 255).reshape(1, 1, 8, 8))
    r = run_cli(["predict", f"run_dir={mlp_run}", f"input={tmp_path / 'digit.png'}", "json=true", "device=cpu"],
                cli_env, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    rec = json.loads(r.stdout.strip().splitlines()[-1])
    assert rec["class"] == int(want["spike_count"].argmax()) and rec["decoder"] == "spike_count"
    assert rec["scores"]["spike_count"] == pytest.approx(want["spike_count"][0].tolist())
    r = run_cli(["predict", f"run_dir={mlp_run}", f"input={tmp_path / 'digit.png'}", "device=cpu"], cli_env, tmp_path)
    assert f"digit.png: class {rec['class']} (spike_count)" in r.stdout


@pytest.mark.parametrize("write, message", [
    (lambda p: None, "no file"),
    (lambda p: p.with_suffix(".txt").write_text("1 2 3"), "unknown kind of file"),
    (lambda p: torch.save(torch.zeros(5, 7), p), "shape [5, 7]"),
    (lambda p: torch.save({"w": torch.zeros(64)}, p), "holds a dict"),
    (lambda p: torch.save(torch.full((1, 8, 8), float("nan")), p), "NaN"),
])
def test_bad_inputs_are_errors_naming_the_file(mlp_run, tmp_path, write, message):
    path = tmp_path / "x.pt"
    write(path)
    target = path.with_suffix(".txt") if message == "unknown kind of file" else path
    with pytest.raises(ConfigError) as e:
        predict(mlp_run, [str(target)], overrides=["device=cpu"])
    assert e.value.key == "input" and message in e.value.message and str(target) in e.value.message


def test_pickled_objects_in_a_pt_file_are_not_run(mlp_run, tmp_path):
    class Boom:
        def __reduce__(self):
            return (exec, ("open(%r, 'w').write('ran')" % str(tmp_path / "ran"),))

    torch.save({"x": Boom()}, tmp_path / "evil.pt")
    with pytest.raises(ConfigError, match="weights_only=True"):
        predict(mlp_run, [str(tmp_path / "evil.pt")], overrides=["device=cpu"])
    assert not (tmp_path / "ran").exists()


# --------------------------------------------------------------------------- init_from
def test_init_from_starts_from_the_runs_weights(mlp_run, tmp_path):
    """epochs=0: nothing is learnt, so the new run tests exactly the weights it started from."""
    summary = train_like_cli(cfg_of(*MLP, "trainer.epochs=0", f"init_from={mlp_run}"), tmp_path / "warm")
    original = json.loads((mlp_run / "summary.json").read_text())
    assert summary["test_accuracy"] == original["test_accuracy"]
    a = load_checkpoint(mlp_run, fallback=False)["network"]
    b = load_checkpoint(tmp_path / "warm", fallback=False)["network"]
    assert all(torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())
    # and it fine-tunes from there with another config (learning rate, epochs)
    tuned = tmp_path / "tuned"
    train_like_cli(cfg_of(*MLP, f"init_from={mlp_run}", "model.learner.optimizer.lr=1e-2"), tuned)
    c = load_checkpoint(tuned, fallback=False)["network"]
    assert not torch.equal(a["connections.fc2.ops.1.w"], c["connections.fc2.ops.1.w"])


def test_init_from_a_misfit_names_the_tensors_and_leaves_no_run(mlp_run, tmp_path, cli_env):
    r = run_cli(["train", *MLP, "model.hidden=16", f"init_from={mlp_run}", *BASE,
                 f"hydra.run.dir={tmp_path / 'new'}"], cli_env, tmp_path)
    assert r.returncode == 2 and "error: init_from:" in r.stdout and "Traceback" not in r.stdout + r.stderr
    assert "connections.fc1.ops.1.w is [64, 32] in the checkpoint, [64, 16] in this model" in r.stdout
    assert not (tmp_path / "new").exists()
    with pytest.raises(ConfigError, match="no checkpoint"):
        train(cfg_of("+model=diehl_cook", *TINY, f"init_from={tmp_path}"), tmp_path / "dc")
