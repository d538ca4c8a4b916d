"""Console output at 80 columns into a pipe (a log file, CI): no cell or description cut
mid-word, no ANSI escape codes, no third-party log noise (Optuna's alembic plugin lines)."""

import json
import re

import pytest

from snnrun.cli import preset_description
from snnrun.config import config_dir
from tests.conftest import TINY, cli_environ, run_cli

ESC = "\x1b"


@pytest.fixture(scope="module")
def env80():
    env = cli_environ()
    env["COLUMNS"] = "80"
    for k in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "CLICOLOR_FORCE"):
        env.pop(k, None)
    return env


def cells_intact(out: str, cells) -> None:
    """Each cell text appears whole on one line of ``out``."""
    lines = out.splitlines()
    for cell in cells:
        assert any(cell in line for line in lines), f"{cell!r} is not on one line of:\n{out}"


def listing_rows(out: str, title_start: str) -> dict[str, str]:
    """The rows of one ``snnrun list`` block, continuation lines joined: name -> description."""
    rows, name, in_block = {}, None, False
    for line in out.splitlines():
        if line.startswith(title_start):
            in_block = True
            continue
        if not in_block:
            continue
        if not line.startswith("  "):  # the next block's title
            break
        m = re.match(r"  (\S+)(?:\s{2,}(.*))?$", line)
        if m and not line.startswith("    "):
            name = m.group(1)
            rows[name] = m.group(2) or ""
        elif name is not None:  # (before the first row: the title's wrapped lines)
            rows[name] = (rows[name] + " " + line.strip()).strip()
    return rows


def test_list_at_80_columns_wraps_descriptions_at_words(env80, tmp_path):
    r = run_cli(["list"], env80, tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert ESC not in out
    assert "dc_inhibitory" in listing_rows(out, "neurons: presets")
    # every line fits, unless it is one word that cannot be broken
    assert all(len(line) <= 80 or " " not in line.strip() for line in out.splitlines())
    for group, title in (("model", "models"), ("neuron", "neurons: presets"), ("encoder", "encoders: presets")):
        rows = listing_rows(out, title)
        # the block lists the presets an override takes (dc_inhibitory ...), and nothing else
        assert set(rows) == {p.stem for p in (config_dir() / group).glob("*.yaml")}, (group, sorted(rows))
        for path in sorted((config_dir() / group).glob("*.yaml")):
            desc, kind = preset_description(path)
            assert path.stem in rows, (path.stem, out)
            if desc:  # the whole first sentence, rejoined from its wrapped lines
                assert rows[path.stem].endswith(desc), (path.stem, rows[path.stem], desc)


@pytest.fixture(scope="module")
def sweep80(tmp_path_factory, env80):
    """A real 2 x 2 sweep with the default console (logger=rich), piped at 80 columns."""
    root = tmp_path_factory.mktemp("sweep80")
    tiny = [a for a in TINY if not a.startswith("logger=")]
    r = run_cli(["-m", "train", "+model=diehl_cook", *tiny, "model.n_neurons=4,10", "seed=0,1",
                 f"hydra.sweep.dir={root / 'sweep'}"], env80, root)
    assert r.returncode == 0, r.stdout + r.stderr
    return root / "sweep", r.stdout + r.stderr


def test_sweep_table_at_80_columns(sweep80):
    sweep_dir, out = sweep80
    assert ESC not in out
    assert "setup plugin" not in out
    table = out[out.index(f"sweep {sweep_dir.name}") if f"sweep {sweep_dir.name}" in out else out.index("sweep "):]
    cells_intact(table, ["model.n_neurons", "seeds", "finished", "test_accuracy", "train_images_per_s",
                         "wall_s", "0,1", "2/2", "mean ± std (ddof=1) over seeds"])
    for d in sorted(sweep_dir.iterdir()):
        if (d / "summary.json").is_file():
            acc = json.loads((d / "summary.json").read_text())["test_accuracy"]
            assert f"{acc:.4f}"[:3] in table


def _fake_run(root, name, overrides, acc):
    d = root / name
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (d / "summary.json").write_text(json.dumps({"test_accuracy": acc, "train_images_per_s": 1234.5,
                                                "wall_s": 61.25}))


def test_compare_at_80_columns_narrow_and_wide(env80, tmp_path):
    # few columns: a grid; every header and value whole
    narrow = tmp_path / "narrow"
    _fake_run(narrow, "0", ["+model=diehl_cook", "seed=0"], 0.875)
    _fake_run(narrow, "1", ["+model=diehl_cook", "seed=1"], 0.9)
    r = run_cli(["compare", str(narrow)], env80, tmp_path)
    assert r.returncode == 0 and ESC not in r.stdout, r.stdout + r.stderr
    cells_intact(r.stdout, ["seeds", "finished", "test_accuracy", "train_images_per_s", "wall_s",
                            "0.8875 ± 0.0177", "1,234.5", "61.2"])
    assert all(len(line) <= 80 for line in r.stdout.splitlines())
    # long swept keys: more than 80 columns as a grid, so one block per row
    wide = tmp_path / "wide"
    keys = ["model.network.groups.Ae.theta_plus", "model.network.connections.X_Ae.wmax", "model.intensity"]
    for i, acc in enumerate((0.5, 0.75)):
        _fake_run(wide, str(i), ["+model=diehl_cook"] + [f"{k}={v}" for k, v in zip(keys, (0.05 * (i + 1), i + 1, 64 * (i + 1)))],
                  acc)
    r = run_cli(["compare", str(wide)], env80, tmp_path)
    assert r.returncode == 0 and ESC not in r.stdout, r.stdout + r.stderr
    cells_intact(r.stdout, keys + ["test_accuracy", "train_images_per_s", "0.5000", "0.7500", "0.05", "0.1",
                                   "128"])
    assert all(len(line) <= 80 for line in r.stdout.splitlines())


def test_optuna_sweep_logs_plain_lines(env80, tmp_path):
    pytest.importorskip("optuna")
    tiny = [a for a in TINY if not a.startswith("logger=")]
    r = run_cli(["train", "+model=diehl_cook", "hparams_search=diehl_cook_optuna", "hydra.sweeper.n_trials=1",
                 *tiny, f"hydra.sweep.dir={tmp_path / 'opt'}"], env80, tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert ESC not in out and "setup plugin" not in out
    assert "A new study created" in out  # Optuna's own lines still arrive, through Hydra's logging
