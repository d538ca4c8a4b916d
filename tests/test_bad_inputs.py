"""A corpus of bad inputs and faults: every one is a clear error, and nothing that existed changes.

For each case (a command line as a user would type it, plus what was done to the files first):

* the exit code is not 0;
* no ``Traceback`` is printed;
* the message names the config key or the file at fault;
* the finished run made once for this module is byte-identical afterwards (``tree``), and so is
  any damaged copy of it a case works on; a run dir the failed command would have created is
  not left behind.

Commands run in this process (``snnrun.cli.main``; a few that need a resource limit or a whole
sweep run as subprocesses), on the tiniest configs (conftest's TINY).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import traceback

import numpy as np
import pytest
import torch

from tests.conftest import TINY, cli_environ, run_cli, tree
from tests.test_data import make_mnist_dir, write_idx

TRAIN = ["train", "+model=diehl_cook", *TINY]
MNIST = ["train", "+model=diehl_cook", "data=mnist", "data.download=false", "model.n_neurons=10", "model.time=20",
         "logger=plain"]


def snnrun(args: list[str]) -> tuple[int, str]:
    """``snnrun ARGS`` in this process: (exit code, stdout + stderr). An exception that escapes the
    CLI counts as a crash (exit 1) and its traceback is part of the output."""
    from hydra.core.global_hydra import GlobalHydra

    from snnrun.cli import main

    GlobalHydra.instance().clear()
    argv, out, rc = sys.argv[:], io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            main([str(a) for a in args])
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:  # noqa: BLE001 - what a user would see as a crash
            traceback.print_exc()
            rc = 1
    sys.argv = argv
    return rc, out.getvalue()


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A tiny finished run (checkpoint.pt, checkpoint.prev.pt, summary.json, .hydra) and its tree."""
    rd = tmp_path_factory.mktemp("corpus") / "run"
    rc, out = snnrun([*TRAIN, f"hydra.run.dir={rd}"])
    assert rc == 0, out
    return rd, tree(rd)


