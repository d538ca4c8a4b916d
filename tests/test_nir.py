"""NIR export and import: equations of the mapping, round trips with identical spikes, refusals.

The mapping (snnrun/interop/nir_export.py) writes each of our discrete steps as a forward-Euler
step of NIR's continuous equations at step d = nir_dt. The tests below write those equations out
by hand (numpy, float64) from the NIR node's own fields, independently of snnrun's code, and
compare spikes step by step.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from snnrun.engine.experiment import build_experiment
from snnrun.engine.loop import train
from snnrun.run.saved import load_run_config, load_run_state
from snnrun.engine.network import build_network
from snnrun.errors import ConfigError
from snnrun.run.checkpoint import load_checkpoint
from tests.conftest import run_cli, tree, compose_config, train_like_cli

nir = pytest.importorskip("nir")

from snnrun.commands.export import export_nir  # noqa: E402
from snnrun.interop.nir_export import network_to_nir  # noqa: E402
from snnrun.interop.nir_import import nir_to_network  # noqa: E402

D = 1e-4  # NIR time units (s) per step
BASE = ("data.limit_test=32", "device=cpu", "logger=plain", "seed=0")
# a few batches on digits; low thresholds so that every layer of the barely trained net spikes
FEW_BATCHES = ("data.limit_train=192", "trainer.batch_size=32", "trainer.epochs=1", "model.neuron.v_threshold=0.1")
MODELS = {
    "snn_mlp": ("+model=snn_mlp", "model.T=4", "model.hidden=32", *FEW_BATCHES),
    "csnn_avgpool": ("+model=csnn_avgpool", "model.T=4", "model.channels=4", "model.hidden=32", *FEW_BATCHES),
}


def cfg_of(*overrides):
    return compose_config(*BASE, *overrides)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """model -> (run dir, exported .nir file), trained a few batches on digits."""
    done = {}

    def _get(model):
        if model not in done:
            run = tmp_path_factory.mktemp(model)
            torch.manual_seed(0)
            train_like_cli(cfg_of(*MODELS[model]), run)
            done[model] = (run, export_nir(run, run / f"{model}.nir", D)[0])
        return done[model]

    return _get


def all_spikes(exp, x, dtype):
    """Every non-input group's spike trains (T, B, ...) for a batch, learning off."""
    net = exp.network.to(dtype).eval()
    groups = tuple(g for g in net.groups if g != exp.input_group)
    with torch.no_grad():
        if getattr(exp.encoder, "static", False):
            out = net({exp.input_group: x.to(dtype), "steps": exp.encoder.steps}, record=groups,
                      static=(exp.input_group,))
        else:
            out = net({exp.input_group: exp.encoder(x).to(dtype)}, record=groups)
    return out["spikes"]


@pytest.mark.parametrize("model", sorted(MODELS))
def test_round_trip_gives_identical_spikes(trained, model):
    run, path = trained(model)
    original = build_experiment(load_run_config(run, ["device=cpu"]))
    load_run_state(original, load_checkpoint(run, fallback=False), run)
    graph = nir.read(str(path))
    T = int(graph.metadata["steps"])
    imported = build_experiment(cfg_of("+model=nir", f"model.path={path}", f"model.T={T}"))
    assert set(imported.network.groups) == set(original.network.groups)
    x = original.data.test.x
    for dtype in (torch.float64, torch.float32):
        a, b = all_spikes(original, x, dtype), all_spikes(imported, x, dtype)
        for g in a:
            assert a[g].shape == b[g].shape and a[g].shape[0] == T
            assert a[g].sum() > 0, f"{g} never spiked: the comparison would say nothing"
            differ = int((a[g] != b[g]).sum())
            if dtype == torch.float64:
                assert differ == 0, f"{g}: {differ} spikes differ"
            else:  # the folded batch norm rounds differently in float32: a v within ~1e-7 of the
                # threshold could flip (none did here: 0 of ~60,000; on all 359 digits test samples of
                # a fully trained csnn_avgpool, 0 of 4.6 million); allow one in 10,000
                assert differ <= a[g].numel() // 10_000, f"{g}: {differ} spikes differ"


