"""Shell tab completion: ``snnrun train -sc install=bash`` prints Hydra's bash completer, which on
<TAB> runs ``snnrun -sc query=bash`` with the whole line in ``COMP_LINE``.

What needs no config is completed here, without importing Hydra or torch (a TAB must answer in
well under a second): the subcommand (``snnrun ev<TAB>`` -> ``eval``), the kinds of ``snnrun
list``, and ``run_dir=`` directories of eval/resume/report. Overrides of train, probe and bench are
Hydra's completion on that command's own config (conf/config.yaml, probe.yaml, bench.yaml);
reproduce's on conf/config.yaml (experiment=<TAB> lists the recipes).
"""

from __future__ import annotations

import os

# snnrun list's kinds (cli.registries() plus "models"; tests/test_completion.py checks they agree)
LIST_KINDS = ("neurons", "encoders", "connections", "learners", "decoders", "datasets", "surrogates",
              "generators", "losses", "models")
RUN_DIR_COMMANDS = ("eval", "resume", "report")
HYDRA_CONFIGS = {"train": "config", "probe": "probe", "bench": "bench", "reproduce": "config"}


def words_at_cursor(line: str, point: int | None = None) -> list[str]:
    """The words of ``line`` up to the cursor; the last one is the word being completed ('' after
    a space)."""
    return line[: len(line) if point is None else point].split(" ")


def command_of(words: list[str], commands) -> str | None:
    """The subcommand among the finished words (after the program name), if any."""
    return next((w for w in words[1:-1] if w in commands), None)


def complete(words: list[str], commands) -> list[str] | None:
    """Candidates for the last word of ``words`` (bash filters them by prefix); None: the
    command's overrides, which Hydra completes."""
    cmd, word = command_of(words, commands), words[-1]
    if cmd is None:
        if any(not w.startswith("-") for w in words[1:-1]):  # an unknown word where the command goes
            return []
        return [c for c in commands if c.startswith(word)]
    if cmd == "list":
        return [k for k in LIST_KINDS if k.startswith(word)]
    if cmd in RUN_DIR_COMMANDS:
        if not word.startswith("run_dir="):
            return ["run_dir="] if "run_dir=".startswith(word) else []
        return ["run_dir=" + d for d in directories(word[len("run_dir="):])]
    if cmd in HYDRA_CONFIGS:
        return None
    return []  # compare: bash's own file-name completion (-o default)


def directories(prefix: str) -> list[str]:
    """Directories whose path starts with ``prefix``, each with a trailing slash."""
    head, tail = os.path.split(prefix)
    try:
        names = sorted(os.listdir(os.path.expanduser(head) or "."))
    except OSError:
        return []
    return [os.path.join(head, n) + "/" for n in names
            if n.startswith(tail) and (tail.startswith(".") or not n.startswith("."))
            and os.path.isdir(os.path.join(os.path.expanduser(head) or ".", n))]