@pytest.fixture
def inside(tmp_path, monkeypatch):
    """Each case runs in its own empty folder (where a default outputs/ dir would go)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


def refused(rc: int, out: str, *names: str) -> None:
    assert rc != 0, out
    assert "Traceback" not in out, out
    for name in names:
        assert name in out, f"{name!r} not named in:\n{out}"


# -- 1. bad values on the command line of `snnrun train` (a new run dir: none is left behind) ----
BAD_TRAIN = {
    "n_neurons_text": (["model.n_neurons=abc"], ["model.n_neurons", "whole number"]),
    "n_neurons_fraction": (["model.n_neurons=10.5"], ["model.n_neurons", "whole number"]),
    "n_neurons_zero": (["model.n_neurons=0"], ["model.n_neurons", ">= 1"]),
    "intensity_text": (["model.intensity=abc"], ["model.intensity", "a number"]),
    "intensity_negative": (["model.intensity=-5"], ["model.intensity", ">= 0"]),
    "intensity_from_data": (["model.intensity=${data.intensity}", "data.intensity=abc"],
                            ["model.intensity", "from ${data.intensity}"]),
    "time_zero": (["model.time=0"], ["model.time", "> 0"]),
    "time_negative": (["model.time=-5"], ["model.time"]),
    "dt_zero": (["model.dt=0"], ["model.dt", "> 0"]),
    "dt_negative": (["model.dt=-1"], ["model.dt"]),
    "theta_plus_negative": (["model.theta_plus=-1"], ["model.theta_plus"]),
    "inh_text": (["model.inh=abc"], ["model.inh"]),
    "exc_list": (["model.exc=[1,2]"], ["model.exc"]),
    "tc_decay_zero": (["model.network.groups.Ae.tc_decay=0"], ["model.network.groups.Ae.tc_decay", "> 0"]),
    "tc_decay_negative": (["model.network.groups.Ai.tc_decay=-10"], ["model.network.groups.Ai.tc_decay"]),
    "refrac_negative": (["model.network.groups.Ae.refrac=-1"], ["model.network.groups.Ae.refrac", ">= 0"]),
    "thresh_text": (["model.network.groups.Ae.thresh=abc"], ["model.network.groups.Ae.thresh", "a number"]),
    "traces_not_bool": (["model.network.groups.Ae.traces=maybe"], ["model.network.groups.Ae.traces"]),
    "tc_trace_zero": (["model.network.groups.X.tc_trace=0"], ["model.network.groups.X.tc_trace"]),
    "added_model_key": (["+model.n_neuron=10"], ["model.n_neuron", "Did you mean 'n_neurons'"]),
    "misspelt_model_key": (["model.n_neuron=10"], ["model.n_neuron"]),
    "unknown_neuron_option": (["+model.network.groups.Ae.tc_decya=10"], ["model.network.groups.Ae.tc_decya"]),
    "unknown_model": (["+model=nope"], ["model", "nope"]),
    "unknown_data": (["data=nope"], ["data", "nope"]),
    "unknown_logger": (["logger=nope"], ["logger", "nope"]),
    "unknown_trainer_preset": (["trainer=nope"], ["trainer", "nope"]),
    "unknown_neuron_preset": (["neuron@model.network.groups.Ae=nope"], ["neuron", "nope"]),
    "unknown_encoder_preset": (["encoder@model.encoder=nope"], ["encoder", "nope"]),
    "unknown_neuron_type": (["model.network.groups.Ae.type=nope"], ["model.network.groups.Ae.type"]),
    "unknown_encoder_type": (["model.encoder.type=nope"], ["model.encoder.type"]),
    "unknown_learner": (["model.learner.type=nope"], ["model.learner.type"]),
    "learner_on_no_connection": (["model.learner.connection=NOPE"], ["model.learner.connection"]),
    "connection_from_no_group": (["model.network.connections.X_Ae.source=NOPE"],
                                 ["model.network.connections.X_Ae.source"]),
    "input_group_wrong_size": (["model.network.groups.X.n=10"], ["model.network.groups.X.n", "64"]),
    "readout_no_group": (["model.readout=NOPE"], ["model.readout"]),
    "unknown_decoder": (["model.decoders=[nope]"], ["model.decoders.0"]),
    "epochs_text": (["trainer.epochs=two"], ["trainer.epochs"]),
    "epochs_negative": (["trainer.epochs=-1"], ["trainer.epochs"]),
    "batch_size_zero": (["trainer.batch_size=0"], ["trainer.batch_size", ">= 1"]),
    "checkpoint_every_negative": (["trainer.checkpoint_every=-5"], ["trainer.checkpoint_every"]),
    "assign_every_text": (["trainer.assign_every=often"], ["trainer.assign_every", "auto"]),
    "assign_every_zero": (["trainer.assign_every=0"], ["trainer.assign_every", ">= 1"]),
    "unknown_trainer_key": (["trainer.epoch=2"], ["trainer.epoch"]),
    "seed_fraction": (["seed=1.5"], ["seed"]),
    "bad_device": (["device=tpu"], ["device", "cpu"]),
    "limit_train_zero": (["data.limit_train=0"], ["data.limit_train"]),
    "augment_shift_negative": (["data.augment_shift=-1"], ["data.augment_shift"]),
    "augment_shift_text": (["data.augment_shift=two"], ["data.augment_shift"]),
    "augment_shift_too_large": (["data.augment_shift=4"], ["data.augment_shift", "[1, 8, 8]"]),
    "augment_rotate_negative": (["data.augment_rotate=-10"], ["data.augment_rotate", "degrees"]),
    "augment_scale_one": (["data.augment_scale=1"], ["data.augment_scale"]),
    "augment_rotate_not_square": (["data.shape=[1,8,6]", "data.n_inputs=48", "data.augment_rotate=10"],
                                  ["data.augment_rotate", "square", "[1, 8, 6]"]),
    "represent_below_negative": (["trainer.represent_below=-1"], ["trainer.represent_below", ">= 0"]),
    "represent_below_text": (["trainer.represent_below=five"], ["trainer.represent_below"]),
    "represent_add_hz_zero": (["trainer.represent_below=5", "trainer.represent_add_hz=0"],
                              ["trainer.represent_add_hz", "> 0"]),
    "represent_tries_zero": (["trainer.represent_below=5", "trainer.represent_tries=0"],
                             ["trainer.represent_tries", ">= 1"]),
    "limit_train_text": (["data.limit_train=abc"], ["data.limit_train"]),
    "n_train_text": (["data.n_train=abc"], ["data.n_train"]),
    "limit_test_negative": (["data.limit_test=-3"], ["data.limit_test"]),
    "noise_text": (["data.noise=loud"], ["data.noise"]),
    "override_syntax": (["model.n_neurons=[1,"], ["model.n_neurons"]),
    "encoder_intensity_text": (["model.encoder.intensity=abc"], ["model.encoder.intensity", "a number"]),
    "norm_negative": (["model.network.connections.X_Ae.norm=-1"], ["model.network.connections.X_Ae.norm", "> 0"]),
    "wmin_above_wmax": (["model.network.connections.X_Ae.wmin=2"], ["model.network.connections.X_Ae.wmin"]),
    "learning_rate_text": (["model.learner.nu=abc"], ["model.learner.nu"]),
    "unknown_reduction": (["model.learner.reduction=nope"], ["model.learner.reduction", "owner"]),
    "connection_type_without_its_option": (["model.network.connections.Ae_Ai.type=conv2d"],
                                           ["model.network.connections.Ae_Ai.weight", "unknown option"]),
    "unknown_launcher": (["hydra/launcher=nope"], ["hydra/launcher"]),
}

# gradient models: (model and overrides, what the message must name)
GRADIENT = ["data=synthetic", "data.n_train=40", "data.n_test=20", "logger=plain"]
BAD_GRADIENT = {
    "optimizer_lr_text": (["+model=snn_mlp", "model.learner.optimizer.lr=abc"], ["model.learner.optimizer.lr"]),
    "optimizer_unknown": (["+model=snn_mlp", "model.learner.optimizer.type=Nope"], ["model.learner.optimizer.type"]),
    "ema_one": (["+model=snn_mlp", "model.learner.ema=1"], ["model.learner.ema", "(0, 1)"]),
    "ema_text": (["+model=snn_mlp", "model.learner.ema=slow"], ["model.learner.ema", "a number"]),
    "optimizer_betas": (["+model=snn_mlp", "+model.learner.optimizer.betas=0.9"], ["model.learner.optimizer.betas"]),
    "unknown_loss": (["+model=snn_mlp", "model.learner.loss.type=nope"], ["model.learner.loss.type"]),
    "represent_without_rates": (["+model=snn_mlp", "trainer.represent_below=5"],
                                ["trainer.represent_below", "rate encoder"]),
    "dropout_above_one": (["+model=snn_mlp", "model.dropout=1.5"], ["model.dropout", "[0, 1)"]),
    "zero_time_steps": (["+model=snn_mlp", "model.T=0"], ["model.T"]),
    "zero_channels": (["+model=csnn", "model.channels=0"], ["model.channels"]),
    "kernel_larger_than_image": (["+model=csnn", "model.network.connections.conv1.ops.0.kernel_size=20"],
                                 ["model.network.connections.conv1", "kernel"]),
    "readout_connection_unknown": (["+model=stdp_features_readout", "model.learner.readout.connections=[NOPE]"],
                                   ["model.learner.readout.connections"]),
}


@pytest.mark.parametrize("case", sorted(BAD_GRADIENT))
def test_bad_gradient_model_value(case, finished, inside):
    model, names = BAD_GRADIENT[case]
    rc, out = snnrun(["train", model[0], *GRADIENT, *model[1:], f"hydra.run.dir={inside / 'new'}"])
    refused(rc, out, *names)
    assert not (inside / "new").exists()
    assert tree(finished[0]) == finished[1]


@pytest.mark.parametrize("case", sorted(BAD_TRAIN))
def test_bad_train_value(case, finished, inside):
    overrides, names = BAD_TRAIN[case]
    new = inside / "outputs" / "run"
    rc, out = snnrun([*TRAIN, *overrides, f"hydra.run.dir={new}"])
    refused(rc, out, *names)
    assert not (inside / "outputs").exists(), "a failed command left its run dir"
    assert tree(finished[0]) == finished[1]


def test_cuda_asked_for_without_a_gpu(finished, inside):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    rc, out = snnrun([*TRAIN, "device=cuda", f"hydra.run.dir={inside / 'new'}"])
    refused(rc, out, "device", "no usable GPU")
    assert not (inside / "new").exists()


# -- 2. commands aimed at the finished run: refused, the run byte-identical ------------------------
AT_FINISHED = {
    "train_again_into_it": (TRAIN + ["hydra.run.dir={run}"], ["resume=true", "already holds a run"]),
    "train_resume_changed_seed": (TRAIN + ["resume=true", "seed=3", "hydra.run.dir={run}"], ["seed", "seed=0"]),
    "train_resume_changed_size": (TRAIN + ["resume=true", "model.n_neurons=20", "hydra.run.dir={run}"],
                                  ["model.n_neurons"]),
    "train_bad_value_into_it": (TRAIN + ["model.n_neurons=0", "hydra.run.dir={run}"], ["model.n_neurons"]),
    "resume_changed_seed": (["resume", "run_dir={run}", "seed=3"], ["seed"]),
    "resume_changed_learning_rule": (["resume", "run_dir={run}", "model.learner.nu=[0.1,0.1]"], ["model.learner.nu"]),
    "eval_bad_type": (["eval", "run_dir={run}", "trainer.epochs=two"], ["trainer.epochs"]),
    "eval_unknown_preset": (["eval", "run_dir={run}", "data=nope"], ["data", "nope"]),
    "eval_unknown_key": (["eval", "run_dir={run}", "trainer.epoch=1"], ["trainer.epoch"]),
    "eval_bad_model_value": (["eval", "run_dir={run}", "model.intensity=abc"], ["model.intensity"]),
    "eval_other_size": (["eval", "run_dir={run}", "model.n_neurons=20"], ["checkpoint", "shapes differ"]),
    "report_bad_device": (["report", "run_dir={run}", "device=tpu"], ["device"]),
    "report_unknown_logger": (["report", "run_dir={run}", "logger=nope"], ["logger"]),
}


@pytest.mark.parametrize("case", sorted(AT_FINISHED))
def test_command_at_the_finished_run(case, finished, inside):
    args, names = AT_FINISHED[case]
    rc, out = snnrun([a.replace("{run}", str(finished[0])) for a in args])
    refused(rc, out, *names)
    assert tree(finished[0]) == finished[1]


# -- 3. a damaged copy of the run: the command names the file, and changes nothing in it ----------
class RunsACommand:
    """Unpickling this runs a shell command (what a malicious checkpoint would do)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _other_size(run):
    """The checkpoint as another size of the model would have written it: one weight matrix of
    another shape."""
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    key = next(k for k, v in state["network"].items() if isinstance(v, torch.Tensor) and v.dim() == 2)
    w = state["network"][key]
    state["network"][key] = torch.zeros(w.shape[0], w.shape[1] + 3)
    torch.save(state, run / "checkpoint.pt")
    return key


