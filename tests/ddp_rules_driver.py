"""Every learner under data parallelism, in one process group (used by tests/test_distributed.py).

    torchrun --standalone --nproc_per_node=2 tests/ddp_rules_driver.py OUTDIR

builds, for each case of :data:`CASES` (every registered learning rule, some in several
settings), a tiny experiment through the real engine (``build_experiment``), attaches the
``DataParallel`` strategy of the torchrun session, trains it on a few fixed global batches, the
last smaller than the number of processes (``Experiment.present`` in train mode for local rules,
``Experiment.gradient_step`` -- a DistributedDataParallel wrapper -- for gradient learners),
presents two test batches in eval mode and, on rank 0, saves every case's network tensors,
readouts and losses to ``OUTDIR/ddp_rules.pt``. The test runs :func:`run_case` for the
same cases in its own process without a strategy and compares: a rank simulates only its rows of
each batch, so whatever a rule computes over the whole batch must go through the strategy.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

BATCH = 8        # the global batch: 4 rows per rank on 2 processes
# the global batches presented: the last is smaller than the world (one rank has no rows)
SIZES = (BATCH, BATCH, BATCH, 1)
N_CLASSES = 4

DATA = {"type": "synthetic", "shape": [1, 4, 4], "n_classes": N_CLASSES, "n_train": 40, "n_test": 8,
        "noise": 0.1, "seed": 0}
TRAINER = {"batch_size": BATCH, "compile": False, "cuda_graphs": False, "strategy": "ddp", "backend": "gloo"}

POISSON = {"type": "poisson", "time": 20.0, "dt": 1.0, "intensity": 600.0}
X = {"type": "input", "n": [1, 4, 4], "traces": True}
Y = {"type": "lif", "n": 8, "thresh": -60.0, "rest": -65.0, "reset": -65.0, "refrac": 2.0, "tc_decay": 20.0,
     "traces": True}
DENSE = {"type": "dense", "source": "X", "target": "Y", "wmin": 0.0, "wmax": 1.0,
         "init": {"type": "uniform", "low": 0.0, "high": 0.6}}
LABELS = {"type": "label_match", "n_classes": N_CLASSES}


def local(learner: dict, *, y: dict | None = None, conn: dict | None = None, lateral: bool = True) -> dict:
    """A model of Poisson input X -> LIF Y (with lateral inhibition) learnt by one local rule on X_Y."""
    connections = {"X_Y": conn or DENSE}
    if lateral:
        connections["Y_Y"] = {"type": "lateral", "source": "Y", "target": "Y", "weight": -1.0}
    return {"encoder": POISSON, "network": {"groups": {"X": X, "Y": y or Y}, "connections": connections},
            "readout": "Y", "decoders": ["spike_count"], "learner": {**learner, "connection": "X_Y"}}


def gradient(kind: str) -> dict:
    """A small direct-input MLP of surrogate LIF neurons trained by a gradient learner."""
    lif = {"type": "surrogate_lif", "tau": 2.0}
    return {"encoder": {"type": "direct", "time": 6, "dt": 1.0},
            "network": {"delay": 0, "groups": {"X": {"type": "input", "n": [1, 4, 4]}, "hidden": lif, "out": lif},
                        "connections": {
                            "fc1": {"source": "X", "target": "hidden", "ops": [
                                {"type": "flatten"}, {"type": "dense", "out_features": 12, "bias": True,
                                                      "init": {"type": "uniform", "low": -0.2, "high": 0.5}}]},
                            "fc2": {"source": "hidden", "target": "out", "ops": [
                                {"type": "dense", "out_features": N_CLASSES, "bias": True,
                                 "init": {"type": "uniform", "low": -0.2, "high": 0.8}}]}}},
            "readout": "out", "decoders": ["spike_count"],
            "learner": {"type": kind, "loss": {"type": "spike_count_ce"},
                        "optimizer": {"type": "Adam", "lr": 0.05}, "grad_clip": 1.0}}


CONV = {"type": "conv2d", "source": "X", "target": "Y", "kernel_size": 2, "wmin": 0.0, "wmax": 1.0,
        "init": {"type": "uniform", "low": 0.0, "high": 0.8}}
Y_CONV = {**Y, "n": [4, 3, 3]}
Y_TEMPOTRON = {"type": "current_lif", "n": 8, "thresh": -62.0, "rest": -65.0, "reset": -65.0, "refrac": 2.0,
               "tc_decay": 20.0, "tc_i_decay": 5.0}

# STDP on a hidden layer and a gradient learner on the readout: the local rule learns inside the
# gradient step's forward (DistributedDataParallel's), its updates reduced by the strategy
HYBRID = {"encoder": POISSON,
          "network": {"groups": {"X": X, "H": Y, "Y": {"type": "surrogate_lif", "tau": 2.0}},
                      "connections": {"XH": {**DENSE, "target": "H"},
                                      "HY": {"type": "dense", "source": "H", "target": "Y", "out_features": N_CLASSES,
                                             "init": {"type": "uniform", "low": -0.2, "high": 0.8}}}},
          "readout": "Y", "decoders": ["spike_count"],
          "learner": {"stdp": {"type": "post_pre", "connection": "XH", "nu": [1e-3, 1e-2]},
                      "bp": {"type": "stbp", "optimizer": {"type": "Adam", "lr": 0.05}}}}

# name -> (model, whether the user's code sets an external reward for each global batch)
CASES: dict[str, tuple[dict, bool]] = {
    "post_pre": (local({"type": "post_pre", "nu": [1e-3, 1e-2]}), False),
    "post_pre_owner": (local({"type": "post_pre", "nu": [1e-3, 1e-2], "reduction": "owner"}), False),
    "post_pre_owners_2": (local({"type": "post_pre", "nu": [1e-3, 1e-2], "reduction": "owner", "owners": 2}), False),
    "post_pre_soft_mean": (local({"type": "post_pre", "nu": [1e-3, 1e-2], "bounds": "soft",
                                  "reduction": "mean"}), False),
    "weight_dependent_post_pre": (local({"type": "weight_dependent_post_pre", "nu": [1e-3, 1e-2]}), False),
    "hebbian": (local({"type": "hebbian", "nu": [1e-3, 2e-3], "reduction": "mean"}), False),
    "nearest_online_stdp": (local({"type": "nearest_online_stdp", "nu": [1e-3, 1e-2]}), False),
    "full_online_stdp": (local({"type": "full_online_stdp", "nu": [1e-3, 1e-2], "bounds": "soft",
                                "reduction": "mean"}), False),
    "post_pre_int": (local({"type": "post_pre_int", "nu": [0.004, 0.02]}), False),
    "conv2d_stdp": (local({"type": "conv2d_stdp", "nu": [1e-3, 1e-2], "reduction": "mean"},
                          y=Y_CONV, conn=CONV, lateral=False), False),
    "mstdp": (local({"type": "mstdp", "nu": 0.01, "reward": LABELS}), False),
    "mstdp_external": (local({"type": "mstdp", "nu": 0.01, "reduction": "mean", "reward": {"type": "external"}}),
                       True),
    "mstdpet": (local({"type": "mstdpet", "nu": 0.05, "reduction": "mean",
                       "reward": {**LABELS, "scope": "sample"}}), False),
    "reward_switch_stdp": (local({"type": "reward_switch_stdp", "nu": 0.01, "reward": LABELS}), False),
    "reward_switch_stdp_soft": (local({"type": "reward_switch_stdp", "bounds": "soft", "reward": LABELS,
                                       "a_post_pos": 0.05, "a_pre_pos": -0.04, "a_post_neg": -0.05,
                                       "a_pre_neg": 0.04}), False),
    "tempotron": (local({"type": "tempotron", "n_classes": N_CLASSES, "nu": 0.05}, y=Y_TEMPOTRON,
                        lateral=False), False),
    "surrogate_bptt": (gradient("surrogate_bptt"), False),
    "stca": (gradient("stca"), False),
    "post_pre+stbp": (HYBRID, False),
    # SPAIC's rules
    "rstdp": (local({"type": "rstdp", "nu": 0.01, "reward": LABELS}), False),
    "bp_rstdp": (local({"type": "bp_rstdp", "nu": 0.01, "reward": LABELS}), False),
    "bp_rstdpet": (local({"type": "bp_rstdpet", "nu": 0.01, "reward": {**LABELS, "scope": "sample"}}), False),
    "conv2d_rstdp": (local({"type": "conv2d_rstdp", "nu": 1e-3, "reduction": "mean",
                            "reward": {**LABELS, "scope": "sample"}}, y=Y_CONV, conn=CONV, lateral=False), False),
    "meta_nearest_online_stdp": (local({"type": "meta_nearest_online_stdp", "nu": [1e-3, 1e-2]}), False),
    "stbp+rate_modulate": ({**gradient("stbp"), "learner": {
        "bp": gradient("stbp")["learner"],
        "rate": {"type": "rate_modulate", "connection": "fc1", "m_r": 2.0, "alpha": 0.05}}}, False),
}


def learner_types() -> set[str]:
    """The learner types the cases use."""
    types = set()
    for model, _ in CASES.values():
        node = model["learner"]
        types |= {node["type"]} if "type" in node else {sub["type"] for sub in node.values()}
    return types


def config(name: str) -> dict:
    model, _ = CASES[name]
    return {"model": model, "data": DATA, "trainer": TRAINER, "device": "cpu", "seed": 0}


def run_case(name: str, dp=None) -> dict[str, torch.Tensor]:
    """Train case ``name`` on global batches of :data:`SIZES` samples, with the strategy ``dp``
    (a DataParallel) or in one process; returns the network's floating tensors before
    (``init.<name>``) and after training, the readout counts of every batch (``counts.<i>``, the
    whole batch's) and of two test batches presented in eval mode (``eval.<n>``)."""
    from snnrun.engine.experiment import build_experiment

    exp = build_experiment(config(name))
    out: dict[str, torch.Tensor] = {f"init.{k}": v.detach().clone() for k, v in exp.network.state_dict().items()
                                    if torch.is_tensor(v) and v.is_floating_point()}
    if dp is not None:
        dp.attach(exp)
        if exp.gradient is not None and dp.world > 1:
            assert isinstance(exp.trained, torch.nn.parallel.DistributedDataParallel)
    if exp.gradient is not None:
        exp.gradient.configure(exp.network, epochs=1, steps_per_epoch=len(SIZES))
    exp.network.train()
    external = CASES[name][1]
    rewards = torch.Generator().manual_seed(1)
    start = 0
    for i, n in enumerate(SIZES):
        xb, yb = exp.train.x[start:start + n], exp.train.y[start:start + n]
        start += n
        exp.begin_presentation(yb if dp is None else yb[dp.shard(n)])  # each rank: its rows' labels
        if external:  # a reward per sample of the whole batch, set by the user's code
            for rule in exp.network.learners.values():
                rule.reward = torch.randn(n, generator=rewards)
        if exp.gradient is not None:
            loss, res = exp.gradient_step(xb, yb)
            counts = res["out"].detach().sum(0)
            total = float(loss) * len(counts)  # the batch mean loss, as the training loop sums it
            if dp is not None:
                counts = dp.gather_rows(counts, n)
                total = dp.sum_(total)[0]
            out[f"loss.{i}"] = torch.tensor(total / n)
        else:
            counts = exp.present(xb).counts
        out[f"counts.{i}"] = counts.detach().float().clone()
    exp.network.eval()
    for n in (BATCH, 1):  # inference on the learnt weights
        out[f"eval.{n}"] = exp.present(exp.data.test.x[:n]).counts.float().clone()
    for k, v in exp.network.state_dict().items():
        if torch.is_tensor(v) and v.is_floating_point():
            out[k] = v.detach().clone()
    return out


def main(outdir: str) -> None:
    from snnrun.engine import data_parallel

    torch.set_num_threads(1)
    results, timings = {}, {}
    with data_parallel.session(config("post_pre")) as dp:
        assert dp is not None and dp.world > 1, "run under torchrun with 2 or more processes"
        for name in CASES:
            t0 = time.perf_counter()
            results[name] = run_case(name, dp)
            timings[name] = time.perf_counter() - t0
        if dp.rank == 0:
            Path(outdir).mkdir(parents=True, exist_ok=True)
            torch.save({"results": results, "timings": timings, "world": dp.world}, Path(outdir) / "ddp_rules.pt")
        dp.all_reduce_(torch.zeros(1))  # every rank done (and the file written) before the group is left


if __name__ == "__main__":
    main(sys.argv[1])
