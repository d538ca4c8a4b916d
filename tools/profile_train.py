"""Where a whole `snnrun train` loses time against `snnrun bench`: a torch.profiler window over
training batches of a real run (host and GPU), the GPU's idle gaps inside it, and the host calls
that wait on the GPU.

    python tools/profile_train.py OUT_DIR [train overrides ...]
    # e.g. tools/profile_train.py /tmp/prof +model=diehl_cook data=mnist data.root=DIR device=cuda trainer.batch_size=256

Skips the first SKIP batches (compile, capture; env SKIP, default 40), records the next ACTIVE
(default 40), writes OUT_DIR/trace.json (chrome://tracing) and prints: the window's wall time,
the GPU's busy time (union of its kernels and copies), the longest idle gaps and the host
functions that ran during them, and the top host ops by time.
"""

import json
import os
import sys
import time
from pathlib import Path

from torch.profiler import ProfilerActivity, profile, schedule

from snnrun.engine import loop
from snnrun.run.compose import compose


def busy_and_gaps(events: list[dict]) -> tuple[float, list[tuple[float, float]], float, float]:
    """Union of GPU intervals (us), gaps between them, first start and last end."""
    spans = sorted((e["ts"], e["ts"] + e.get("dur", 0)) for e in events)
    busy, gaps, (cur_s, cur_e) = 0.0, [], spans[0]
    for s, e in spans[1:]:
        if s > cur_e:
            busy += cur_e - cur_s
            gaps.append((cur_e, s))
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    busy += cur_e - cur_s
    return busy, gaps, spans[0][0], cur_e


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    skip, active = int(os.environ.get("SKIP", 40)), int(os.environ.get("ACTIVE", 40))
    cfg = compose("config", sys.argv[2:] + ["logger=plain", "trainer.epochs=1"])
    prof = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA],
                   schedule=schedule(wait=skip, warmup=2, active=active, repeat=1))
    original = loop.Trainer.train_batch

    def train_batch(self, *a, **k):
        r = original(self, *a, **k)
        prof.step()
        return r

    loop.Trainer.train_batch = train_batch
    t0 = time.perf_counter()
    with prof:
        summary = loop.train(cfg, out / f"run-{time.strftime('%Y%m%d-%H%M%S')}")
    print(f"run: {time.perf_counter() - t0:.1f} s, train_steady_images_per_s {summary['train_steady_images_per_s']:.0f}")
    prof.export_chrome_trace(str(out / "trace.json"))
    trace = json.loads((out / "trace.json").read_text())["traceEvents"]
    gpu = [e for e in trace if e.get("ph") == "X" and e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset")]
    host = [e for e in trace if e.get("ph") == "X" and e.get("cat") in ("cpu_op", "python_function", "cuda_runtime",
                                                                        "user_annotation", "cuda_driver")]
    if not gpu:
        print("no GPU events (a CPU run): host ops only")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20, max_name_column_width=60))
        return
    busy, gaps, start, end = busy_and_gaps(gpu)
    span = end - start
    print(f"window: {active} batches, {span / 1e3:.1f} ms; GPU busy {busy / 1e3:.1f} ms ({100 * busy / span:.1f}%), "
          f"idle {(span - busy) / 1e3:.1f} ms in {len(gaps)} gaps")
    for s, e in sorted(gaps, key=lambda g: g[0] - g[1])[:12]:
        during = sorted((h for h in host if h["ts"] < e and h["ts"] + h.get("dur", 0) > s),
                        key=lambda h: -min(h["ts"] + h.get("dur", 0), e) + max(h["ts"], s))[:4]
        print(f"  gap {(e - s) / 1e3:7.3f} ms: " + "; ".join(f"{h['name'][:60]} ({h.get('dur', 0) / 1e3:.2f} ms)" for h in during))
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20, max_name_column_width=60))
    kernels: dict[str, list[float]] = {}
    for e in gpu:
        kernels.setdefault(e["name"][:90], []).append(e.get("dur", 0))
    print(f"top GPU kernels by time in the window ({len(gpu)} events):")
    for name, d in sorted(kernels.items(), key=lambda kv: -sum(kv[1]))[:25]:
        print(f"  {sum(d) / 1e3:9.2f} ms {100 * sum(d) / busy:5.1f}%  x{len(d):<6} {name}")


if __name__ == "__main__":
    main()
