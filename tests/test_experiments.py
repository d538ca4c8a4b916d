"""Paper recipes (conf/experiment/): each composes with its paper figure and runs a few batches on
the CPU (no accuracy claims); `snnrun reproduce` over seeds against the paper's figure."""

import json
import math
from pathlib import Path

import pytest

from snnrun.engine.loop import train
from snnrun.run.reproduce import experiment_names
from tests.conftest import TINY, run_cli

MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
needs_mnist = pytest.mark.skipif(not (MNIST / "train-images-idx3-ubyte.gz").is_file(),
                                 reason=f"the full MNIST set is not at {MNIST} (../shared/data/mnist)")

# name -> (model, epochs, paper figure): what each recipe must pin (Diehl & Cook 2015 Table 1; Fang et al. 2021)
RECIPES = {
    "dc_mnist_100": ("diehl_cook", 1, 0.829, 100),
    "dc_mnist_400": ("diehl_cook", 3, 0.870, 400),
    "dc_mnist_1600": ("diehl_cook", 7, 0.919, 1600),
    "dc_mnist_6400": ("diehl_cook", 15, 0.950, 6400),
    "plif_mnist": ("plif_csnn", None, 0.9963, None),
    "csnn_mnist": ("csnn", None, 0.994, None),
}

# a few batches on the CPU: short presentations, few images, each recipe's own model and sizes
FEW_BATCHES = {
    "diehl_cook": ["model.time=10", "data.limit_train=512", "data.limit_test=128", "trainer.epochs=1"],
    "csnn": ["model.T=2", "model.channels=8", "model.hidden=32", "data.limit_train=160", "data.limit_test=64",
             "trainer.epochs=1"],
    "plif_csnn": ["model.T=2", "model.channels=16", "model.hidden=64", "data.limit_train=160", "data.limit_test=64",
                  "trainer.epochs=1"],
}


def test_every_recipe_is_listed():
    assert set(experiment_names()) == set(RECIPES)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_composes_with_its_paper_figure(compose_cfg, name):
    model, epochs, figure, n = RECIPES[name]
    cfg = compose_cfg(f"experiment={name}", "data.root=/nowhere")
    assert cfg.model.name == model
    assert cfg.data.type == "mnist" and cfg.data.root == "/nowhere"
    assert cfg.paper.figure == pytest.approx(figure)
    assert cfg.paper.metric == "test_accuracy" and cfg.paper.source
    if epochs is not None:  # Diehl & Cook: the paper's epochs, a batch that keeps a GPU busy
        assert cfg.trainer.epochs == epochs and cfg.model.n_neurons == n
        # 6400 neurons at 512: the step's weight traffic is per step, so a larger batch amortises it
        assert cfg.trainer.batch_size == (512 if n == 6400 else 256) and cfg.model.intensity == "auto"
        assert cfg.model.learner.reduction == "owner" and cfg.model.learner.owners == "auto"
    else:  # gradient recipes: the best epoch on a validation split is the one tested
        assert cfg.model.learner.val_fraction == pytest.approx(0.1)
        # Fang et al.'s code keeps the later epoch when validation accuracies tie
        assert cfg.trainer.best_ties == ("later" if name == "plif_mnist" else "lower_loss")
    # the recipe file names its source and figure in a comment too
    from snnrun.config import config_dir

    head = (config_dir() / "experiment" / f"{name}.yaml").read_text()
    assert f"{figure * 100:.2f}".rstrip("0").rstrip(".") in head


def test_command_line_wins_over_the_recipe(compose_cfg):
    cfg = compose_cfg("experiment=dc_mnist_400", "model.n_neurons=50", "trainer.epochs=1", "data=digits")
    assert (cfg.model.n_neurons, cfg.trainer.epochs, cfg.data.type) == (50, 1, "digits")


@needs_mnist
@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_runs_a_few_batches_on_mnist(compose_cfg, tmp_path, name):
    model = RECIPES[name][0]
    cfg = compose_cfg(f"experiment={name}", f"data.root={MNIST}", "logger=plain", "device=cpu",
                      *FEW_BATCHES[model])
    summary = train(cfg, tmp_path)
    assert summary["n_test"] == (128 if model == "diehl_cook" else 64)
    assert 0.0 <= summary["test_accuracy"] <= 1.0
    if model == "diehl_cook":  # intensity: auto on MNIST is close to the calibrated 128 Hz
        assert summary["input_rate"]["intensity"] == pytest.approx(128.0, rel=0.1)
    else:
        assert summary["val_accuracy"] is not None  # selected on the validation split


