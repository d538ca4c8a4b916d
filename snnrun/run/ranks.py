"""Which process of a data-parallel run writes the run directory: rank 0 (torchrun's ``RANK``)."""

from __future__ import annotations

import functools
import os
from typing import Callable


def env_rank() -> int:
    """This process's rank as torchrun announces it (0 outside torchrun)."""
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    return env_rank() == 0


def rank_zero_only(fn: Callable) -> Callable:
    """Run ``fn`` on rank 0 only (writers of run files); other ranks get None."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs) if is_main() else None

    return wrapper
