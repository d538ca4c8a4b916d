"""Gradient training: layer lists, layer-by-layer vs step-by-step, losses, the BPTT learner, the loop."""

import json

import pytest
import torch
import torch.nn.functional as F

from snnrun.errors import ConfigError
from snnrun.engine.layers import layers_to_network
from snnrun.components.learning import LearningRule
from snnrun.components.losses import Loss, first_spike_times
from snnrun.engine.network import build_network
from snnrun.components.neurons.trainable import TrainableNode
from snnrun.engine.experiment import build_experiment
from snnrun.engine.evaluation import evaluate_run
from snnrun.engine.loop import train
from tests.conftest import stop_request_at

SUMMARY_KEYS = {"test_accuracy", "best_decoder", "decoders", "train_images_per_s", "wall_s", "device",
                "seed", "versions", "n_train", "n_test", "train_samples", "epochs", "model", "dataset",
                "git_commit", "best_epoch", "val_accuracy"}
TINY_GRAD = ["data=synthetic", "data.n_train=120", "data.n_test=40", "trainer.epochs=4", "trainer.batch_size=16",
             "trainer.eval_batch_size=64", "logger=plain"]

CONV = {
    "conv": {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
    "bn": {"type": "batch_norm"},
    "lif1": {"type": "surrogate_lif", "surrogate": "atan"},
    "pool": {"type": "avg_pool", "kernel_size": 2},
    "drop": {"type": "dropout", "p": 0.3},
    "flat": {"type": "flatten"},
    "fc": {"type": "dense", "out_features": 5},
    "plif": {"type": "plif", "v_reset": None},
    "fc2": {"type": "dense", "out_features": 3},
    "if": {"type": "surrogate_if"},
    "mp_in": {"type": "dense", "out_features": 3},
    "out": {"type": "leaky_integrator"},
}


def params_and_grads(model):
    return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


class FF:
    """A network built from a layer list (the sugar), called like a feed-forward model:
    ``m(x, steps)`` presents a static input at every step, ``m(x_seq)`` a sequence."""

    def __init__(self, layers, in_shape=(1, 8, 8), step_mode="auto", trainable=True):
        node, self.readout = layers_to_network(layers, in_shape, step_mode=step_mode)
        self.net = build_network(node, dt=1.0)
        self.record_v = False
        for c in self.net.connections.values():
            c.set_trainable(trainable)

    def __getattr__(self, name):
        return getattr(self.net, name)

    def __call__(self, x, steps=None):
        r = self.readout
        if steps is None:
            out = self.net({"input": x}, record=(r,), record_v=(r,) if self.record_v else ())
        else:
            out = self.net({"input": x, "steps": steps}, record=(r,), record_v=(r,) if self.record_v else (),
                           static=("input",))
        return {"out": out["spikes"][r], "v": out["v"].get(r)}

    def group(self, name):
        return self.net.groups[name]

    def conn(self, name):
        return self.net.connections[name]


# -- layers and shapes ------------------------------------------------------------------------------
def test_shapes_are_inferred_layer_by_layer():
    m = FF(CONV)
    assert list(m.connections) == ["conv", "pool", "fc2", "mp_in"]  # chains named by their first op
    assert m.conn("conv").ops[0].w.shape == (4, 1, 3, 3)
    assert m.group("lif1").shape == (4, 8, 8)
    assert m.conn("pool").ops[-1].w.shape == (4 * 4 * 4, 5)
    assert m.group("plif").shape == (5,)
    assert all(c.delay == 0 for c in m.connections.values()) and m.layer_by_layer()
    out = m(torch.rand(2, 1, 8, 8), steps=3)
    assert out["out"].shape == (3, 2, 3) and out["v"] is None


@pytest.mark.parametrize("data,flat", [("digits", 64 * 2 * 2), ("mnist", 64 * 7 * 7)])
def test_csnn_follows_the_data_shape(compose_cfg, data, flat):
    from omegaconf import OmegaConf

    from snnrun.engine.network import build_network as build

    cfg = OmegaConf.to_container(compose_cfg("+model=csnn", f"data={data}"), resolve=True)
    net = build(cfg["model"]["network"], dt=1.0)
    assert net.connections["fc1"].ops[-1].w.shape == (flat, 128)
    assert net.connections["fc2"].w.shape == (128, 10) and net.groups["out"].n == 10


def test_layer_errors_name_the_connection():
    net = {"groups": {"X": {"type": "input", "n": [1, 8, 8]}, "Y": {"type": "surrogate_lif"}}}

    def build(conn, **groups):
        node = {"groups": {**net["groups"], **groups}, "connections": {"c": {"source": "X", "target": "Y", **conn}}}
        return build_network(node, dt=1.0)

    with pytest.raises(ConfigError) as e:
        build({"type": "conv2d", "out_channels": 2, "kernel_size": 9})
    assert e.value.key == "model.network.connections.c" and "[1, 8, 8]" in str(e.value)
    with pytest.raises(ConfigError) as e:
        build({"type": "denes", "out_features": 3})
    assert e.value.key == "model.network.connections.c.type" and "Did you mean 'dense'" in str(e.value)
    with pytest.raises(ConfigError) as e:
        build({"ops": [{"type": "flatten"}, {"type": "dense", "out": 3}]})
    assert e.value.key.startswith("model.network.connections.c.ops.1") and "'out'" in str(e.value)
    with pytest.raises(ConfigError) as e:  # the group's size disagrees with what the connection makes
        build({"ops": [{"type": "flatten"}, {"type": "dense", "out_features": 3}]}, Y={"type": "surrogate_lif", "n": 4})
    assert e.value.key.startswith("model.network.connections.c")
    with pytest.raises(ConfigError) as e:  # a cycle of delay-0 connections cannot be ordered
        build_network({"groups": {"A": {"type": "surrogate_lif", "n": 2}, "B": {"type": "surrogate_lif", "n": 2}},
                       "connections": {"ab": {"type": "dense", "source": "A", "target": "B", "delay": 0},
                                       "ba": {"type": "dense", "source": "B", "target": "A", "delay": 0}}}, dt=1.0)
    assert "delay: 1" in str(e.value)
    with pytest.raises(ConfigError) as e:
        layers_to_network({"fc": {"type": "dense", "out_features": 3}}, (4,))
    assert e.value.key == "model.layers.fc" and "ends with a neuron layer" in str(e.value)


def test_dropout_keeps_one_mask_for_all_steps():
    m = FF({"d": {"type": "dropout", "p": 0.5}, "n": {"type": "surrogate_if", "v_threshold": 100.0}}, (200,))
    m.record_v = True
    out = m(torch.ones(1, 200), steps=4)
    v = out["v"][:, 0]
    dropped = v[0] == 0
    assert 0.3 < dropped.float().mean() < 0.7
    assert (v[:, dropped] == 0).all()  # a dropped input is silent at every step
    m.eval()
    assert (m(torch.ones(1, 200), steps=2)["v"][0] > 0).all()


# -- multi-step == step-by-step ------------------------------------------------------------------------
def run(model, x, steps, seed=0):
    torch.manual_seed(seed)
    model.zero_grad()
    out = model(x, steps=steps)
    loss = (out["out"] * torch.linspace(0.5, 1.5, out["out"].shape[-1])).sum()
    if out["v"] is not None:
        loss = loss + out["v"].pow(2).sum()
    loss.backward()
    return out, params_and_grads(model)


@pytest.mark.parametrize("static", [True, False])
@pytest.mark.parametrize("train_mode", [True, False])
def test_multi_step_equals_step_by_step(static, train_mode):
    torch.manual_seed(0)
    layers = dict(CONV)
    if train_mode:  # time-shared batch norm normalises over T x B vs B per step in training: leave it out
        layers.pop("bn")
    multi = FF(layers, step_mode="multi")
    single = FF(layers, step_mode="single")
    single.load_state_dict(multi.state_dict())
    for m in (multi, single):
        m.record_v = True
        m.train(train_mode)
    x = torch.rand(3, 1, 8, 8) * 3 if static else torch.rand(5, 3, 1, 8, 8) * 3
    steps = 5 if static else None
    out_m, g_m = run(multi, x, steps)
    out_s, g_s = run(single, x, steps)
    assert out_m["v"].abs().sum() > 0 and multi.group("lif1").s.sum() > 0
    assert torch.equal(out_m["out"], out_s["out"])
    assert torch.allclose(out_m["v"], out_s["v"], atol=1e-6)
    assert set(g_m) == set(g_s) and len(g_m) == len([p for p in multi.parameters() if p.requires_grad])
    for k in g_m:
        assert torch.allclose(g_m[k], g_s[k], rtol=1e-4, atol=1e-6), k


def test_static_input_equals_the_repeated_sequence():
    torch.manual_seed(0)
    m = FF(CONV)
    m.record_v = True
    x = torch.rand(3, 1, 8, 8) * 3
    out_static, g_static = run(m, x, 4)
    out_seq, g_seq = run(m, x.unsqueeze(0).expand(4, *x.shape), None)
    assert torch.equal(out_static["out"], out_seq["out"])
    for k in g_static:
        assert torch.allclose(g_static[k], g_seq[k], rtol=1e-4, atol=1e-6), k


# -- losses --------------------------------------------------------------------------------------------
def test_spike_count_ce_and_rate_mse():
    s = torch.tensor([[[1.0, 0, 0]], [[1.0, 1, 0]], [[0.0, 1, 0]], [[1.0, 0, 0]]])  # (T=4, B=1, C=3)
    y = torch.tensor([1])
    ce = Loss.build("spike_count_ce")
    assert ce.loss({"out": s}, y).item() == pytest.approx(F.cross_entropy(torch.tensor([[3.0, 2, 0]]), y).item())
    assert ce.predict({"out": s}).tolist() == [0]
    mse = Loss.build({"type": "rate_mse", "on_rate": 0.8, "off_rate": 0.1})
    expected = ((0.75 - 0.1) ** 2 + (0.5 - 0.8) ** 2 + (0.0 - 0.1) ** 2) / 3
    assert mse.loss({"out": s}, y).item() == pytest.approx(expected)


def test_class_populations_vote_by_their_mean():
    """A readout of k * C neurons: each class's score is its k neurons' mean (Fang et al. 2021's
    FC100 + AvgPool(10) voting layer), for the loss, its prediction and the first-spike times."""
    # T=2, B=1, C=2 classes of k=2 neurons: counts per neuron [2, 0 | 1, 2] -> class means [1, 1.5]
    s = torch.tensor([[[1.0, 0, 1, 1]], [[1.0, 0, 0, 1]]])
    y = torch.tensor([0])
    ce = Loss.build("spike_count_ce")
    ce.check(4, 2)
    assert ce.scores({"out": s}).tolist() == [[1.0, 1.5]]
    assert ce.loss({"out": s}, y).item() == pytest.approx(F.cross_entropy(torch.tensor([[1.0, 1.5]]), y).item())
    assert ce.predict({"out": s}).tolist() == [1]
    mse = Loss.build("rate_mse")
    mse.check(4, 2)
    assert mse.loss({"out": s}, y).item() == pytest.approx(((0.5 - 1) ** 2 + (0.75 - 0) ** 2) / 2)
    ttfs = Loss.build("first_spike_ce")
    ttfs.check(4, 2)  # first spikes [0, T=2 | 0, 0] -> class means [1, 0] -> logits [-1, 0]
    assert ttfs.scores({"out": s}).tolist() == [[-1.0, 0.0]]
    ce.check(2, 2)
    assert ce.k == 1
    with pytest.raises(ConfigError, match="loss 'spike_count_ce'.*5 neurons.*2 classes") as e:
        ce.check(5, 2)
    assert e.value.key == "model.learner.loss"


def test_a_null_connection_removes_an_inherited_one(compose_cfg):
    """An experiment can drop a connection of the model file it builds on (``fc2: ~``)."""
    cfg = compose_cfg("+model=csnn", "data=digits", "model.network.connections.fc2=null",
                      "+model.network.connections.fc_out={source: lif3, target: out, ops: "
                      "[{type: dropout, p: 0.5}, {type: dense, out_features: 20}]}", "device=cpu")
    exp = build_experiment(cfg)
    assert "fc2" not in exp.network.connections and "fc_out" in exp.network.connections
    assert exp.network.groups["out"].n == 20 and exp.gradient.loss.k == 2


@pytest.mark.parametrize("mode,logits", [("final", [1.0, -1, 0]), ("max", [2.0, 0.5, 0]), ("mean", [1.0, -0.25, 0])])
def test_membrane_ce_modes(mode, logits):
    v = torch.tensor([[[0.0, 0.5, 0]], [[2.0, -0.5, 0]], [[1.0, 0.0, 0]], [[1.0, -1.0, 0]]])
    loss = Loss.build({"type": "membrane_ce", "mode": mode})
    y = torch.tensor([2])
    assert loss.loss({"out": v, "v": v}, y).item() == pytest.approx(
        F.cross_entropy(torch.tensor([logits]), y).item())
    with pytest.raises(ConfigError, match="final, max, mean"):
        Loss.build({"type": "membrane_ce", "mode": "last"})


def test_first_spike_times_and_loss():
    # neuron 0 first fires at t=2, neuron 1 at t=0, neuron 2 never (-> T=4)
    s = torch.tensor([[0.0, 1, 0], [0, 1, 0], [1, 0, 0], [1, 1, 0]]).unsqueeze(1).requires_grad_()
    assert first_spike_times(s).tolist() == [[2.0, 0.0, 4.0]]
    loss = Loss.build("first_spike_ce")
    assert loss.predict({"out": s}).tolist() == [1]
    out = loss.loss({"out": s}, torch.tensor([0]))
    out.backward()
    # making neuron 0 spike at t=0 or t=1 would move its first spike earlier: negative gradient there
    assert s.grad[0, 0, 0] < 0 and s.grad[1, 0, 0] < 0


# -- the learner -----------------------------------------------------------------------------------------
def learner(**kw):
    return LearningRule.registry.build({"type": "surrogate_bptt", **kw}, key="model.learner")


def test_optimizers_and_schedulers_by_torch_name():
    m = FF(CONV).net
    for name in ("Adam", "AdamW", "SGD", "RMSprop"):
        lr = learner(optimizer={"type": name, "lr": 0.01}, weight_decay=1e-3)
        lr.configure(m, epochs=3, steps_per_epoch=5)
        assert type(lr.optimizer).__name__ == name
        decayed, plain = lr.optimizer.param_groups
        assert decayed["weight_decay"] == 1e-3 and plain["weight_decay"] == 0.0
        assert all(p.dim() >= 2 for p in decayed["params"]) and all(p.dim() < 2 for p in plain["params"])
    lr = learner(scheduler={"type": "OneCycleLR"})
    lr.configure(m, epochs=2, steps_per_epoch=5)
    assert lr.interval == "step" and lr.scheduler.total_steps == 10
    lr = learner(scheduler={"type": "CosineAnnealingLR"})
    lr.configure(m, epochs=7, steps_per_epoch=5)
    assert lr.scheduler.T_max == 7
    lr = learner(scheduler={"type": "StepLR", "step_size": 1, "gamma": 0.5})
    lr.configure(m, epochs=3, steps_per_epoch=5)
    lr.optimizer.step()
    lr.end_epoch(None)
    assert lr.lr == pytest.approx(5e-4)
    lr = learner(scheduler={"type": "ReduceLROnPlateau", "patience": 0, "factor": 0.1})
    lr.configure(m, epochs=3, steps_per_epoch=5)
    lr.optimizer.step()
    lr.end_epoch(1.0)
    lr.end_epoch(2.0)
    assert lr.lr == pytest.approx(1e-4)


def test_learner_config_errors():
    with pytest.raises(ConfigError) as e:
        learner(optimizer={"type": "Adamm", "lr": 0.1})
    assert e.value.key == "model.learner.optimizer.type" and "Did you mean 'Adam'" in str(e.value)
    with pytest.raises(ConfigError) as e:
        learner(optimizer={"type": "SGD", "learning_rate": 0.1})
    assert e.value.key == "model.learner.optimizer.learning_rate" and "Allowed: dampening" in str(e.value)
    assert ", lr," in str(e.value) and "params" not in str(e.value)
    with pytest.raises(ConfigError) as e:
        learner(scheduler={"type": "Cosine"})
    assert e.value.key == "model.learner.scheduler.type" and "CosineAnnealingLR" in str(e.value)
    with pytest.raises(ConfigError) as e:
        learner(optimizer={"type": "Adam", "weight_decay": 0.1})
    assert e.value.key == "model.learner.optimizer.weight_decay"
    with pytest.raises(ConfigError, match="true/bf16") as e:
        learner(amp="fp16")
    assert e.value.key == "model.learner.amp" and "tf32" in str(e.value)


def test_a_gradient_learner_trains_what_no_local_rule_owns():
    node = {"groups": {"X": {"type": "input", "n": 2, "traces": True}, "H": {"type": "lif", "n": 3, "traces": True},
                       "Y": {"type": "surrogate_lif"}},
            "connections": {"XH": {"type": "dense", "source": "X", "target": "H"},
                            "HY": {"type": "dense", "source": "H", "target": "Y", "out_features": 2},
                            "fixed": {"type": "dense", "source": "X", "target": "Y", "learn": False}}}
    net = build_network(node, dt=1.0, learner={"stdp": {"type": "post_pre", "connection": "XH"},
                                               "bp": {"type": "stbp", "optimizer": {"type": "SGD", "lr": 0.1}}})
    assert set(net.learners) == {"stdp"}  # local rules run inside the simulation
    trained = {n for n, c in net.connections.items() if c.w.requires_grad}
    assert trained == {"HY"}
    with pytest.raises(ConfigError) as e:  # two gradient learners
        build_network(node, dt=1.0, learner={"a": {"type": "stbp"}, "b": {"type": "surrogate_bptt"}})
    assert e.value.key == "model.learner.b" and "one gradient learner" in str(e.value)
    with pytest.raises(ConfigError) as e:
        build_network(node, dt=1.0, learner={"type": "stbp", "connections": ["nope"]})
    assert e.value.key == "model.learner.connections" and "HY" in str(e.value)


def test_stca_sets_spaic_surrogate_and_grad_clip_bounds_the_step():
    m = FF(CONV)
    lr = LearningRule.registry.build({"type": "stca", "grad_clip": 1e-3, "optimizer": {"type": "SGD", "lr": 1.0},
                                      "loss": "membrane_ce"})
    lr.configure(m.net, epochs=1, steps_per_epoch=1)
    nodes = [n for n in m.net.modules() if isinstance(n, TrainableNode)]
    assert nodes and all(type(n.surrogate).__name__ == "STCARect" and n.surrogate.alpha == 0.5 for n in nodes)
    before = torch.cat([p.detach().flatten().clone() for p in m.net.parameters()])
    m.record_v = True
    lr.train_step(lambda: m(torch.rand(4, 1, 8, 8) * 3, steps=3), torch.tensor([0, 1, 2, 0]), torch.device("cpu"))
    after = torch.cat([p.detach().flatten() for p in m.net.parameters()])
    assert 0 < (after - before).norm() <= 1e-3 + 1e-6  # SGD lr 1: the step is the clipped gradient


def test_amp_is_a_no_op_on_cpu():
    import contextlib

    assert isinstance(learner(amp=True).autocast(torch.device("cpu")), contextlib.nullcontext)
    before = torch.get_float32_matmul_precision()
    with learner(amp="tf32").matmul_precision(torch.device("cpu")):
        assert torch.get_float32_matmul_precision() == before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_tf32_holds_for_the_step_and_is_restored_after_it():
    """amp: tf32 runs the step's products on TF32 (forward and backward) and leaves torch's
    setting as it was; a bf16 learner's autocast is off for it."""
    import contextlib

    m = FF(CONV)
    m.net.cuda()
    m.record_v = True
    lr = learner(amp="tf32", optimizer={"type": "SGD", "lr": 0.1}, loss="membrane_ce")
    lr.configure(m.net, epochs=1, steps_per_epoch=1)
    assert lr.precision == "tf32" and isinstance(lr.autocast(torch.device("cuda")), contextlib.nullcontext)
    seen = []

    def forward():
        seen.append(torch.get_float32_matmul_precision())
        return m(torch.rand(4, 1, 8, 8, device="cuda") * 3, steps=3)

    before = torch.get_float32_matmul_precision()
    lr.train_step(forward, torch.tensor([0, 1, 2, 0], device="cuda"), torch.device("cuda"))
    assert seen == ["high"] and torch.get_float32_matmul_precision() == before


# -- the training loop ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from snnrun.config import config_dir

    out = tmp_path_factory.mktemp("grad")
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("config", overrides=["+model=snn_mlp", *TINY_GRAD])
    (out / ".hydra").mkdir()
    (out / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    return cfg, out, train(cfg, out)


def test_gradient_run_writes_the_same_outputs_as_local_runs(mlp_run):
    cfg, out, summary = mlp_run
    for name in ("metrics.jsonl", "summary.json", "checkpoint.pt", "confusion.png", "resolved_config.yaml",
                 "weights.png"):
        assert (out / name).stat().st_size > 0, name
    saved = json.loads((out / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(saved)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in records] == ["train", "val"] * 4 + ["test"]
    assert [r["epoch"] for r in records[:8]] == [1, 1, 2, 2, 3, 3, 4, 4]
    for r in records[:8:2]:
        assert {"loss", "train_accuracy", "lr"} <= set(r)
    for r in records[1:8:2]:
        assert {"val_accuracy", "val_loss", "best_epoch"} <= set(r)
    # the validation and test loss are the learner's loss on those splits (cross-entropy > 0)
    assert all(r["val_loss"] > 0 for r in records[1:8:2]) and saved["test_loss"] > 0
    best = max(records[1:8:2], key=lambda r: (r["val_accuracy"], -r["val_loss"]))
    assert saved["best_epoch"] == best["epoch"] and saved["val_accuracy"] == best["val_accuracy"]
    assert saved["n_train"] + saved["n_val"] == 120 and saved["n_val"] == 12


def test_gradient_run_learns(mlp_run):
    assert mlp_run[2]["test_accuracy"] >= 0.9  # 4 synthetic classes, chance 0.25


def test_gradient_run_is_reproducible_and_re_evaluates(mlp_run, tmp_path):
    cfg, out, summary = mlp_run
    again = train(cfg, tmp_path)
    assert again["test_accuracy"] == summary["test_accuracy"] and again["best_epoch"] == summary["best_epoch"]
    result = evaluate_run(out)
    assert result["test_accuracy"] == summary["test_accuracy"]
    assert (out / "eval.json").is_file()


def test_gradient_run_resumes_after_a_stop(compose_cfg, tmp_path, mlp_run, monkeypatch):
    import snnrun.engine.loop as tg
    from snnrun.errors import TrainingInterrupted

    real = tg.StopOnSignal
    monkeypatch.setattr(tg, "StopOnSignal", stop_request_at(2))  # a SIGTERM during epoch 2
    with pytest.raises(TrainingInterrupted):
        train(compose_cfg("+model=snn_mlp", *TINY_GRAD), tmp_path)
    assert not (tmp_path / "summary.json").exists()
    monkeypatch.setattr(tg, "StopOnSignal", real)
    resumed = train(compose_cfg("+model=snn_mlp", *TINY_GRAD, "resume=true"), tmp_path)
    summary = mlp_run[2]
    assert resumed["resumed"] and resumed["test_accuracy"] == summary["test_accuracy"]
    assert resumed["best_epoch"] == summary["best_epoch"] and resumed["train_samples"] == summary["train_samples"]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("epoch") for r in records] == [1, 1, 2, 2, 3, 3, 4, 4, None]
    losses = [json.loads(line).get("loss") for line in (mlp_run[1] / "metrics.jsonl").read_text().splitlines()[:8]]
    assert [r.get("loss") for r in records[:8]] == losses  # the same run, interrupted or not


def test_model_config_errors(compose_cfg, tmp_path):
    with pytest.raises(ConfigError) as e:  # 7 outputs do not split into 4 class populations
        build_experiment(compose_cfg("+model=snn_mlp", *TINY_GRAD, "model.network.connections.fc2.ops.1.out_features=7"))
    assert e.value.key == "model.decoders" and "4" in str(e.value)
    with pytest.raises(ConfigError) as e:
        build_experiment(compose_cfg("+model=snn_mlp", *TINY_GRAD, "model.T=0"))
    assert e.value.key == "model.T"  # the model-level key the user typed (snnrun/model_schema.py)
    with pytest.raises(ConfigError) as e:
        build_experiment(compose_cfg("+model=snn_mlp", *TINY_GRAD, "model.learner.optimizer.type=Adagrad2"))
    assert e.value.key == "model.learner.optimizer.type"


@pytest.mark.parametrize("model", ["csnn", "plif_csnn", "csnn_sj"])
def test_conv_models_train_a_step(compose_cfg, tmp_path, model):
    summary = train(compose_cfg(f"+model={model}", *TINY_GRAD, "trainer.epochs=1", "model.channels=4",
                                "model.hidden=16"), tmp_path)
    assert summary["epochs"] == 1 and 0.0 <= summary["test_accuracy"] <= 1.0
    if model == "plif_csnn":
        state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["network"]
        assert "groups.lif1.w" in state and state["groups.lif1.w"].item() != 0.0  # tau was learned


@pytest.mark.skipif(torch.cuda.is_available(), reason="on CUDA tf32 changes the products (test above)")
def test_tf32_through_snnrun_train_is_float32_on_the_cpu(compose_cfg, tmp_path):
    """model.learner.amp=tf32 from the config tree trains, and on the CPU (where it is ignored) gives
    the float32 run's losses and confusion; torch's matmul precision is the same afterwards."""
    before = torch.get_float32_matmul_precision()
    runs = {amp: train(compose_cfg("+model=snn_mlp", *TINY_GRAD, "trainer.epochs=1", f"model.learner.amp={amp}"),
                       tmp_path / amp) for amp in ("false", "tf32")}
    for key in ("test_loss", "confusion", "val_accuracy"):
        assert runs["tf32"][key] == runs["false"][key]
    train_losses = {amp: [json.loads(line)["loss"] for line in (tmp_path / amp / "metrics.jsonl").open()
                          if '"phase": "train"' in line] for amp in runs}
    assert train_losses["tf32"] == train_losses["false"] and train_losses["false"]
    assert torch.get_float32_matmul_precision() == before


def test_poisson_encoder_and_single_step_mode(compose_cfg, tmp_path):
    summary = train(compose_cfg("+model=snn_mlp", *TINY_GRAD, "trainer.epochs=2", "model.network.step_mode=single",
                                "encoder@model.encoder=poisson", "model.encoder.time=8", "model.encoder.intensity=500"),
                    tmp_path)
    assert summary["test_accuracy"] > 0.5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_step(compose_cfg, tmp_path):
    summary = train(compose_cfg("+model=csnn", *TINY_GRAD, "trainer.epochs=1", "device=cuda",
                                "model.learner.amp=true"), tmp_path)
    assert summary["device"].startswith("cuda")


def test_more_config_errors_name_their_keys(compose_cfg):
    with pytest.raises(ConfigError) as e:
        learner(grad_clip=0)
    assert e.value.key == "model.learner.grad_clip"
    with pytest.raises(ConfigError) as e:
        learner(val_fraction=1.0)
    assert e.value.key == "model.learner.val_fraction"
    with pytest.raises(ConfigError) as e:
        learner(scheduler={"type": "StepLR", "step_size": 1, "interval": "batch"})
    assert e.value.key == "model.learner.scheduler.interval"
    with pytest.raises(ConfigError, match="a model config needs network"):
        from omegaconf import OmegaConf

        cfg = compose_cfg("+model=snn_mlp", *TINY_GRAD)
        OmegaConf.set_struct(cfg, False)
        del cfg.model["network"]
        build_experiment(cfg)
    with pytest.raises(ConfigError, match="membrane_ce needs"):
        Loss.build("membrane_ce").loss({"out": torch.rand(2, 3, 2), "v": None}, torch.tensor([0, 1, 0]))


def test_a_layer_list_is_the_same_graph_as_its_network(compose_cfg):
    """The `layers:` sugar builds the network written out in conf/model/snn_mlp.yaml."""
    from omegaconf import OmegaConf

    cfg = compose_cfg("+model=snn_mlp", *TINY_GRAD)
    written = build_experiment(cfg)
    OmegaConf.set_struct(cfg, False)
    del cfg.model["network"]
    cfg.model.readout = "out"
    cfg.model.layers = {"flat": {"type": "flatten"}, "fc1": {"type": "dense", "out_features": 512},
                        "bn1": {"type": "batch_norm"}, "hidden": "${model.neuron}",
                        "drop": {"type": "dropout", "p": 0.2},
                        "fc2": {"type": "dense", "out_features": 4},
                        "out": "${model.neuron}"}
    sugar = build_experiment(cfg)
    a = {k: tuple(v.shape) for k, v in written.network.state_dict().items()}
    b = {k.replace("flat.", "fc1.").replace("drop.", "fc2."): tuple(v.shape)
         for k, v in sugar.network.state_dict().items()}
    assert sorted(a.values()) == sorted(b.values()) and len(a) == len(b)
    assert sugar.network.layer_order == ["input", "hidden", "out"]


@pytest.mark.parametrize("ties, kept", [("lower_loss", [1, 1, 3, 3, 5]), ("later", [1, 2, 3, 4, 5])])
def test_best_ties_picks_the_lower_loss_or_the_later_epoch(ties, kept):
    """trainer.best_ties: epochs 1-5 with validation accuracies .5, .5, .7, .7, .8 and losses that
    rise within each tie (a model trained longer is more confident): lower_loss keeps the first of
    each tie, later (Fang et al.'s `max_val_accuracy <= val_accuracy`) the last."""
    from snnrun.engine.loop import improves

    best = {"epoch": 0, "val_accuracy": -1.0, "val_loss": float("inf")}
    got = []
    for epoch, (acc, loss) in enumerate([(.5, 1.0), (.5, 1.2), (.7, .9), (.7, .95), (.8, 1.5)], 1):
        if improves(best, acc, loss, ties):
            best = {"epoch": epoch, "val_accuracy": acc, "val_loss": loss}
        got.append(best["epoch"])
    assert got == kept
    # a lower loss on a tie moves lower_loss too; a model without a loss keeps the first epoch
    assert improves({"val_accuracy": .5, "val_loss": 1.0}, .5, 0.9, "lower_loss")
    assert not improves({"val_accuracy": .5, "val_loss": float("inf")}, .5, None, "lower_loss")
    assert improves({"val_accuracy": .5, "val_loss": float("inf")}, .5, None, "later")


def test_best_ties_rejects_other_values(compose_cfg, tmp_path):
    cfg = compose_cfg("+model=snn_mlp", *TINY_GRAD, "trainer.best_ties=latest")
    with pytest.raises(ConfigError) as e:
        train(cfg, tmp_path)
    assert e.value.key == "trainer.best_ties" and "later" in str(e.value)
