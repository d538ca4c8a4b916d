"""`snnrun bench` on the CPU: parses its overrides, runs tiny workloads, prints JSON lines."""

import json
import subprocess

import pytest
import torch

from snnrun.commands.bench import parse_overrides, run_bench
from snnrun.errors import ConfigError
from tests.conftest import snnrun_exe


def test_overrides_sweep_as_a_product():
    top, configs = parse_overrides(["workload=dc_train", "workload.n=100,400", "workload.batch=1,256",
                                    "repeats=3"])
    assert top["repeats"] == 3
    assert [(c["n"], c["batch"]) for c in configs] == [(100, 1), (100, 256), (400, 1), (400, 256)]
    assert all(c["type"] == "dc_train" and c["time"] == 250.0 for c in configs)


def test_bad_overrides_are_clear():
    with pytest.raises(ConfigError) as e:
        parse_overrides(["workload=dc_trian"])
    assert e.value.key == "workload" and "Did you mean 'dc_train'" in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_overrides(["workload=dc_train", "workload.neurons=3"])
    assert e.value.key == "workload.neurons" and "batch" in str(e.value)


def test_bad_workload_values_name_the_key_and_the_choices():
    from snnrun.commands.bench import DiehlCookTrain, LIFForwardBackward

    with pytest.raises(ConfigError) as e:
        DiehlCookTrain(precision="fp8")
    assert e.value.key == "workload.precision" and "highest, high, fp16x2" in str(e.value)
    with pytest.raises(ConfigError) as e:
        LIFForwardBackward(model="hh")
    assert e.value.key == "workload.model" and "lif, if, plif or alif" in str(e.value)
    with pytest.raises(ConfigError) as e:
        LIFForwardBackward(model="alif", backend="loop")
    assert e.value.key == "workload.backend" and "alif runs fused only" in str(e.value)
    with pytest.raises(ConfigError) as e:
        LIFForwardBackward(graphs="yes")
    assert e.value.key == "workload.graphs" and "true or false" in str(e.value)


def test_dc_and_lif_workloads_run_on_cpu():
    out = run_bench(["workload=dc_train", "workload.n=20", "workload.batch=2", "workload.time=10",
                     "repeats=1", "warmup=1", "device=cpu"])
    assert out[0]["images_per_s"] > 0 and out[0]["steps_per_sample"] == 10
    # the compiled C loop where a C compiler is found (what `snnrun train` runs), else eager
    from snnrun.engine.cpu_loop import compiler

    assert out[0]["hardware"]["device"] == "cpu"
    assert out[0]["engine_used"] == ("cpu_loop" if compiler() is not None else "eager")
    out = run_bench(["workload=dc_train", "workload.n=20", "workload.batch=2", "workload.time=10",
                     "workload.engine=eager", "repeats=1", "warmup=1", "device=cpu"])
    assert out[0]["engine_used"] == "eager"
    out = run_bench(["workload=lif_fwd_bwd", "workload.T=4", "workload.B=2", "workload.N=16",
                     "workload.backend=fused,loop", "repeats=1", "warmup=1", "device=cpu"])
    assert [r["params"]["backend"] for r in out] == ["fused", "loop"]
    # 4 tensors of T*B*N float32 move per forward+backward
    assert all(r["fwd_bwd_gb_s"] == pytest.approx(4 * 4 * 2 * 16 * 4 / (r["fwd_bwd_ms"] * 1e6), abs=0.06)
               for r in out)


def test_lif_graphs_fall_back_to_the_plain_call_on_cpu():
    out = run_bench(["workload=lif_fwd_bwd", "workload.T=4", "workload.B=2", "workload.N=16", "workload.graphs=true",
                     "repeats=1", "warmup=1", "device=cpu"])
    assert out[0]["params"]["graphs"] is True and out[0]["graphed"] is False and out[0]["fwd_bwd_ms"] > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_a_captured_lif_call_replays_the_eager_gradient():
    from snnrun.engine.cuda_graph import capture
    from snnrun.engine.kernels.lif_multistep import lif_multistep

    x = (1.5 * torch.rand(8, 4, 256, device="cuda", generator=torch.Generator("cuda").manual_seed(0)))
    x.requires_grad_(True)
    outputs = []  # appended, never overwritten: nothing allocated before the capture is freed during it

    def call():
        s, _ = lif_multistep(x, tau=2.0)
        # detached: a kept autograd graph would hold x's gradient accumulator from the warm-up's
        # side stream into the capture's, which torch warns of (the storage is kept all the same)
        g, = torch.autograd.grad(s.sum(), [x])
        outputs.append((s.detach(), g))

    graph = capture(call)
    static_s, static_g = outputs[-1]  # the captured call's outputs, rewritten by every replay
    first = None
    for scale in (1.0, 0.8):  # then new input in place: the replay computes it, not the capture's result
        with torch.no_grad():
            x.mul_(scale)
        graph.replay()
        torch.cuda.synchronize()
        s, _ = lif_multistep(x, tau=2.0)
        g, = torch.autograd.grad(s.sum(), [x])
        assert torch.equal(static_s, s) and torch.equal(static_g, g) and s.sum() > 0
        first = static_s.clone() if first is None else first
    assert not torch.equal(first, static_s)


def test_csnn_train_step_runs_on_cpu():
    out = run_bench(["workload=csnn_train_step", "workload.batch=4", "workload.T=2", "repeats=1", "warmup=1",
                     "device=cpu"])
    assert out[0]["images_per_s"] > 0 and out[0]["params"]["model"] == "csnn"


def test_cli_prints_json_lines(cli_env, tmp_path):
    r = subprocess.run(snnrun_exe() + ["bench", "workload=dc_eval", "workload.n=10", "workload.batch=1",
                                       "workload.time=5", "repeats=1", "warmup=0", f"out={tmp_path}/b.jsonl"],
                       capture_output=True, text=True, env=cli_env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    assert lines[0]["workload"] == "dc_eval" and "hardware" in lines[0]
    assert json.loads((tmp_path / "b.jsonl").read_text())["images_per_s"] == lines[0]["images_per_s"]