def _unfinished(run):
    """The checkpoint as a run stopped in its first epoch leaves it (before the label assignment)."""
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["progress"].update(stage="train", epoch=1, start=20)
    torch.save(state, run / "checkpoint.pt")
    (run / "summary.json").unlink()


DAMAGE = {
    "unfinished_run": (_unfinished, ["eval"], ["has not finished training", "snnrun resume"]),
    "truncated_checkpoint": (lambda r: _truncate(r / "checkpoint.pt"), ["eval"], ["checkpoint.pt"]),
    "garbage_checkpoint": (lambda r: (r / "checkpoint.pt").write_bytes(b"no checkpoint" * 100), ["eval"],
                           ["checkpoint.pt"]),
    "no_checkpoint": (lambda r: [(r / n).unlink() for n in ("checkpoint.pt", "checkpoint.prev.pt")], ["eval"],
                      ["checkpoint"]),
    "malicious_checkpoint": (lambda r: torch.save({"network": RunsACommand(r.parent / "PWNED")}, r / "checkpoint.pt"),
                             ["eval"], ["checkpoint.pt", "not a plain-data checkpoint"]),
    "malicious_checkpoint_report": (
        lambda r: torch.save({"network": RunsACommand(r.parent / "PWNED")}, r / "checkpoint.pt"), ["report"],
        ["checkpoint.pt"]),
    "malicious_checkpoint_resume": (
        lambda r: [torch.save({"network": RunsACommand(r.parent / "PWNED")}, r / n) for n in
                   ("checkpoint.pt", "checkpoint.prev.pt")] and (r / "summary.json").unlink(), ["resume"],
        ["checkpoint"]),
    "checkpoint_of_another_size": (_other_size, ["eval"], ["shapes differ", "in the checkpoint"]),
    "broken_saved_config": (lambda r: (r / ".hydra" / "config.yaml").write_text("model: {n: [1, 2\n"), ["eval"],
                            ["config.yaml"]),
    "saved_config_not_a_mapping": (lambda r: (r / ".hydra" / "config.yaml").write_text("- 1\n- 2\n"), ["eval"],
                                   ["config.yaml"]),
    "no_saved_config": (lambda r: (r / ".hydra" / "config.yaml").unlink(), ["report"], [".hydra/config.yaml"]),
    "broken_summary_report": (lambda r: (r / "summary.json").write_text("{not json"), ["report"], ["summary.json"]),
    "broken_summary_eval": (lambda r: (r / "summary.json").write_text("[1, 2"), ["eval"], ["summary.json"]),
    "broken_summary_resume": (lambda r: (r / "summary.json").write_text("{"), ["resume"], ["summary.json"]),
    "broken_metrics_report": (lambda r: (r / "metrics.jsonl").write_text("{not json\n"), ["report"],
                              ["metrics.jsonl"]),
    "locked_by_another_host": (
        lambda r: (r / ".snnrun.lock").write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "then"})),
        ["eval"], ["in use by", "elsewhere"]),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_command_on_a_damaged_run(case, finished, inside):
    damage, command, names = DAMAGE[case]
    run = shutil.copytree(finished[0], inside / "run")
    damage(run)
    before = tree(run)
    rc, out = snnrun([*command, f"run_dir={run}"])
    refused(rc, out, *names)
    assert tree(run) == before
    assert not (inside / "PWNED").exists(), "loading the checkpoint ran its code"
    assert tree(finished[0]) == finished[1]


