"""Shell tab completion (Hydra's --shell-completion) through the installed `snnrun` command."""

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import snnrun_exe


def test_bash_completion_installs_and_completes_through_the_subcommand(cli_env, tmp_path):
    if len(snnrun_exe()) > 1:
        pytest.skip("completion needs the installed snnrun console script")
    cli_env = dict(cli_env, PATH=f"{Path(snnrun_exe()[0]).parent}{os.pathsep}{cli_env.get('PATH', '')}")
    install = subprocess.run(snnrun_exe() + ["train", "-sc", "install=bash"], capture_output=True, text=True,
                             env=cli_env, cwd=tmp_path, timeout=120)
    assert install.returncode == 0 and "complete -o nospace -o default -F hydra_bash_completion snnrun" in install.stdout
    # what the installed bash function runs on <TAB>: the whole line, subcommand included
    script = install.stdout + '\nCOMP_LINE="snnrun train +model=diehl_cook logger="; COMP_CWORD=3; ' \
                              'COMP_POINT=${#COMP_LINE}; hydra_bash_completion; echo "${COMPREPLY[@]}"\n'
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=cli_env, cwd=tmp_path,
                       timeout=120)
    assert set(r.stdout.split()) >= {"logger=rich", "logger=plain", "logger=csv", "logger=tensorboard"}, \
        r.stdout + r.stderr
