"""`snnrun report run_dir=DIR`: summary, config diff against the model's defaults, figures."""

import json
import subprocess

import pytest

from tests.conftest import TINY, snnrun_exe

FIGURES = ("learning_curves.png", "confusion.png", "weights.png", "raster.png", "membrane.png")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    import os

    env = dict(os.environ, COLUMNS="200")
    root = tmp_path_factory.mktemp("report")
    run_dir = root / "run"
    r = subprocess.run(snnrun_exe() + ["train", "+model=diehl_cook", *TINY, f"hydra.run.dir={run_dir}"],
                       capture_output=True, text=True, env=env, cwd=root, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return run_dir, env


def test_report_prints_summary_and_diff_and_draws_figures(finished_run):
    run_dir, env = finished_run
    for name in FIGURES:
        (run_dir / name).unlink(missing_ok=True)
    r = subprocess.run(snnrun_exe() + ["report", f"run_dir={run_dir}"], capture_output=True, text=True, env=env,
                       cwd=run_dir.parent, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert f"{summary['test_accuracy']:.4f}" in r.stdout and "proportion_weighting" in r.stdout
    # TINY's overrides against the defaults: the data group choice, then plain values
    diff_rows = {line.split("│")[1].strip(): line for line in r.stdout.splitlines() if line.count("│") == 4}
    assert "(data)" in diff_rows and "synthetic" in diff_rows["(data)"]
    assert "model.n_neurons" in diff_rows and "10" in diff_rows["model.n_neurons"]
    assert "model.time" in diff_rows and "seed" not in diff_rows  # unchanged keys are not listed
    for name in FIGURES:
        assert (run_dir / name).stat().st_size > 1000, name


def test_summary_keeps_the_confusion_matrix(finished_run):
    run_dir, _ = finished_run
    s = json.loads((run_dir / "summary.json").read_text())
    cm = s["confusion"]
    assert sum(map(sum, cm)) == s["n_test"]
    assert sum(cm[i][i] for i in range(len(cm))) / s["n_test"] == pytest.approx(s["test_accuracy"])


def test_report_of_a_non_run_is_a_clear_error(finished_run, tmp_path):
    _, env = finished_run
    r = subprocess.run(snnrun_exe() + ["report", f"run_dir={tmp_path}"], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and "not a snnrun run directory" in r.stdout and "Traceback" not in r.stdout + r.stderr
    r = subprocess.run(snnrun_exe() + ["report"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and "run_dir" in r.stdout
