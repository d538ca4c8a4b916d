"""pytest plugin (``-p pytest_inflight``, with tools/gpu on PYTHONPATH): print the exception in flight
when a training run drops its deferred host work after an error (``HostQueue.clear``).

Why: on the GPU machine a test's worker has died with "Fatal Python error: Aborted" inside that
cleanup, which hides the error that started it (freeing pinned host copies after a CUDA error can
abort the process). ``bash tools/gpu/suite.sh 12 -p pytest_inflight`` prints it first.
"""

import sys
import traceback

from snnrun.engine import deferred

_clear = deferred.HostQueue.clear


def _clear_and_say(self):
    if sys.exc_info()[0] is not None:
        print("\n=== snnrun: the exception in flight while the deferred queue is dropped:", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
    _clear(self)


deferred.HostQueue.clear = _clear_and_say
