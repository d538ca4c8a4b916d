"""The gradient training step as one CUDA graph (snnrun/engine/graphed_step.py): the same
parameters, losses and learning-rate schedule as the eager step; eager on the CPU."""

import pytest
import torch

from snnrun.engine.experiment import build_experiment

CSNN = ("+model=csnn", "data=synthetic", "data.shape=[1,12,12]", "data.n_classes=4", "data.n_train=64",
        "data.n_test=8", "model.T=3", "model.channels=4", "model.hidden=16", "seed=3")


def steps(exp, batches, epochs):
    """Train ``batches`` per epoch (each (x, y)) for ``epochs``, the scheduler stepping per epoch;
    returns the losses (host floats)."""
    exp.network.train()
    losses = []
    for _ in range(epochs):
        for x, y in batches:
            loss, out = exp.gradient_step(x, y)
            assert out["out"].shape[1] == len(x)
            losses.append(loss)
        exp.gradient.end_epoch(None)
    return [float(v) for v in losses]


def batches_of(exp, device, sizes):
    x, y = exp.train.x.to(device), exp.train.y.to(device)
    assert sum(sizes) <= len(x), f"{sizes} need more than the {len(x)} training samples"
    out, start = [], 0
    for n in sizes:
        out.append((x[start:start + n], y[start:start + n]))
        start += n
    return out


def test_on_the_cpu_the_step_stays_eager(compose_cfg):
    exp = build_experiment(compose_cfg(*CSNN, "device=cpu", "trainer.cuda_graphs=true"))
    exp.configure_gradient(epochs=2, steps_per_epoch=4)
    assert exp.graphed is None and not exp.gradient.capturable
    assert isinstance(exp.gradient.optimizer.param_groups[0]["lr"], float)
    losses = steps(exp, batches_of(exp, torch.device("cpu"), [16, 16]), epochs=2)
    assert all(v == v for v in losses) and exp.capture_s == 0.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("scheduler", [("CosineAnnealingLR",),
                                       ("OneCycleLR", "+model.learner.scheduler.cycle_momentum=false"),
                                       ("CosineAnnealingLR", "model.learner.ema=0.9")])
