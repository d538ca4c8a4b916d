"""pytest plugin (``-p pytest_inflight``, with tools/gpu on PYTHONPATH): print the exception in flight
when a training run drops its deferred host work after an error (``HostQueue.clear``).

Why: on the GPU machine a test's worker has died with "Fatal Python error: Aborted" inside that
cleanup, which hides the error that started it (freeing pinned host copies after a CUDA error can
abort the process). ``bash tools/gpu/suite.sh 12 -p pytest_inflight`` prints it first. It goes
to stderr and, since pytest captures a test's stderr and a crashed worker's capture is lost, also
to ``$OUT/inflight.log`` (``/tmp/inflight.log`` where OUT is unset), written and synced at once.
"""

import os
import sys
import traceback

from snnrun.engine import deferred

_clear = deferred.HostQueue.clear


def _clear_and_say(self):
    if sys.exc_info()[0] is not None:
        text = ("\n=== snnrun: the exception in flight while the deferred queue is dropped "
                f"(worker {os.environ.get('PYTEST_XDIST_WORKER', '-')}, test "
                f"{os.environ.get('PYTEST_CURRENT_TEST', '?')}):\n" + traceback.format_exc())
        print(text, file=sys.stderr)
        sys.stderr.flush()
        with open(os.path.join(os.environ.get("OUT") or "/tmp", "inflight.log"), "a") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    _clear(self)


deferred.HostQueue.clear = _clear_and_say
