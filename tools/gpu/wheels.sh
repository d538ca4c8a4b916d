#!/usr/bin/env bash
# Wheels for a GPU machine that has torch, numpy, scikit-learn, matplotlib, rich and pytest but not
# snnrun's config and sweep stack (see setup.sh). Run here, in the repository root, with the
# project's venv active (the versions are this venv's):  bash tools/gpu/wheels.sh [.whl]
# .whl/        hydra and its plugins' needs, the docs builder, nir, hatchling (test_packaging)
# .whl/peers/  spikingjelly and loguru (tools/peer_lif.py, tools/peer_csnn.py)
set -euo pipefail
out=${1:-.whl}
mkdir -p "$out/peers"
pkgs=(hydra-core omegaconf hydra-optuna-sweeper optuna alembic sqlalchemy colorlog mako cmaes cliff cmd2
      stevedore autopage prettytable pyperclip rich-argparse prompt-toolkit hydra-joblib-launcher
      hydra-submitit-launcher submitit nir mkdocs mkdocs-autorefs mkdocs-get-deps mkdocstrings
      mkdocstrings-python griffelib ghp-import mergedeep pyyaml-env-tag pymdown-extensions watchdog
      platformdirs hatchling trove-classifiers tomlkit)
reqs=()
for p in "${pkgs[@]}"; do
  v=$(python -m pip show "$p" 2>/dev/null | awk '/^Version:/{print $2}')
  [ -n "$v" ] || { echo "$p is not installed here: pip install -e '.[test]' first" >&2; exit 1; }
  reqs+=("$p==$v")
done
plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${plat[@]}" \
  -d "$out" "${reqs[@]}"
# antlr4-python3-runtime 4.9.3 (omegaconf's parser) is published as a source archive only
python -m pip wheel -q --no-deps -w "$out" "antlr4-python3-runtime==$(python -m pip show antlr4-python3-runtime | awk '/^Version:/{print $2}')"
python -m pip download -q --no-deps --only-binary=:all: -d "$out/peers" spikingjelly==2.0.0 loguru
du -sh "$out"