def test_exported_file_holds_nir_nodes_and_metadata(trained):
    run, path = trained("csnn_avgpool")
    g = nir.read(str(path))
    kinds = {k: type(v).__name__ for k, v in g.nodes.items()}
    assert kinds["X"] == "Input" and kinds["output"] == "Output"
    assert [kinds[n] for n in ("conv1", "conv2_0", "conv2_1", "fc1_0", "fc1_1", "fc1_2", "fc2")] == \
        ["Conv2d", "AvgPool2d", "Conv2d", "AvgPool2d", "Flatten", "Affine", "Affine"]
    assert all(kinds[n] == "LIF" for n in ("lif1", "lif2", "lif3", "out"))
    assert ("out", "output") in g.edges and ("X", "conv1") in g.edges
    # LIF tau 2 steps, decay_input: tau = 2 d, r = 1; v_threshold 0.1 (v0 = 0)
    lif = g.nodes["lif1"]
    assert np.allclose(lif.tau, 2 * D) and np.all(lif.r == 1) and np.allclose(lif.v_threshold, 0.1)
    assert float(g.metadata["nir_dt"]) == D and int(g.metadata["steps"]) == 4
    assert json.loads(g.metadata["encoder"])["type"] == "direct"

    # batch norm folded into conv1: w' = w g / sqrt(var + eps), b' = (b - mean) g / sqrt(var + eps) + beta
    state = load_checkpoint(run, fallback=False)["network"]
    w, b = state["connections.conv1.ops.0.w"].double(), 0.0  # csnn's convolutions have no bias
    mean, var = state["connections.conv1.ops.1.bn.running_mean"].double(), state["connections.conv1.ops.1.bn.running_var"].double()
    gamma, beta = state["connections.conv1.ops.1.bn.weight"].double(), state["connections.conv1.ops.1.bn.bias"].double()
    s = gamma / torch.sqrt(var + 1e-5)
    assert np.allclose(g.nodes["conv1"].weight, (w * s[:, None, None, None]).numpy(), rtol=1e-6, atol=1e-7)
    assert np.allclose(g.nodes["conv1"].bias, ((b - mean) * s + beta).numpy(), rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------- the equations
def euler_lif(I, tau, r, v_leak, v_th, v_reset, d):
    """NIR's LIF, tau dv/dt = (v_leak - v) + r I, forward Euler from v = 0; spike at v >= v_th."""
    v, out = np.zeros_like(I[0]), []
    for t in range(I.shape[0]):
        v = v + d / tau * ((v_leak - v) + r * I[t])
        s = v >= v_th
        v = np.where(s, v_reset, v)
        out.append(s.astype(np.float64))
    return np.stack(out)


def euler_if(I, r, v_th, v_reset, d):
    v, out = np.zeros_like(I[0]), []
    for t in range(I.shape[0]):
        v = v + d * r * I[t]
        s = v >= v_th
        v = np.where(s, v_reset, v)
        out.append(s.astype(np.float64))
    return np.stack(out)


def small_network(neuron: dict):
    torch.manual_seed(1)
    net = build_network({"groups": {"X": {"type": "input", "n": 6}, "H": {"n": 5, **neuron}},
                         "connections": {"XH": {"source": "X", "target": "H", "type": "dense",
                                                "init": {"type": "normal", "mean": 0.3, "std": 0.5}}},
                         "delay": 0}, dt=1.0)
    return net.double().eval()


def simulate(net, x):
    with torch.no_grad():
        return net({"X": x}, record=("H",))["spikes"]["H"].numpy()


@pytest.mark.parametrize("neuron", [
    {"type": "surrogate_lif", "tau": 3.0, "decay_input": False, "v_threshold": 1.0, "v_reset": -0.5},
    {"type": "surrogate_lif", "tau": 2.5, "decay_input": True, "v_threshold": 0.8, "v_reset": 0.0},
    {"type": "plif", "init_tau": 4.0, "v_threshold": 0.7, "v_reset": 0.0},
    {"type": "surrogate_if", "v_threshold": 1.2, "v_reset": 0.1},
])
def test_exported_nodes_follow_nir_equations(neuron):
    net = small_network(neuron)
    if neuron["type"] == "plif":
        net.groups["H"].w.data.fill_(-1.3)  # a "learned" tau: dt / sigmoid(-1.3)
    g = network_to_nir(net, readout="H", nir_dt=D).graph
    node = g.nodes["H"]
    v0 = neuron["v_reset"]
    assert np.allclose(node.v_threshold, neuron["v_threshold"] - v0) and np.allclose(node.v_reset, 0.0)
    if neuron["type"] == "surrogate_if":
        assert type(node).__name__ == "IF" and np.allclose(node.r, 1 / D)
    else:
        tau_steps = {"surrogate_lif": neuron.get("tau"), "plif": 1 / (1 / (1 + np.exp(1.3)))}[neuron["type"]]
        assert np.allclose(node.tau, D * tau_steps)
        assert np.allclose(node.r, 1.0 if neuron.get("decay_input", True) else tau_steps)
    torch.manual_seed(2)
    x = (torch.rand(30, 4, 6) < 0.4).double()
    I = (x @ net.connections["XH"].w).numpy()
    if type(node).__name__ == "IF":
        want = euler_if(I, node.r, node.v_threshold, node.v_reset, D)
    else:
        want = euler_lif(I, node.tau, node.r, node.v_leak, node.v_threshold, node.v_reset, D)
    got = simulate(net, x)
    assert want.sum() > 5 and np.array_equal(got, want)


def test_import_runs_nir_equations_of_a_hand_written_graph(tmp_path):
    """A graph written with nir directly (not by snnrun): Conv2d -> LIF (r != 1, v_leak != 0) ->
    SumPool2d -> Flatten -> Affine -> CubaLIF and Scale -> IF; snnrun's import against numpy."""
    rng = np.random.default_rng(0)
    conv_w = rng.normal(0.2, 0.4, (2, 1, 3, 3)).astype(np.float32)
    conv_b = rng.normal(0, 0.1, 2).astype(np.float32)
    shape1 = (2, 4, 4)
    lif = nir.LIF(tau=rng.uniform(2e-4, 6e-4, shape1), r=rng.uniform(0.5, 3.0, shape1),
                  v_leak=np.full(shape1, 0.05), v_threshold=rng.uniform(0.5, 1.0, shape1), v_reset=np.full(shape1, -0.1))
    aff_w = rng.normal(0.1, 0.3, (3, 8)).astype(np.float32)
    aff_b = rng.normal(0.0, 0.1, 3).astype(np.float32)
    cuba = nir.CubaLIF(tau_syn=np.full(3, 3e-4), tau_mem=np.full(3, 5e-4), r=np.full(3, 2.0), v_leak=np.zeros(3),
                       v_threshold=np.full(3, 0.3), v_reset=np.zeros(3), w_in=np.full(3, 1.5))
    scale = rng.uniform(0.5, 1.5, 3).astype(np.float32)
    if_node = nir.IF(r=np.full(3, 1e4), v_threshold=np.full(3, 1.0), v_reset=np.zeros(3))
    nodes = {"in": nir.Input(input_type=np.array([1, 4, 4])),
             "conv": nir.Conv2d(input_shape=(4, 4), weight=conv_w, stride=1, padding=1, dilation=1, groups=1, bias=conv_b),
             "lif": lif, "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
             "flat": nir.Flatten(input_type={"input": np.array([2, 2, 2])}, start_dim=0),
             "aff": nir.Affine(weight=aff_w, bias=aff_b), "cuba": cuba, "scale": nir.Scale(scale=scale), "if": if_node,
             "out": nir.Output(output_type=np.array([3]))}
    edges = [("in", "conv"), ("conv", "lif"), ("lif", "pool"), ("pool", "flat"), ("flat", "aff"), ("aff", "cuba"),
             ("cuba", "scale"), ("scale", "if"), ("if", "out")]
    path = tmp_path / "hand.nir"
    nir.write(str(path), nir.NIRGraph(nodes=nodes, edges=edges))

    spec, readout, loader = nir_to_network({"path": str(path), "nir_dt": D})
    assert readout == "if"
    net = build_network(spec, dt=1.0)
    loader.load(net)
    net = net.double().eval()
    x = torch.from_numpy(rng.uniform(0, 2, (12, 3, 1, 4, 4)))
    with torch.no_grad():
        got = net({"in": x}, record=("lif", "cuba", "if"))["spikes"]

    # numpy: the same graph by NIR's equations (forward Euler at D, state from 0)
    xs = x.numpy()
    I1 = torch.nn.functional.conv2d(x.flatten(0, 1), torch.from_numpy(conv_w).double(), torch.from_numpy(conv_b).double(),
                                    padding=1).unflatten(0, (12, 3)).numpy()
    s1 = euler_lif(I1, lif.tau, lif.r, lif.v_leak, lif.v_threshold, lif.v_reset, D)
    pooled = s1.reshape(12, 3, 2, 2, 2, 2, 2).sum((4, 6))  # 2x2 windows summed
    I2 = pooled.reshape(12, 3, 8) @ aff_w.T.astype(np.float64) + aff_b
    i = v = np.zeros((3, 3))
    s2 = []
    for t in range(12):  # CubaLIF: the synaptic current first, the membrane driven by the new current
        i = i + D / cuba.tau_syn * (-i + cuba.w_in * I2[t])
        v = v + D / cuba.tau_mem * ((cuba.v_leak - v) + cuba.r * i)
        s = v >= cuba.v_threshold
        v = np.where(s, cuba.v_reset, v)
        s2.append(s.astype(np.float64))
    s2 = np.stack(s2)
    s3 = euler_if(s2 * scale.astype(np.float64), if_node.r, if_node.v_threshold, if_node.v_reset, D)
    assert xs.shape[0] == 12 and s1.sum() > 10 and s2.sum() > 3 and s3.sum() > 0
    assert np.array_equal(got["lif"].numpy(), s1)
    assert np.array_equal(got["cuba"].numpy(), s2)
    assert np.array_equal(got["if"].numpy(), s3)


# --------------------------------------------------------------------------- refusals, diehl_cook
@pytest.mark.parametrize("overrides, key", [
    (("+model=csnn",), "model.network.connections.conv2.ops.0.type"),              # max pooling
    (("+model=snn_mlp", "model.neuron.v_reset=null"), "model.network.groups.hidden.v_reset"),  # soft reset
    (("+model=diehl_cook", "neuron@model.network.groups.Ai=izhikevich"), "model.network.groups.Ai.type"),
    (("+model=diehl_cook", "neuron@model.network.groups.Ai=hh"), "model.network.groups.Ai.type"),
])
def test_what_nir_cannot_express_is_refused_naming_the_key(overrides, key):
    exp = build_experiment(cfg_of("data=synthetic", "data.n_train=8", "data.n_test=4", *overrides))
    with pytest.raises(ConfigError) as e:
        network_to_nir(exp.network, readout=exp.readout, nir_dt=D)
    assert e.value.key == key


def test_diehl_cook_exports_with_folded_thresholds_a_cycle_and_the_labels(tmp_path):
    torch.manual_seed(0)
    train_like_cli(cfg_of("+model=diehl_cook", "data=synthetic", "data.n_train=40", "data.n_test=20", "model.n_neurons=10",
                 "model.time=50", "model.intensity=512", "trainer.assign_every=20"), tmp_path)
    path, approx = export_nir(tmp_path, tmp_path / "dc.nir", 1e-3)
    text = " ".join(approx)
    for what in ("Ae.refrac", "Ae.theta_plus", "Ae.one_spike", "Ai.refrac"):
        assert f"model.network.groups.{what}" in text
    g = nir.read(str(path))
    state = load_checkpoint(tmp_path, fallback=False)
    assert np.array_equal(g.metadata["label_assignment"], state["assignment"]["assignments"].numpy())
    theta = state["network"]["groups.Ae.theta"].double().numpy()
    assert theta.max() > 0
    assert np.allclose(g.nodes["Ae"].v_threshold, -52.0 + theta + 65.0)  # thresh + theta - rest
    assert np.allclose(g.nodes["Ae"].v_reset, -60.0 + 65.0)
    # Ae -> Ai -> Ae through one-step delays: lateral inhibition as a cycle, weight (1 - I) * -inh
    assert {("Ae", "Ae_Ai"), ("Ae_Ai_delay", "Ai"), ("Ai", "Ai_Ae"), ("Ai_Ae_delay", "Ae")} <= set(g.edges)
    w = g.nodes["Ai_Ae"].weight
    assert np.allclose(np.diag(w), 0.0) and np.allclose(w[0, 1], -120.0)
    assert np.allclose(g.nodes["Ai_Ae_delay"].delay, 1e-3)
    # and read back: the delays are connections of delay 1, the cycle runs step by step
    spec, readout, _ = nir_to_network({"path": str(path)})
    assert readout == "Ae" and spec["connections"]["Ai_Ae"]["delay"] == 1 and spec["connections"]["X_Ae"]["delay"] == 1


def test_fine_tuning_an_imported_network(trained, tmp_path):
    _, path = trained("snn_mlp")
    summary = train(cfg_of("+model=nir", f"model.path={path}", "model.T=4", "data.limit_train=64",
                           "trainer.batch_size=32", "trainer.epochs=1"), tmp_path)
    assert 0.0 <= summary["test_accuracy"] <= 1.0
    before = nir.read(str(path)).nodes["fc2"].weight
    after = load_checkpoint(tmp_path, fallback=False)["network"]["connections.fc2.ops.0.w"].numpy().T
    assert before.shape == after.shape and not np.allclose(before, after)


def test_cli_export_and_its_refusals(trained, tmp_path, cli_env):
    run, _ = trained("snn_mlp")
    out = tmp_path / "sub" / "mlp.nir"
    r = run_cli(["export", f"run_dir={run}", "format=nir", f"out={out}", "dt=1e-3"], cli_env, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert out.is_file() and float(nir.read(str(out)).metadata["nir_dt"]) == 1e-3
    before = tree(run)
    for args, key in ((["format=onnx", f"out={tmp_path / 'x.onnx'}"], "format"),
                      (["format=nir"], "out"), (["format=nir", f"out={tmp_path / 'x.nir'}", "dt=-1"], "dt")):
        r = run_cli(["export", f"run_dir={run}", *args], cli_env, tmp_path)
        assert r.returncode == 2 and f"error: {key}:" in r.stdout and "Traceback" not in r.stdout + r.stderr
    assert not (tmp_path / "x.nir").exists() and not (tmp_path / "x.onnx").exists()
    assert tree(run) == before


# --------------------------------------------------------------------------- other simulators
def readout_spikes(run):
    """The original run's readout spike trains (T, B, n) for its first 16 test samples, and them."""
    exp = build_experiment(load_run_config(run, ["device=cpu"]))
    load_run_state(exp, load_checkpoint(run, fallback=False), run)
    x = exp.data.test.x[:16]
    return all_spikes(exp, x, torch.float32)[exp.readout], x


def step_through(module, x, T, step, reset=lambda m: None):
    """Another simulator's per-step torch module, one unbatched sample at a time (their NIR
    Flatten maps start_dim 0 onto torch's, which would flatten a batch too): (T, B, n) spikes."""
    out = []
    for b in range(x.shape[0]):
        reset(module)
        state, seq = None, []
        with torch.no_grad():
            for _ in range(T):
                o, state = step(module, x[b], state)
                seq.append(o)
        out.append(torch.stack(seq))
    return torch.stack(out, 1)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_snntorch_reads_our_export_with_the_same_output_spikes(trained, model):
    pytest.importorskip("snntorch")
    pytest.importorskip("nirtorch")
    from snntorch.import_nir import import_from_nir

    run, path = trained(model)
    ours, x = readout_spikes(run)
    graph = nir.read(str(path))  # snnTorch's importer steps LIF with dt = 1e-4, our default

    def reset(m):  # snnTorch keeps v inside its Leaky modules (init_hidden)
        for mod in m.modules():
            if hasattr(mod, "reset_mem"):
                mod.reset_mem()

    def step(m, xb, state):  # the graph module returns (output, its own state dict)
        out = m(xb)
        return (out[0] if isinstance(out, tuple) else out), None

    theirs = step_through(import_from_nir(graph), x, ours.shape[0], step, reset)
    assert ours.sum() > 0 and torch.equal(theirs.reshape(ours.shape), ours)


def test_norse_reads_our_export_with_the_same_output_spikes(trained):
    norse = pytest.importorskip("norse.torch")
    run, path = trained("snn_mlp")  # Norse 1.1 maps no AvgPool2d: the MLP
    ours, x = readout_spikes(run)
    graph = nir.read(str(path))
    module = norse.from_nir(graph, dt=float(graph.metadata["nir_dt"]))
    theirs = step_through(module, x, ours.shape[0], lambda m, xb, state: m(xb, state))
    assert ours.sum() > 0 and torch.equal(theirs.reshape(ours.shape), ours)
