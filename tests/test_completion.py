"""Shell tab completion (Hydra's --shell-completion) through the installed `snnrun` command."""

import os
import subprocess
import sys
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


_INSTALLED: list[str] = []


def _complete(line: str, env, cwd) -> tuple[list[str], float]:
    """What the installed bash completer offers for ``line`` (cursor at its end), and its time."""
    if not _INSTALLED:
        _INSTALLED.append(subprocess.run(snnrun_exe() + ["train", "-sc", "install=bash"], capture_output=True,
                                         text=True, env=env, cwd=cwd, timeout=120).stdout)
    script = _INSTALLED[0]
    script += f'\nCOMP_LINE="{line}"; read -a w <<< "$COMP_LINE"; COMP_CWORD=${{#w[@]}}; ' \
              '[[ "$COMP_LINE" == *" " ]] || COMP_CWORD=$((COMP_CWORD-1)); COMP_POINT=${#COMP_LINE}; ' \
              's=$(date +%s%N); hydra_bash_completion; e=$(date +%s%N); echo "$(( (e-s)/1000000 ))"; ' \
              'echo "${COMPREPLY[@]}"\n'
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)
    ms, _, words = r.stdout.partition("\n")
    return words.split(), int(ms) / 1000.0


@pytest.fixture
def comp_env(cli_env):
    if len(snnrun_exe()) > 1:
        pytest.skip("completion needs the installed snnrun console script")
    return dict(cli_env, PATH=f"{Path(snnrun_exe()[0]).parent}{os.pathsep}{cli_env.get('PATH', '')}")


def test_completion_of_subcommands_list_kinds_and_run_dirs(comp_env, tmp_path):
    (tmp_path / "outputs" / "2026-01-01").mkdir(parents=True)
    cases = {"snnrun ev": ["eval"], "snnrun re": ["resume", "report", "reproduce"], "snnrun -m tr": ["train"],
             "snnrun list ne": ["neurons"], "snnrun eval ": ["run_dir="],
             "snnrun eval run_dir=outputs/": ["run_dir=outputs/2026-01-01/"]}
    for line, expected in cases.items():
        got, seconds = _complete(line, comp_env, tmp_path)
        assert got == expected, (line, got)


def test_completion_of_overrides_uses_the_commands_own_config(comp_env, tmp_path):
    got, _ = _complete("snnrun probe neuron=izh", comp_env, tmp_path)
    assert got == ["neuron=izhikevich"]
    got, _ = _complete("snnrun bench workload=dc_", comp_env, tmp_path)
    assert set(got) == {"workload=dc_train", "workload=dc_eval"}
    got, _ = _complete("snnrun train trainer.epo", comp_env, tmp_path)
    assert got == ["trainer.epochs="]
    got, _ = _complete("snnrun reproduce experiment=dc_mnist_4", comp_env, tmp_path)
    assert got == ["experiment=dc_mnist_400"]


def test_override_completion_imports_no_torch(cli_env, tmp_path):
    code = ("import sys, os; os.environ['COMP_LINE'] = 'snnrun train +model=diehl_cook model.n'; "
            "from snnrun.cli import main; sys.argv = ['snnrun', '-sc', 'query=bash']; main(); "
            "print('TORCH' if 'torch' in sys.modules else 'NO TORCH', 'hydra' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env, cwd=tmp_path,
                       timeout=120)
    assert "model.n_neurons=" in r.stdout and "NO TORCH" in r.stdout, r.stdout + r.stderr


def test_subcommand_completion_imports_neither_hydra_nor_torch(cli_env, tmp_path):
    # what keeps a TAB quick (speed itself is not asserted in a test)
    code = ("import sys, os; os.environ['COMP_LINE'] = 'snnrun ev'; "
            "from snnrun.cli import main; sys.argv = ['snnrun', '-sc', 'query=bash']; main(); "
            "print('TORCH' if 'torch' in sys.modules else 'NO TORCH', 'HYDRA' if 'hydra' in sys.modules else 'NO HYDRA')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env, cwd=tmp_path,
                       timeout=120)
    assert "eval" in r.stdout and "NO TORCH" in r.stdout and "NO HYDRA" in r.stdout, r.stdout + r.stderr


def test_list_kinds_of_the_completer_are_those_of_snnrun_list():
    from snnrun.cli import registries
    from snnrun.completion import LIST_KINDS

    assert set(LIST_KINDS) == set(registries()) | {"models"}
