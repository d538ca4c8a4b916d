"""A compiled time step per network (Network.compile_step): each new network starts from a clean
dynamo cache, so the runs of a sequential sweep do not pile up guard entries on the shared
``Network.step`` code until dynamo gives up and runs the step in eager Python (which made the
second seed of ``snnrun reproduce experiment=dc_mnist_6400`` six times slower on an H200)."""

import torch
import torch._dynamo
from torch._dynamo.eval_frame import _debug_get_cache_entry_list

from snnrun.engine.experiment import build_experiment

from .conftest import TINY, compose_config


def test_a_new_network_drops_the_compiled_code_of_the_last_and_allows_its_own_variants():
    def scale(x):
        return x * 2 + 1

    compiled = torch.compile(scale, backend="eager")
    compiled(torch.ones(3))
    assert len(_debug_get_cache_entry_list(scale.__code__)) == 1
    exp = build_experiment(compose_config("+model=diehl_cook", *TINY, "trainer.compile=true", "device=cpu"))
    assert exp.network.compiled
    # the previous run's entries are gone (a new network: its own guards, from an empty cache)
    assert len(_debug_get_cache_entry_list(scale.__code__)) == 0
    # train/eval x full and last partial batch x first/later step of a presentation: room for all
    assert torch._dynamo.config.recompile_limit >= 16