# -- 4. data files: the file is named with what is wrong -------------------------------------------
def _gz_truncated(root):
    p = root / "train-images-idx3-ubyte.gz"
    _truncate(p, 0.6)


def _gz_garbage(root):
    (root / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8bthis is not deflate data" * 20)


def _not_idx(root):
    (root / "t10k-labels-idx1-ubyte.gz").unlink()
    (root / "t10k-labels-idx1-ubyte").write_text("label,image\n1,2\n")


def _header_too_big(root):
    (root / "train-labels-idx1-ubyte.gz").unlink()
    write_idx(root / "train-labels-idx1-ubyte", np.arange(30) % 10, gz=False)
    p = root / "train-labels-idx1-ubyte"
    data = bytearray(p.read_bytes())
    data[4:8] = (1000).to_bytes(4, "big")  # the header promises 1000 labels, the file holds 30
    p.write_bytes(bytes(data))


def _count_mismatch(root):
    write_idx(root / "t10k-labels-idx1-ubyte", np.arange(7) % 10, gz=True)


def _file_missing(root):
    (root / "t10k-images-idx3-ubyte.gz").unlink()


DATA_FAULTS = {
    "gz_truncated": (_gz_truncated, ["train-images-idx3-ubyte.gz", "truncated"]),
    "gz_garbage": (_gz_garbage, ["t10k-images-idx3-ubyte.gz", "gzip"]),
    "not_an_idx_file": (_not_idx, ["t10k-labels-idx1-ubyte", "not an unsigned-byte IDX file"]),
    "idx_header_too_big": (_header_too_big, ["train-labels-idx1-ubyte", "1000"]),
    "images_and_labels_differ": (_count_mismatch, ["t10k-labels-idx1-ubyte", "labels"]),
    "a_file_missing": (_file_missing, ["t10k-images-idx3-ubyte", "data.root"]),
}


@pytest.mark.parametrize("case", sorted(DATA_FAULTS))
def test_bad_data_file(case, finished, inside):
    fault, names = DATA_FAULTS[case]
    root = make_mnist_dir(inside / "mnist", n_train=30, n_test=10)
    fault(root)
    rc, out = snnrun([*MNIST, f"data.root={root}", f"hydra.run.dir={inside / 'new'}"])
    refused(rc, out, *names)
    assert not (inside / "new").exists()
    assert tree(finished[0]) == finished[1]


def test_idx_reader_catches_a_truncated_gzip_directly(tmp_path):
    """The reader itself (not only the CLI): a .gz cut in the middle of its deflate stream."""
    from snnrun.data.images import read_idx
    from snnrun.errors import ConfigError

    p = write_idx(tmp_path / "x", np.zeros((50, 28, 28)), gz=True)
    whole = gzip.decompress(p.read_bytes())
    assert len(whole) == 16 + 50 * 28 * 28  # header (magic, 3 dims) + one byte per pixel
    _truncate(p, 0.5)
    with pytest.raises(ConfigError, match="truncated") as e:
        read_idx(p)
    assert str(p) in e.value.message


# -- 5. other commands and arguments ---------------------------------------------------------------
def _config_dir(tmp, text, name="model/broken.yaml"):
    p = tmp / "cd" / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return tmp / "cd"


TAB_YAML = "a:\n\tb: 1\n"
MISC = {
    "eval_no_run_dir": (lambda t: ["eval"], ["run_dir"]),
    "eval_missing_run_dir": (lambda t: ["eval", f"run_dir={t / 'nowhere'}"], ["run_dir", "nowhere"]),
    "resume_missing_run_dir": (lambda t: ["resume", f"run_dir={t / 'nowhere'}"], ["run_dir", "nowhere"]),
    "report_missing_run_dir": (lambda t: ["report", f"run_dir={t / 'nowhere'}"], ["run_dir", "nowhere"]),
    "eval_run_dir_is_a_file": (lambda t: (t / "f").write_text("x") and ["eval", f"run_dir={t / 'f'}"], ["run_dir"]),
    "compare_missing_dir": (lambda t: ["compare", str(t / "nowhere")], ["nowhere"]),
    "compare_nothing": (lambda t: ["compare"], ["compare"]),
    "list_unknown_kind": (lambda t: ["list", "neuronz"], ["list", "neurons"]),
    "unknown_command": (lambda t: ["trian"], ["unknown command", "train"]),
    "probe_unknown_neuron": (lambda t: ["probe", "neuron=nope"], ["neuron", "nope"]),
    "probe_zero_time_constant": (lambda t: ["probe", "neuron=lif", "neuron.tc_decay=0", f"out={t / 'p.png'}"],
                                 ["neuron.tc_decay", "> 0"]),
    "bench_unknown_workload": (lambda t: ["bench", "workload=nope"], ["workload", "nope"]),
    "config_dir_broken_yaml": (lambda t: ["train", "--config-dir", str(_config_dir(t, "name: x\nn: [1, 2\n")),
                                          "+model=broken", *TINY[1:]], ["broken.yaml:3", "not valid YAML"]),
    "config_dir_tab_indent": (lambda t: ["train", "--config-dir=" + str(_config_dir(t, TAB_YAML, "data/x.yaml")),
                                         "+model=diehl_cook", "data=x"], ["x.yaml:2"]),
    "config_dir_missing": (lambda t: ["train", "--config-dir", str(t / "nowhere"), "+model=diehl_cook"],
                           ["--config-dir", "nowhere"]),
    "run_dir_under_a_file": (lambda t: (t / "f").write_text("x") and [*TRAIN, f"hydra.run.dir={t / 'f' / 'run'}"],
                             ["hydra.run.dir", "is a file"]),
    "sweep_dir_under_a_file": (lambda t: (t / "f").write_text("x") and
                               ["-m", *TRAIN, f"hydra.sweep.dir={t / 'f' / 'sweep'}"], ["hydra.sweep.dir"]),
}


@pytest.mark.parametrize("case", sorted(MISC))
def test_other_bad_command(case, finished, inside):
    make_args, names = MISC[case]
    rc, out = snnrun(make_args(inside))
    refused(rc, out, *names)
    assert not (inside / "outputs").exists()
    assert tree(finished[0]) == finished[1]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_run_dir_in_a_read_only_folder(finished, inside):
    ro = inside / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        rc, out = snnrun([*TRAIN, f"hydra.run.dir={ro / 'run'}"])
    finally:
        ro.chmod(0o755)
    refused(rc, out, "hydra.run.dir", "no write permission")
    assert list(ro.iterdir()) == []


# -- 6. faults while running: a full disk, a sweep with one bad point ------------------------------
def _file_size_limit(limit):
    def limit_writes():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return limit_writes


def test_full_disk_names_the_file_and_leaves_no_temp_file(finished, tmp_path):
    """RLIMIT_FSIZE makes every write past 20 kB fail as on a full disk: the config and metrics
    (a few kB) are written, the first checkpoint (~30 kB) is not."""
    rd = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "snnrun", *TRAIN, f"hydra.run.dir={rd}"], capture_output=True,
                       text=True, env=cli_environ(), cwd=tmp_path, timeout=600, preexec_fn=_file_size_limit(20_000))
    out = r.stdout + r.stderr
    refused(r.returncode, out, f"cannot write {rd / 'checkpoint.pt'}", "File too large")
    assert not [p for p in rd.rglob("*") if ".tmp" in p.name], sorted(rd.rglob("*"))
    assert not (rd / "checkpoint.pt").exists() and not (rd / "summary.json").exists()
    assert not (rd / ".snnrun.lock").exists()
    assert tree(finished[0]) == finished[1]


