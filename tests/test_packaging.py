"""The wheel ships the config tree, and an installed snnrun finds it there."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from snnrun.config import config_dir

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    # built without isolation (no index is needed), so the build backend must be installed: the
    # test extra brings it; a bare environment (e.g. a GPU image with its own torch) skips
    pytest.importorskip("hatchling", reason="the build backend (hatchling, in the test extra) is not installed")
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                        "-w", str(out), str(REPO)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return next(out.glob("snnrun-*.whl"))


def test_wheel_contains_every_config(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"snnrun/conf/{p.relative_to(config_dir()).as_posix()}" for p in config_dir().rglob("*.yaml")}
    assert "snnrun/conf/config.yaml" in expected and "snnrun/conf/model/diehl_cook.yaml" in expected
    assert expected <= names
    assert "snnrun/cli.py" in names
    assert "snnrun/engine/kernels/dc_presentation.c" in names  # the CPU loop is built from it where installed


def test_installed_wheel_finds_packaged_configs(wheel, tmp_path):
    # unpack the wheel (as pip would place it) and import snnrun from there, away from the repo
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("import snnrun.config as c; print(c.config_dir());"
            "from snnrun.cli import main; main(['train', '--cfg', 'job', '+model=diehl_cook'])")
    # dependencies found through PYTHONPATH (e.g. carried wheels) stay visible; the repo does not
    deps = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
            if p and Path(p).resolve() != REPO]
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                       env={"PYTHONPATH": os.pathsep.join([str(site), *deps]), "PATH": "/usr/bin:/bin"},
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert str(site / "snnrun" / "conf") in r.stdout
    assert "n_neurons: 100" in r.stdout
