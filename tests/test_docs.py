"""The documentation site (docs/, mkdocs.yml): it builds with warnings as errors, its API reference
covers every registered component, and every command it shows in a ```bash block runs.

Convention (docs/index.md, "How these pages are tested"): a ```bash block is run, page by page in
a fresh folder, each ``snnrun``/``torchrun`` command with tiny sizes appended (TINY_BY_COMMAND; a
key the command sets itself is left as written); a ```sh block is shown but not run (a GPU, a
cluster, the internet, an install). The pages of the quick workflows run in the default test
run; the others are marked slow (``python -m pytest -m slow tests/test_docs.py``).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import cli_environ, snnrun_exe

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

# appended to each command of the docs, unless the command sets the key itself
TRAIN_TINY = {"data.limit_train": "40", "data.limit_test": "20", "trainer.epochs": "1", "logger": "plain"}
TINY_BY_COMMAND = {
    "train": TRAIN_TINY,
    "bench": {"repeats": "1", "warmup": "0"},
}
BENCH_DC_TINY = {"workload.time": "20"}  # ms per sample of the Diehl & Cook workloads
COMMANDS = ("train", "eval", "list", "probe", "resume", "report", "compare", "bench")
QUICK_PAGES = {"getting-started.md", "config.md"}  # the rest: -m slow


def pages() -> list[str]:
    return sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))


def bash_blocks(text: str) -> list[str]:
    """The bodies of the ```bash fenced blocks of a Markdown page, in order."""
    return re.findall(r"^```bash\n(.*?)^```", text, flags=re.M | re.S)


def logical_lines(block: str) -> list[str]:
    """Lines with backslash continuations joined."""
    return block.replace("\\\n", " ").splitlines()


def tiny(line: str) -> str:
    """``line`` with the tiny overrides of its snnrun command appended (other lines unchanged)."""
    code = re.sub(r"\s+#\s.*$", "", line)  # a trailing comment is dropped
    m = re.search(r"\s(\|\||&&|\|)\s", code)
    cmd, rest = (code[:m.start()], code[m.start():]) if m else (code, "")
    words = shlex.split(cmd)
    if "snnrun" not in " ".join(words):
        return line
    sub = next((w for w in words if w in COMMANDS), None)
    extra = dict(TINY_BY_COMMAND.get(sub, {}))
    if sub == "bench" and any(w.startswith("workload=dc_") for w in words):
        extra.update(BENCH_DC_TINY)
    if any(w in ("--help", "-h") for w in words):
        extra = {}
    given = {w.split("=", 1)[0].lstrip("+~") for w in words if "=" in w}
    add = [f"{k}={v}" for k, v in extra.items() if k not in given]
    if not add:
        return line
    # just before the command's first override (Hydra takes the overrides as one run of words:
    # not after `--cfg job`, not before `--config-dir DIR`), else at its end
    after = re.search(rf"\bsnnrun\b.*?\s{sub}(?=\s|$)", cmd).end()
    first = re.search(r"\s(?=[^\s-][^\s]*=)", cmd[after:])
    at = after + first.start() if first else len(cmd.rstrip())
    return cmd[:at] + " " + " ".join(add) + cmd[at:] + rest


def page_script(page: str) -> str:
    lines = [tiny(line) for block in bash_blocks((DOCS / page).read_text()) for line in logical_lines(block)]
    return "\n".join(lines)


def test_tiny_overrides_are_added_to_snnrun_commands_only():
    assert tiny("snnrun train +model=snn_mlp hydra.run.dir=runs/mlp") == \
        "snnrun train data.limit_train=40 data.limit_test=20 trainer.epochs=1 logger=plain +model=snn_mlp " \
        "hydra.run.dir=runs/mlp"
    assert tiny("snnrun -m train +model=snn_mlp 'logger=[plain,csv]' trainer.epochs=2 --cfg job  # two") == \
        "snnrun -m train data.limit_train=40 data.limit_test=20 +model=snn_mlp 'logger=[plain,csv]' " \
        "trainer.epochs=2 --cfg job"
    assert tiny("snnrun train --config-dir examples/x +model=my_net") == \
        "snnrun train --config-dir examples/x data.limit_train=40 data.limit_test=20 trainer.epochs=1 " \
        "logger=plain +model=my_net"
    assert tiny("timeout --signal=INT 20 snnrun train +model=dc hydra.run.dir=r || true") == \
        "timeout --signal=INT 20 snnrun train data.limit_train=40 data.limit_test=20 trainer.epochs=1 " \
        "logger=plain +model=dc hydra.run.dir=r || true"
    assert tiny("torchrun --standalone --nproc_per_node=2 -m snnrun train +model=dc trainer=ddp").startswith(
        "torchrun --standalone --nproc_per_node=2 -m snnrun train data.limit_train=40")
    assert tiny("snnrun bench workload=dc_train device=cpu") == \
        "snnrun bench repeats=1 warmup=0 workload.time=20 workload=dc_train device=cpu"
    assert tiny("snnrun bench --help") == "snnrun bench --help"
    assert tiny("snnrun eval run_dir=runs/a") == "snnrun eval run_dir=runs/a"
    assert tiny("export A=1") == "export A=1"


def test_every_page_is_in_the_nav_and_shows_runnable_commands():
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in pages():
        assert page in nav, f"docs/{page} is not in mkdocs.yml's nav"
    for page in ("getting-started.md", *(f"tutorials/{p.name}" for p in (DOCS / "tutorials").glob("*.md"))):
        assert "snnrun" in page_script(page) or "torchrun" in page_script(page), page


def test_api_reference_covers_every_registered_component():
    """A new neuron model, rule, encoder or decoder shows in the API reference: its module is
    rendered by one of the docs/api pages."""
    from snnrun.cli import registries

    sys.path.insert(0, str(DOCS))
    try:
        from hooks import expand  # docs/hooks.py: what mkdocs renders of the api pages
    finally:
        sys.path.remove(str(DOCS))
    text = "".join(expand(p.read_text()) for p in (DOCS / "api").glob("*.md"))
    rendered = set(re.findall(r"^::: (\S+)", text, re.M))
    for kind in ("neurons", "learners", "encoders", "decoders", "losses", "surrogates", "generators"):
        for name, cls in registries()[kind].items():
            assert cls.__module__ in rendered, f"{kind} '{name}' ({cls.__module__}) is not in docs/api/"


def test_docs_build_with_warnings_as_errors(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                        "-d", str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "WARNING" not in r.stderr, r.stderr
    lif = (tmp_path / "site" / "api" / "neurons" / "index.html").read_text()
    assert "LIFNodes" in lif and "leak towards rest" in lif  # the docstring's equation block is rendered
    assert (tmp_path / "site" / "tutorials" / "write-your-own" / "index.html").is_file()


def _env() -> tuple[dict[str, str], list[str]]:
    env = cli_environ()
    env["OMP_NUM_THREADS"] = "1"
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    exe = snnrun_exe()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env, exe


@pytest.mark.parametrize("page", [pytest.param(p, marks=() if p in QUICK_PAGES else pytest.mark.slow)
                                  for p in pages()])
def test_commands_of_the_page_run(page, tmp_path):
    script = page_script(page)
    if not script.strip():
        pytest.skip(f"docs/{page} shows no ```bash commands")
    env, exe = _env()
    prelude = ["set -euo pipefail"]
    if len(exe) > 1:  # not installed as a console script: the module
        prelude.append(f'snnrun() {{ "{sys.executable}" -m snnrun "$@"; }}')
    if not (Path(sys.executable).parent / "torchrun").exists():
        prelude.append(f'torchrun() {{ "{sys.executable}" -m torch.distributed.run "$@"; }}')
    (tmp_path / "examples").symlink_to(ROOT / "examples")  # the pages run from the repository root
    r = subprocess.run(["bash", "-c", "\n".join(prelude) + "\nset -x\n" + script], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"docs/{page}:\n{r.stdout[-6000:]}\n{r.stderr[-6000:]}"