def test_a_captured_step_trains_as_the_eager_step(compose_cfg, scheduler):
    """Same seed, same batches (including an epoch's smaller last batch, which runs eagerly until
    its own shape is captured), cosine schedule per epoch / one-cycle per batch: the captured
    graph reaches the same parameters and losses as eager steps, and the rate the scheduler sets
    reaches the replays."""
    dev = torch.device("cuda")
    sizes = [16, 16, 16, 8]  # an epoch: three full batches and a smaller last one
    epochs = 6               # >= warm-up steps of both shapes, then replays with new rates
    results = {}
    for graphs in (False, True):
        exp = build_experiment(compose_cfg(*CSNN, "device=cuda", f"trainer.cuda_graphs={graphs}",
                                           f"model.learner.scheduler.type={scheduler[0]}", *scheduler[1:]))
        exp.configure_gradient(epochs=epochs, steps_per_epoch=len(sizes))
        assert (exp.graphed is not None) == graphs and exp.gradient.capturable == graphs
        losses = steps(exp, batches_of(exp, dev, sizes), epochs)
        average = exp.gradient.average  # model.learner.ema: updated inside the graph too
        results[graphs] = (losses, {k: v.detach().clone() for k, v in exp.network.state_dict().items()},
                           exp.gradient.lr, [t.clone() for t in average.avg] if average else [])
        if graphs:
            assert len(exp.graphed._graphs) == 2 and exp.graphed.enabled  # both shapes replayed
            assert exp.capture_s > 0
    (l_eager, p_eager, lr_eager, a_eager), (l_graph, p_graph, lr_graph, a_graph) = results[False], results[True]
    assert len(a_eager) == len(a_graph) and (len(a_eager) > 0) == ("ema" in " ".join(scheduler))
    for a, b in zip(a_graph, a_eager):
        assert torch.allclose(a.float(), b.float(), rtol=2e-3, atol=2e-5)
    assert lr_graph == pytest.approx(lr_eager, rel=1e-6) and lr_eager != pytest.approx(3e-3)
    assert l_graph == pytest.approx(l_eager, rel=2e-3, abs=1e-5)
    for k in p_eager:
        assert torch.allclose(p_graph[k].float(), p_eager[k].float(), rtol=2e-3, atol=2e-5), k


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_captured_run_resumes_from_its_checkpoint(compose_cfg, tmp_path):
    """A checkpoint of a graphed run holds the rate as a tensor; loading it into a new run keeps
    the optimizer capturable (rate on the device) and the run goes on."""
    exp = build_experiment(compose_cfg(*CSNN, "device=cuda"))
    exp.configure_gradient(epochs=2, steps_per_epoch=4)
    steps(exp, batches_of(exp, torch.device("cuda"), [16, 16, 16, 8]), epochs=1)
    path = tmp_path / "state.pt"
    torch.save(exp.gradient.state_dict(), path)
    again = build_experiment(compose_cfg(*CSNN, "device=cuda"))
    again.configure_gradient(epochs=2, steps_per_epoch=4)
    again.gradient.load_state_dict(torch.load(path, weights_only=True, map_location="cpu"))
    lr = again.gradient.optimizer.param_groups[0]["lr"]
    assert isinstance(lr, torch.Tensor) and lr.is_cuda and float(lr) == pytest.approx(exp.gradient.lr)
    steps(again, batches_of(again, torch.device("cuda"), [16, 16, 16, 8]), epochs=1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_scheduler_that_cycles_momentum_keeps_the_step_eager(compose_cfg):
    """OneCycleLR's default cycle_momentum replaces Adam's betas every batch: values a captured
    step would have frozen, so that step stays eager."""
    exp = build_experiment(compose_cfg(*CSNN, "device=cuda", "model.learner.scheduler.type=OneCycleLR"))
    exp.configure_gradient(epochs=1, steps_per_epoch=4)
    assert exp.graphed is None
    steps(exp, batches_of(exp, torch.device("cuda"), [16, 16, 16, 8]), epochs=1)


def test_a_step_returns_its_outputs_without_their_autograd_graph(compose_cfg):
    """The step's outputs hold no autograd graph: it would keep the forward's saved activations
    alive while the caller holds them (and, for a captured step's static outputs, for good)."""
    exp = build_experiment(compose_cfg(*CSNN, "device=cpu"))
    exp.configure_gradient(epochs=1, steps_per_epoch=1)
    exp.network.train()
    x, y = batches_of(exp, torch.device("cpu"), [16])[0]
    loss, out = exp.gradient_step(x, y)
    tensors = [loss, *(v for v in out.values() if isinstance(v, torch.Tensor))]
    assert len(tensors) >= 2 and all(t.grad_fn is None and not t.requires_grad for t in tensors)
    assert any(p.grad is not None for p in exp.network.parameters())  # the backward did run


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_second_batch_shape_warms_up_without_a_stream_mismatch(compose_cfg):
    """After one shape is captured, the next shape's warm-up steps (eager, on a side stream) make
    their own AccumulateGrad nodes: torch's warning that a node made on another stream is reused
    does not appear."""
    import warnings

    exp = build_experiment(compose_cfg(*CSNN, "device=cuda"))
    exp.configure_gradient(epochs=4, steps_per_epoch=4)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        # (56 training samples) the 16s warm up in the first epoch and are captured in the second;
        # the 8s warm up after that, one per epoch, and are captured in the fourth
        steps(exp, batches_of(exp, torch.device("cuda"), [16, 16, 16, 8]), epochs=4)
    assert len(exp.graphed._graphs) == 2
    for graph, static_x, static_y, loss, out in exp.graphed._graphs.values():  # no capture-time graph kept
        assert loss.grad_fn is None and all(v.grad_fn is None for v in out.values() if isinstance(v, torch.Tensor))
    assert not [w for w in seen if "AccumulateGrad" in str(w.message)], [str(w.message) for w in seen]
