"""Mixed learners (conf/model/stdp_features_readout.yaml): STDP learns the feature layer inside
the simulation while a surrogate-gradient learner trains the readout, in one run."""

import json

import torch

from snnrun.components.learning.gradient import SurrogateBPTT
from snnrun.components.learning.stdp import PostPreSTDP
from snnrun.engine.loop import Trainer

TINY_MIXED = ["+model=stdp_features_readout", "data=synthetic", "data.n_train=160", "data.n_test=80",
              "model.n_neurons=40", "model.time=30", "trainer.epochs=4", "trainer.batch_size=16",
              "logger=plain", "device=cpu"]


def test_stdp_features_and_gradient_readout_both_learn(compose_cfg, tmp_path):
    cfg = compose_cfg(*TINY_MIXED)
    trainer = Trainer(cfg, tmp_path)
    exp = trainer.exp
    assert set(exp.learners) == {"stdp", "readout"}
    assert isinstance(exp.learners["stdp"], PostPreSTDP) and isinstance(exp.learners["readout"], SurrogateBPTT)
    assert set(exp.network.learners) == {"stdp"}  # the local rule runs inside the simulation
    conns = exp.network.connections
    assert exp.learners["stdp"].connection is conns["X_H"]
    assert [n for n, c in conns.items() if c.w.requires_grad] == ["H_Y"]  # the gradient learner's share
    before = {n: c.w.detach().clone() for n, c in conns.items()}
    theta0 = exp.network.groups["H"].theta.detach().clone()

    summary = trainer.run()

    after = {n: c.w.detach() for n, c in conns.items()}
    assert not torch.equal(before["X_H"], after["X_H"]), "STDP did not change X_H"
    assert not torch.equal(before["H_Y"], after["H_Y"]), "the gradient learner did not change H_Y"
    assert torch.equal(before["H_H"], after["H_H"])  # lateral inhibition is fixed
    assert float(after["X_H"].min()) >= 0.0 and float(after["X_H"].max()) <= 1.0  # STDP's clamp
    assert not torch.equal(theta0, exp.network.groups["H"].theta)  # adaptive thresholds learned
    assert summary["learners"] == {"stdp": "post_pre", "readout": "surrogate_bptt"}
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if r["phase"] == "train"]
    assert len(losses) == 4 and losses[-1] < losses[0] - 0.1, losses  # the readout was trained
    assert summary["test_accuracy"] > 0.5, summary["test_accuracy"]   # 4 classes: chance 0.25