def test_a_write_that_fails_midway_removes_its_temp_file(tmp_path):
    """The one writer of run files: a failing write leaves the old file and no temp file."""
    from snnrun.errors import OutputError
    from snnrun.run.files import atomic_write

    target = tmp_path / "summary.json"
    target.write_text("old")

    def half_then_full(f):
        f.write(b"new, half written")
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputError) as e:
        atomic_write(target, half_then_full)
    assert str(target) in str(e.value) and "disk" in str(e.value)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_a_write_failure_hidden_by_the_writers_own_error_is_still_named(tmp_path):
    """torch.save's zip writer, closing after a full disk, raises its own RuntimeError ("unexpected
    pos ...") over the OSError (seen on the GPU machine, where the checkpoint is written from a
    background thread): the OSError in the chain is what the user is told."""
    from snnrun.errors import OutputError
    from snnrun.run.files import atomic_write

    target = tmp_path / "checkpoint.pt"

    def full_then_zip_error(f):
        try:
            raise OSError(27, "File too large")
        finally:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 19072 vs 18960")

    with pytest.raises(OutputError) as e:
        atomic_write(target, full_then_zip_error)
    assert str(target) in str(e.value) and "File too large" in str(e.value) and "ulimit" in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_a_sweep_with_one_bad_point(finished, tmp_path):
    """``model.n_neurons=10,0``: point 0 trains, point 1 fails; the table names the failure and
    the exit code says the sweep did not fully succeed."""
    sweep = tmp_path / "sweep"
    r = run_cli(["-m", *TRAIN, "model.n_neurons=10,0", f"hydra.sweep.dir={sweep}"], cli_environ(), tmp_path)
    out = r.stdout + r.stderr
    refused(r.returncode, out, "model.n_neurons", "failed")
    assert (sweep / "0" / "summary.json").is_file()  # the good point ran
    assert not (sweep / "1").exists()  # the bad one left no run dir ...
    failed = json.loads((sweep / "failed_jobs" / "1.json").read_text())  # ... but a record
    assert "model.n_neurons=0" in failed["overrides"] and "model.n_neurons" in failed["error"]
    rows = (sweep / "sweep_summary.csv").read_text().splitlines()
    assert rows[0].split(",")[:2] == ["model.n_neurons", "finished"] and rows[0].endswith(",failed")
    assert rows[1].startswith("10,1/1,") and rows[2].startswith("0,0/1,") and "#1: model.n_neurons" in rows[2]
    # compare reads the same record later
    rc, out = snnrun(["compare", str(sweep)])
    assert rc == 0 and "#1:" in out and "got 0" in out, out
    assert tree(finished[0]) == finished[1]


def test_the_corpus_is_large_enough():
    n = len(BAD_TRAIN) + len(BAD_GRADIENT) + len(AT_FINISHED) + len(DAMAGE) + len(DATA_FAULTS) + len(MISC) + 4
    assert n >= 40, n
