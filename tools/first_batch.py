"""Where the time to the first training batch goes: imports, config, data, build, first batch.

    python tools/first_batch.py [train overrides ...]      # e.g. +model=diehl_cook data=mnist data.root=DIR device=cuda

Prints seconds since the interpreter started for each stage (the first batch includes
torch.compile and the CUDA-graph capture of its shape). Run it twice to see a cold and a warm
compile cache (TORCHINDUCTOR_CACHE_DIR picks the cache).
"""

import sys
import time

T0 = time.perf_counter()
stages = []


def mark(name):
    stages.append((name, time.perf_counter() - T0))


import torch  # noqa: E402

mark("import torch")
from snnrun.engine.experiment import build_experiment  # noqa: E402
from snnrun.engine.loop import Trainer  # noqa: E402,F401  (what `snnrun train` imports)
from snnrun.run.compose import compose  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

mark("import snnrun")
cfg = compose("config", sys.argv[1:])
mark("compose config")
if "cuda" in str(cfg.get("device", "auto")) or (cfg.get("device", "auto") == "auto" and torch.cuda.is_available()):
    torch.zeros(1, device="cuda")
    mark("CUDA start")
if str(cfg.trainer.get("compile", "auto")).lower() != "false":
    import torch._dynamo  # noqa: F401  (what torch.compile imports on its first use)
    import torch._inductor.compile_fx  # noqa: F401

    mark("import torch.compile's modules")
from snnrun.data import build_dataset  # noqa: E402

build_dataset(OmegaConf.to_container(cfg.data, resolve=True))
mark("read the data (once more inside the build)")
exp = build_experiment(cfg)
mark("build (data, network)")
bs = int(cfg.trainer.batch_size)
x = exp.train.x[:bs].to(exp.device)
exp.network.train()
exp.present(x)
if exp.device.type == "cuda":
    torch.cuda.synchronize()
mark(f"first batch of {bs} (compile, capture)")
exp.present(x)
if exp.device.type == "cuda":
    torch.cuda.synchronize()
mark("second batch")
prev = 0.0
for name, t in stages:
    print(f"{t:7.2f} s  (+{t - prev:5.2f})  {name}")
    prev = t