def test_reproduce_runs_seeds_and_reports_mean_std_against_the_paper(tmp_path, cli_env):
    sweep = tmp_path / "sweep"
    tiny = [a for a in TINY if not a.startswith("model.intensity")]
    r = run_cli(["reproduce", "experiment=dc_mnist_100", "seeds=2", *tiny, f"hydra.sweep.dir={sweep}"],
                cli_env, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads((sweep / "reproduce.json").read_text())
    accs = [json.loads((sweep / str(i) / "summary.json").read_text())["test_accuracy"] for i in (0, 1)]
    seeds = [json.loads((sweep / str(i) / "summary.json").read_text())["seed"] for i in (0, 1)]
    assert sorted(seeds) == [0, 1]
    mean = sum(accs) / 2
    std = math.sqrt(sum((a - mean) ** 2 for a in accs) / (2 - 1))  # ddof=1
    assert res["paper"] == pytest.approx(0.829) and res["n_seeds"] == 2
    assert res["mean"] == pytest.approx(mean) and res["std"] == pytest.approx(std)
    assert res["total_wall_s"] > 0 and res["run_wall_s_mean"] > 0
    assert "0.8290" in r.stdout and f"{mean:.4f}" in r.stdout and "Diehl & Cook 2015" in r.stdout
    # TINY runs synthetic data: the paper's MNIST figure is shown but not compared with it
    assert res["data"] == {"recipe": "mnist", "ran": "synthetic"} and res["reached"] is None
    assert "not compared" in r.stdout and "below the paper" not in r.stdout


def test_reproduce_sets_the_best_test_epoch_beside_the_papers(tmp_path, cli_env):
    """plif_mnist tests after every epoch: reproduce.json and the table also give the mean of each
    seed's best test epoch beside the paper's best_epoch_figure (Fang et al.'s 99.72%)."""
    sweep = tmp_path / "sweep"
    tiny = ["data=synthetic", "data.shape=[1,12,12]", "data.n_classes=4", "data.n_train=60", "data.n_test=20",
            "model.T=2", "model.channels=4", "model.hidden=16", "trainer.epochs=2", "logger=plain", "device=cpu"]
    r = run_cli(["reproduce", "experiment=plif_mnist", "seeds=2", *tiny, f"hydra.sweep.dir={sweep}"], cli_env, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    res = json.loads((sweep / "reproduce.json").read_text())
    summaries = [json.loads((sweep / str(i) / "summary.json").read_text()) for i in (0, 1)]
    best = {str(s["seed"]): s["best_epoch_test_accuracy"] for s in summaries}
    got = res["best_test_epoch"]
    assert got["paper"] == pytest.approx(0.9972) and got["per_seed"] == pytest.approx(best)
    assert got["mean"] == pytest.approx(sum(best.values()) / 2)
    assert "0.9972" in r.stdout and "best test epoch" in r.stdout


@pytest.mark.parametrize("args, key", [
    ([], "experiment"),
    (["experiment=dc_mnist_10"], "experiment"),
    (["experiment=dc_mnist_100", "seeds=0"], "seeds"),
    (["experiment=dc_mnist_100", "seeds=two"], "seeds"),
    (["experiment=dc_mnist_100", "seed=3"], "seed"),
    (["experiment=dc_mnist_100", "trainer.epochs=two"], "trainer.epochs"),
    (["experiment=dc_mnist_100", "-m"], "reproduce"),
])
def test_reproduce_bad_input_is_one_clear_error_and_writes_nothing(tmp_path, cli_env, args, key):
    r = run_cli(["reproduce", *args], cli_env, tmp_path)
    assert r.returncode == 2
    assert f"error: {key}:" in r.stdout and "Traceback" not in r.stdout + r.stderr
    assert list(tmp_path.iterdir()) == []


def test_reproduce_help_lists_the_recipes(tmp_path, cli_env):
    r = run_cli(["reproduce", "--help"], cli_env, tmp_path)
    assert r.returncode == 0 and all(n in r.stdout for n in RECIPES)


def test_train_with_a_recipe_names_the_run_dir_after_it(tmp_path, cli_env):
    tiny = [a for a in TINY if not a.startswith("model.intensity")]
    r = run_cli(["train", "experiment=dc_mnist_100", *tiny], cli_env, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    runs = list((tmp_path / "outputs").glob("*/*"))
    assert len(runs) == 1 and runs[0].name.endswith("_dc_mnist_100")
    summary = json.loads((runs[0] / "summary.json").read_text())
    # intensity: auto from the synthetic images' ink: R_ref / mean ink
    assert summary["input_rate"]["intensity"] == pytest.approx(128.0 * 102.4378 / summary["input_rate"]["mean_ink"])


def test_test_every_epoch_reports_each_epoch_and_the_selected_one(compose_cfg, tmp_path):
    cfg = compose_cfg("+model=snn_mlp", "data=digits", "data.limit_train=300", "data.limit_test=100",
                      "trainer.epochs=3", "trainer.test_every_epoch=true", "logger=plain", "device=cpu")
    s = train(cfg, tmp_path)
    by_epoch = s["test_accuracy_by_epoch"]
    assert len(by_epoch) == 3 and s["best_epoch_test_accuracy"] == max(by_epoch)
    # the model kept is the best epoch on the validation split; its test accuracy is that epoch's
    # (direct input, no dropout at test: the same numbers)
    assert s["test_accuracy"] == pytest.approx(by_epoch[s["best_epoch"] - 1])
    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [l["test_accuracy"] for l in lines if l["phase"] == "epoch_test"] == by_epoch


def test_a_mean_equal_to_the_figure_in_float32_reaches_it():
    # 9,939 and 9,941 of 10,000 saved as float32: their mean is 0.99399999 in float64, i.e. 99.40%
    import torch
    from snnrun.run.reproduce import mean_std, reaches
    accs = [float(torch.tensor(9939 / 10000, dtype=torch.float32)), float(torch.tensor(9941 / 10000, dtype=torch.float32))]
    mean, _ = mean_std(accs)
    assert mean < 0.994 and reaches(mean, 0.994)
    assert not reaches(float(torch.tensor(9939 / 10000, dtype=torch.float32)), 0.994)  # one test image short
