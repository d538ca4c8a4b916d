"""Gradient training side by side: SpikingJelly's CSNN against the same network in snnrun (issue 16).

What it measures: training images/s of one epoch over the MNIST training set (or its first
--limit images) of SpikingJelly's convolutional tutorial network (activation_based/examples/
conv_fashion_mnist.py, class CSNN) with T=4 and C channels:

    Conv2d(1, C, 3, pad 1, no bias) - BatchNorm2d - IFNode(ATan) - MaxPool2d(2)
    Conv2d(C, C, 3, pad 1, no bias) - BatchNorm2d - IFNode(ATan) - MaxPool2d(2)
    Flatten - Linear(C*7*7, C*4*4, no bias) - IFNode(ATan) - Linear(C*4*4, 10, no bias) - IFNode(ATan)

multi-step mode, the image repeated over the T steps as a constant input current, loss = MSE between
the output firing rates and one-hot labels, Adam lr 1e-3, batch 128, functional.reset_net after
every batch. The same network in snnrun is conf/model/csnn_sj.yaml, trained by `snnrun train`.

Each side runs in its own process:
  spikingjelly  spikingjelly 2.0.0 imported from --site (installed there from --wheels with
                `pip install --no-deps --target` when missing). Its IFNode has no `backend`
                argument in 2.0 (no CuPy code either): SJ_IF_CUDA_IMPLEMENTATION picks native CUDA,
                Triton or torch; `auto` (default here) takes the first that loads, in that order
                (the PyPI wheel has no native CUDA build, so on a GPU: Triton; on the CPU: torch).
                --sj-modes: eager (the tutorial's loop), compile (torch.compile of the network, as
                SpikingJelly's own train_classify --execution-mode compile), cuda_graph (its own
                StaticCudaGraph around forward+backward, as train_classify --execution-mode
                cuda_graph; CUDA only). Data read from the IDX .gz files with numpy and moved to
                the device once; a few warm-up batches untimed (and the last partial batch's
                shape), then one epoch in a fresh random order timed with torch.cuda.synchronize;
                the loss stays on the device until the end (no host sync per batch).
  snnrun        `python -m snnrun train +model=csnn_sj data=mnist ...` (one epoch, no validation
                split, the same batch, T and channels); images/s = summary.json's
                train_steady_images_per_s (the epoch's time less the one-off torch.compile and
                CUDA-graph capture of each batch shape).
Each prints one JSON line {side, backend, mode, images_per_s, epoch_s, final_loss, ...}; then a
table: both figures, the ratio snnrun / SpikingJelly (against the tutorial's eager loop and against
SpikingJelly's fastest mode measured) and the hardware. Target of issue 16: snnrun >= 2x.

GPU machine (repository root, wheels in .whl/ and .whl/peers/, MNIST in .data/mnist):

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
    PYTHONPATH=/tmp/site python3 tools/peer_csnn.py --device cuda --data .data/mnist \\
        --site /tmp/sj_site --wheels .whl/peers --out ${OUT:-/tmp/peer_csnn}

CPU check (SpikingJelly's torch implementation):

    python tools/peer_csnn.py --device cpu --limit 512 --data /work/shared/data/mnist --site /tmp/sj_site
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository: snnrun and conf/


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--side", default="both", choices=["both", "spikingjelly", "snnrun"],
                   help="both (default: each side in its own process, then the table) or one side here")
    p.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    p.add_argument("--data", required=True, help="folder with the MNIST IDX files (.gz or not)")
    p.add_argument("--limit", type=int, default=0, help="the first N training images (0: all 60,000)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--T", type=int, default=4)
    p.add_argument("--channels", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tf32", action="store_true",
                   help="float32 with TF32 matrix products on both sides (SpikingJelly: torch.set_float32_matmul_"
                        "precision('high') in its process; snnrun: model.learner.amp=tf32); not with --amp")
    p.add_argument("--amp", action="store_true",
                   help="bf16 autocast on both sides (SpikingJelly: torch.autocast around forward and loss; "
                        "snnrun: model.learner.amp=true)")
    p.add_argument("--warmup", type=int, default=5, help="untimed training batches before the epoch")
    p.add_argument("--rounds", type=int, default=1, help="repeat both sides, alternating (medians in the table)")
    p.add_argument("--site", default="/tmp/sj_site", help="where spikingjelly (and loguru) are installed")
    p.add_argument("--wheels", default=str(ROOT / ".whl" / "peers"),
                   help="wheels to install into --site when spikingjelly is missing there")
    p.add_argument("--sj-modes", default="auto",
                   help="comma list of eager, compile, cuda_graph; auto: all three on CUDA, eager on the CPU")
    p.add_argument("--sj-impl", default="auto", choices=["auto", "cuda", "triton", "torch"],
                   help="SJ_IF_CUDA_IMPLEMENTATION (SpikingJelly 2.0's IF neuron on CUDA)")
    p.add_argument("--sj-mode", default="eager", help=argparse.SUPPRESS)  # one child's mode
    p.add_argument("--test-limit", type=int, default=256, help="snnrun: test images evaluated after training (untimed)")
    p.add_argument("--python", default=sys.executable, help="interpreter of both sides")
    p.add_argument("--timeout", type=int, default=420, help="seconds per side (process)")
    p.add_argument("--out", default="", help="folder for the snnrun run dirs, logs and results.jsonl")
    p.add_argument("snnrun_overrides", nargs="*", help="extra `snnrun train` overrides for the snnrun side")
    args = p.parse_args(argv)
    if args.amp and args.tf32:
        p.error("--amp (bf16) and --tf32 exclude each other")
    return args


# ---------------------------------------------------------------------------- data (no torchvision)

def mnist_train(folder: str):
    """The MNIST training images and labels as uint8 arrays, read by snnrun's own IDX reader (the
    same files and layouts ``data=mnist`` accepts; a missing or damaged file is named)."""
    sys.path.insert(0, str(ROOT))
    from snnrun.data.images import IDX_FILES, IDXSource, read_idx
    from snnrun.errors import ConfigError

    source = IDXSource(root=folder, download=False)
    paths = [source.find(stem) for stem in IDX_FILES[True]]
    if None in paths:
        raise SystemExit(f"the MNIST training files ({', '.join(IDX_FILES[True])}, .gz or not) are not in {folder} "
                         f"(nor in its MNIST/raw)")
    try:
        return tuple(read_idx(p) for p in paths)
    except ConfigError as e:
        raise SystemExit(e.message) from None


# ---------------------------------------------------------------------------- the SpikingJelly side

def sj_network(T: int, C: int, n_classes: int = 10):
    """The tutorial's CSNN built from SpikingJelly's own modules (written here, not copied)."""
    import torch.nn as nn
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    def if_node():
        return neuron.IFNode(surrogate_function=surrogate.ATan())

    body = nn.Sequential(
        layer.Conv2d(1, C, kernel_size=3, padding=1, bias=False), layer.BatchNorm2d(C), if_node(),
        layer.MaxPool2d(2, 2),
        layer.Conv2d(C, C, kernel_size=3, padding=1, bias=False), layer.BatchNorm2d(C), if_node(),
        layer.MaxPool2d(2, 2),
        layer.Flatten(),
        layer.Linear(C * 7 * 7, C * 4 * 4, bias=False), if_node(),
        layer.Linear(C * 4 * 4, n_classes, bias=False), if_node(),
    )
    functional.set_step_mode(body, "m")

    class CSNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = body

        def forward(self, x):  # x [B, 1, 28, 28] -> firing rates [B, n_classes]
            x_seq = x.unsqueeze(0).expand(T, *x.shape)  # the image as a constant current over T steps
            return self.body(x_seq).mean(0)

    return CSNN()


def dynamo_graphs() -> int:
    """Graphs torch.compile has compiled so far in this process."""
    try:
        from torch._dynamo.utils import counters

        return int(counters["stats"]["unique_graphs"])
    except Exception:  # private API: best effort
        return -1


def run_spikingjelly(args) -> dict:
    os.environ["SJ_IF_CUDA_IMPLEMENTATION"] = args.sj_impl  # read when spikingjelly's ops load
    sys.path.insert(0, os.path.abspath(args.site))
    import importlib.metadata as md

    import numpy as np
    import torch
    import torch.nn.functional as F

    from loguru import logger
    sj_log = []
    logger.remove()  # SpikingJelly's selection messages go into the record instead of stderr
    logger.add(lambda m: sj_log.append(m.record["message"]), level="INFO")
    from spikingjelly.activation_based import functional

    mode, dev = args.sj_mode, torch.device(args.device)
    cuda = dev.type == "cuda"
    if args.tf32 and cuda:
        torch.set_float32_matmul_precision("high")
    if mode == "cuda_graph" and not cuda:
        raise SystemExit("--sj-modes cuda_graph needs CUDA")
    torch.manual_seed(args.seed)
    x, y = mnist_train(args.data)
    if args.limit:
        x, y = x[:args.limit], y[:args.limit]
    n = len(x)
    # on the device once: float images in [0, 1] (torchvision's ToTensor) and one-hot targets
    X = torch.from_numpy(x.copy()).to(dev).float().div_(255.0).unsqueeze(1)
    Y = F.one_hot(torch.from_numpy(y.astype(np.int64)).to(dev), 10).float()

    net = sj_network(args.T, args.channels).to(dev)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    model = torch.compile(net) if mode == "compile" else net

    def forward_backward(img, target):
        # bf16 autocast with --amp (no cast-weight cache inside a graph capture: torch's rule)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.amp and cuda,
                            cache_enabled=mode != "cuda_graph"):
            fr = model(img)
            loss = F.mse_loss(fr.float(), target)
        loss.backward()
        return loss.detach()

    step_fn = forward_backward
    if mode == "cuda_graph":
        from spikingjelly.activation_based._cuda_graph import StaticCudaGraph, validate_cuda_graph_model

        validate_cuda_graph_model(net)
        step_fn = StaticCudaGraph(forward_backward, warmup_steps=3)

    def train_step(idx):
        opt.zero_grad(set_to_none=mode != "cuda_graph")  # a graph keeps its gradient buffers
        loss = step_fn(X[idx], Y[idx])
        opt.step()
        functional.reset_net(net)
        return loss

    def sync():
        if cuda:
            torch.cuda.synchronize(dev)

    # warm-up (untimed): Triton / inductor compilation, graph capture, cuDNN choices; and the
    # shape of the epoch's last partial batch, so that the timed epoch compiles nothing
    t_w = time.perf_counter()
    order = torch.randperm(n, device=dev)
    for i in range(min(args.warmup, max(n // args.batch, 1))):
        train_step(order[i * args.batch:(i + 1) * args.batch])
    if n % args.batch and n > args.batch:
        train_step(order[:n % args.batch])
    sync()
    warmup_s = time.perf_counter() - t_w

    order = torch.randperm(n, device=dev)
    loss_sum = torch.zeros((), device=dev, dtype=torch.float64)
    graphs_before = dynamo_graphs()
    sync()
    t0 = time.perf_counter()
    for start in range(0, n, args.batch):
        idx = order[start:start + args.batch]
        loss = train_step(idx)
        loss_sum += loss * len(idx)
    sync()
    epoch_s = time.perf_counter() - t0
    compiled_in_epoch = dynamo_graphs() - graphs_before  # 0: the warm-up compiled every shape

    impl = "torch (CPU)"
    if cuda:
        from spikingjelly._ops import if_ as sj_if

        diag = sj_if._selection.diagnostics(dev, execution="compile" if mode == "compile" else "eager")
        impl = diag["implementation"]
        if any("torch-reference" in m for m in sj_log):
            impl += " (torch-reference fallback: see sj_log)"
    versions = {"spikingjelly": md.version("spikingjelly"), "torch": torch.__version__,
                "numpy": np.__version__, "python": platform.python_version()}
    try:
        import triton

        versions["triton"] = triton.__version__
    except ImportError:
        pass
    rec = {"side": "spikingjelly", "backend": f"IFNode {impl}", "mode": mode,
           "images_per_s": n / epoch_s, "epoch_s": epoch_s, "images": n, "warmup_s": warmup_s,
           "final_loss": float(loss), "epoch_loss": float(loss_sum) / n,
           "T": args.T, "batch": args.batch, "channels": args.channels, "device": str(dev),
           "amp": bool(args.amp and cuda), "tf32": bool(args.tf32 and cuda), "hardware": hardware(args.device),
           "versions": versions,
           "sj_if_cuda_implementation": args.sj_impl}
    if mode == "compile":
        rec["graphs_compiled_in_epoch"] = compiled_in_epoch
    if mode == "cuda_graph":
        st = step_fn.stats
        rec["cuda_graph"] = {"captures": st.captures, "replays": st.replays, "eager_fallbacks": st.eager_fallbacks}
    if sj_log:
        rec["sj_log"] = sj_log[:20]
    return rec


# ---------------------------------------------------------------------------- the snnrun side

def snnrun_overrides(args, run_dir: Path) -> list[str]:
    return ["+model=csnn_sj", "data=mnist", f"data.root={os.path.abspath(args.data)}",
            "data.download=false", f"data.limit_train={args.limit or 'null'}", f"data.limit_test={args.test_limit}",
            f"device={args.device}", "trainer.epochs=1", f"trainer.batch_size={args.batch}",
            f"model.T={args.T}", f"model.channels={args.channels}", "model.learner.val_fraction=0",
            f"seed={args.seed}", f"model.learner.amp={'tf32' if args.tf32 else bool(args.amp)}", "logger=plain", f"hydra.run.dir={run_dir}",
            *args.snnrun_overrides]


def run_snnrun(args, out: Path, tag: str = "") -> dict:
    run_dir = out / f"snnrun{tag}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    cmd = [args.python, "-m", "snnrun", "train", *snnrun_overrides(args, run_dir)]
    log = out / f"snnrun{tag}.log"
    t0 = time.perf_counter()
    with open(log, "w") as f:
        try:
            rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT,
                                timeout=args.timeout).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    process_s = time.perf_counter() - t0
    if rc != 0 or not (run_dir / "summary.json").is_file():
        return {"side": "snnrun", "error": f"exit {rc}", "log_tail": tail(log), "cmd": " ".join(cmd)}
    s = json.loads((run_dir / "summary.json").read_text())
    for ckpt in run_dir.glob("checkpoint*.pt"):  # C=128: hundreds of MB each, not needed for the figures
        ckpt.unlink()
    train = [json.loads(line) for line in open(run_dir / "metrics.jsonl")]
    train = [r for r in train if r.get("phase") == "train"]
    cfg = (run_dir / "resolved_config.yaml").read_text()
    trainer = {k: v for k, v in (line.strip().split(": ", 1) for line in cfg.split("\ntrainer:\n", 1)[1].split("\n")
                                 if line.startswith("  ") and ": " in line) if k in ("compile", "cuda_graphs")}
    steady = s.get("train_steady_images_per_s")
    n = s["train_samples"]
    return {"side": "snnrun", "backend": f"snnrun train, compile={trainer.get('compile')}, "
                                         f"cuda_graphs={trainer.get('cuda_graphs')}",
            "mode": "train", "images_per_s": steady, "epoch_s": n / steady if steady else None,
            "images": n, "images_per_s_with_compile": s.get("train_images_per_s"),
            "compile_s": s.get("train_compile_s"), "final_loss": train[-1]["loss"] if train else None,
            "process_s": process_s, "T": args.T, "batch": args.batch, "channels": args.channels,
            "device": s.get("device"), "amp": bool(args.amp and str(s.get("device", "")).startswith("cuda")),
            "hardware": hardware(args.device),
            "versions": {**s.get("versions", {}), "git_commit": s.get("git_commit")},
            "run_dir": str(run_dir), "cmd": " ".join(cmd)}


# ---------------------------------------------------------------------------- orchestration

def tail(path: Path, n: int = 25) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def hardware(device: str) -> str:
    if device.startswith("cuda"):
        try:
            q = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,clocks.max.sm,power.limit",
                                "--format=csv,noheader"], capture_output=True, text=True, timeout=30).stdout
            idx = int(device.split(":")[1]) if ":" in device else 0
            lines = [line.strip() for line in q.splitlines() if line.strip()]
            return lines[idx] if idx < len(lines) else ", ".join(lines)
        except (OSError, subprocess.SubprocessError, ValueError):
            return "CUDA (nvidia-smi unavailable)"
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 platform.processor() or "CPU") if os.path.exists("/proc/cpuinfo") else platform.processor()
    return f"{model}, {os.cpu_count()} logical CPUs"


def ensure_site(args) -> None:
    site = Path(args.site)
    if (site / "spikingjelly" / "__init__.py").is_file():
        return
    wheels = sorted(glob.glob(os.path.join(args.wheels, "*.whl")))
    if not wheels:
        raise SystemExit(f"spikingjelly is not in --site {site} and --wheels {args.wheels} holds no wheels")
    print(f"installing {', '.join(os.path.basename(w) for w in wheels)} into {site}", flush=True)
    subprocess.run([args.python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--target", str(site), *wheels], check=True)


def run_child_sj(args, mode: str, out: Path, tag: str) -> dict:
    argv = [args.python, os.path.abspath(__file__), "--side", "spikingjelly", "--sj-mode", mode,
            "--device", args.device, "--data", args.data, "--limit", str(args.limit), "--batch", str(args.batch),
            "--T", str(args.T), "--channels", str(args.channels), "--seed", str(args.seed),
            "--warmup", str(args.warmup), "--site", args.site, "--sj-impl", args.sj_impl] + (["--amp"] if args.amp else []) + (["--tf32"] if args.tf32 else [])
    log = out / f"spikingjelly_{mode}{tag}.log"
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=args.timeout, cwd=ROOT)
        log.write_text(p.stdout + p.stderr)
        for line in reversed(p.stdout.splitlines()):
            if line.startswith("{"):
                return json.loads(line)
        return {"side": "spikingjelly", "mode": mode, "error": f"exit {p.returncode}", "log_tail": tail(log)}
    except subprocess.TimeoutExpired as e:
        log.write_text(str(e.stdout or "") + str(e.stderr or ""))
        return {"side": "spikingjelly", "mode": mode, "error": f"timeout after {args.timeout} s"}


def table(records: list[dict], args) -> str:
    ok = [r for r in records if r.get("images_per_s")]
    by = {}
    for r in ok:
        by.setdefault((r["side"], r["mode"]), []).append(r["images_per_s"])
    med = {k: statistics.median(v) for k, v in by.items()}
    snn = med.get(("snnrun", "train"))
    hw = next((r["hardware"] for r in records if r.get("hardware")), hardware(args.device))
    n = next((r["images"] for r in ok), "?")
    lines = [f"CSNN (T={args.T}, C={args.channels}, batch {args.batch}"
             f"{', bf16 autocast on both sides' if args.amp and args.device.startswith('cuda') else ''}"
             f"{', TF32 products on both sides' if args.tf32 and args.device.startswith('cuda') else ''}), one training epoch of {n} MNIST images, "
             f"{args.device}: {hw}",
             f"{'side':<14} {'mode / backend':<62} {'images/s':>10} {'epoch s':>8} {'snnrun / this':>14}"]
    for r in records:
        label = f"{r.get('mode', '')} / {r.get('backend', '')}"
        if not r.get("images_per_s"):
            lines.append(f"{r['side']:<14} {label[:62]:<62} failed: {r.get('error')}")
            continue
        ratio = f"{snn / r['images_per_s']:.2f}x" if snn and r["side"] != "snnrun" else ""
        lines.append(f"{r['side']:<14} {label[:62]:<62} {r['images_per_s']:>10.0f} {r['epoch_s']:>8.2f} {ratio:>14}")
    for side in ("spikingjelly", "snnrun"):
        v = next((r["versions"] for r in ok if r["side"] == side), None)
        if v:
            lines.append(f"  {side} versions: " + ", ".join(f"{k} {x}" for k, x in v.items()))
    sj = {m: v for (s, m), v in med.items() if s == "spikingjelly"}
    if snn and sj:
        best = max(sj, key=sj.get)
        parts = [f"snnrun {snn:.0f} images/s"]
        if "eager" in sj:
            parts.append(f"vs SpikingJelly's tutorial loop (eager) {sj['eager']:.0f}: {snn / sj['eager']:.2f}x")
        parts.append(f"vs its fastest mode ({best}) {sj[best]:.0f}: {snn / sj[best]:.2f}x")
        lines.append("ratio (medians over rounds): " + "; ".join(parts) + " (issue 16 target: >= 2x)")
    return "\n".join(lines)


def main(argv=None):
    args = parse(argv)
    if args.side == "spikingjelly":
        print(json.dumps(run_spikingjelly(args)), flush=True)
        return
    out = Path(args.out or tempfile.mkdtemp(prefix="peer_csnn_")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.side == "snnrun":
        print(json.dumps(run_snnrun(args, out)), flush=True)
        return
    ensure_site(args)
    modes = args.sj_modes.split(",") if args.sj_modes != "auto" else \
        (["eager", "compile", "cuda_graph"] if args.device.startswith("cuda") else ["eager"])
    records = []
    with open(out / "results.jsonl", "a") as res:
        for r in range(args.rounds):
            tag = f"_{r + 1}" if args.rounds > 1 else ""
            jobs = [("spikingjelly", m) for m in modes] + [("snnrun", None)]
            if r % 2:
                jobs.reverse()  # alternate the order between rounds
            for side, mode in jobs:
                rec = run_child_sj(args, mode, out, tag) if side == "spikingjelly" else run_snnrun(args, out, tag)
                rec["round"] = r + 1
                records.append(rec)
                line = json.dumps(rec)
                print(line, flush=True)
                res.write(line + "\n")
    print()
    print(table(records, args))
    print(f"(JSON lines, logs and the snnrun run dirs in {out})")


if __name__ == "__main__":
    main()
