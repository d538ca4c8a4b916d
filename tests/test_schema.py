"""Structured configs: wrong types and misspelt keys fail when the config is composed, not mid-run."""

import subprocess

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError

from snnrun.errors import ConfigError
from snnrun.engine.experiment import build_experiment
from tests.conftest import TINY, snnrun_exe


@pytest.mark.parametrize("override, key", [("trainer.epochs=two", "trainer.epochs"), ("seed=1.5", "seed"),
                                           ("trainer.label_pass=maybe", "trainer.label_pass"),
                                           ("logger.progress=often", "logger.progress"),
                                           ("data.limit_train=lots", "data.limit_train")])
def test_wrong_type_fails_at_compose(compose_cfg, override, key):
    with pytest.raises(ConfigCompositionException) as e:
        compose_cfg("+model=diehl_cook", override)
    assert isinstance(e.value.__cause__, ValidationError) and key in str(e.value.__cause__)


@pytest.mark.parametrize("override", ["trainer.epocs=3", "logger.progres=false", "sed=1"])
def test_misspelt_key_on_the_command_line_fails_at_compose(compose_cfg, override):
    with pytest.raises(ConfigCompositionException, match="Could not override"):
        compose_cfg("+model=diehl_cook", override)


def test_misspelt_key_in_a_user_preset_fails_at_compose(compose_cfg, tmp_path):
    # a user's own trainer preset, found through hydra.searchpath, with a typo in a key
    (tmp_path / "trainer").mkdir()
    (tmp_path / "trainer" / "long.yaml").write_text("epochs: 30\nassign_evry: 100\n")
    with pytest.raises(ConfigCompositionException) as e:
        compose_cfg("+model=diehl_cook", f"hydra.searchpath=[file://{tmp_path}]", "trainer=long")
    assert "Key 'assign_evry' not in 'TrainerConfig'" in str(e.value) and "trainer.assign_evry" in str(e.value)


def test_values_are_converted_to_their_declared_type(compose_cfg):
    cfg = compose_cfg("+model=diehl_cook", "trainer.epochs=3", "trainer.label_pass=false")
    assert cfg.trainer.epochs == 3 and cfg.trainer.label_pass is False and cfg.resume is False


def test_dataset_options_stay_open_and_are_checked_by_the_registry(compose_cfg):
    cfg = compose_cfg("+model=diehl_cook", *TINY, "+data.nois=0.2")  # composes: dataset-specific keys vary
    with pytest.raises(ConfigError) as e:
        build_experiment(cfg)
    assert "nois" in str(e.value)


@pytest.mark.parametrize("logger", ["rich", "plain", "csv", "tensorboard", "[plain,csv,tensorboard]"])
def test_every_logger_preset_composes(compose_cfg, logger):
    cfg = compose_cfg("+model=diehl_cook", f"logger={logger}")
    assert isinstance(cfg.logger.progress, bool)


def test_cli_type_error_is_one_message(cli_env, tmp_path):
    r = subprocess.run(snnrun_exe() + ["train", "+model=diehl_cook", "trainer.epochs=two"], capture_output=True,
                       text=True, env=cli_env, cwd=tmp_path, timeout=120)
    assert r.returncode != 0 and "trainer.epochs" in r.stderr + r.stdout
    assert "Traceback" not in r.stderr + r.stdout and not (tmp_path / "outputs").exists()
