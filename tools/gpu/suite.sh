#!/usr/bin/env bash
# The whole test suite on the GPU machine (wheels carried in .whl; see setup.sh):
#   bash tools/gpu/suite.sh [workers, default 12] [more pytest arguments, e.g. -p pytest_inflight]
# Prints the failures and the count; the whole log goes to $OUT/suite.log where OUT is set.
source tools/gpu/setup.sh || exit 1
set -o pipefail
log=${OUT:-/tmp}/suite.log
workers=${1:-12}; shift || true
PYTHONPATH=$PYTHONPATH:$PWD/tools/gpu python3 -m pytest -q -n "$workers" -p no:cacheprovider "$@" 2>&1 | tee "$log" | grep -E "^(FAILED|ERROR)|passed|failed"
