# Source on the GPU machine, in the repository root, with the wheels of wheels.sh carried in .whl:
#   source tools/gpu/setup.sh
# Installs them into /tmp/site, puts snnrun (this tree) on PYTHONPATH and an `snnrun` command on PATH.
# (a python3 that already imports hydra, e.g. a venv made with pip install -e ".[test]", needs none)
if ! python3 -c "import hydra" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    >/dev/null 2>&1 || { echo "installing .whl/*.whl into /tmp/site failed" >&2; return 1; }
fi
export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
mkdir -p /tmp/bin && printf '#!/bin/sh\nexec python3 -m snnrun "$@"\n' > /tmp/bin/snnrun && chmod +x /tmp/bin/snnrun
export PATH=/tmp/bin:$PATH
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null
python3 -c "import torch, hydra; print('torch', torch.__version__, 'hydra', hydra.__version__)"
