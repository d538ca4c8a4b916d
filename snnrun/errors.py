"""User-facing errors: printed by the CLI in one block, without a traceback, exit code 2."""

from __future__ import annotations


class ConfigError(Exception):
    """A problem with the user's configuration or input files.

    ``key`` is the dotted config key at fault (``model.network.groups.Ae.type``), so the
    message can point the user at the exact line to change.
    """

    def __init__(self, message: str, key: str | None = None):
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}" if key else message)


class BadValue(ConfigError):
    """A value of the wrong type or outside its range (snnrun/model_schema.py): when the value
    was interpolated from a model-level key (``${model.tau}``), that key is the one to name."""


class TrainingInterrupted(Exception):
    """A training loop stopped on SIGINT/SIGTERM after writing a checkpoint.

    The CLI prints how to resume and exits with ``exit_code`` (128 + signal number, the shell's
    convention, so schedulers see the job was stopped rather than finished).
    """

    def __init__(self, signum: int, run_dir):
        import signal
        from pathlib import Path

        self.signum, self.run_dir = signum, Path(run_dir)
        self.exit_code = 128 + signum
        super().__init__(f"stopped by {signal.Signals(signum).name}; checkpoint written in {self.run_dir}")


class TrainingDiverged(ConfigError):
    """Training stopped because its input, loss or state (weights, thresholds, batch-norm
    statistics) became NaN or inf (snnrun/engine/health.py).

    A user error like a bad config value (exit code 2, no traceback): the message names the
    non-finite tensor and the likely cause, ``key`` the setting to change. No checkpoint holding
    the non-finite state is written, so ``checkpoint.pt`` is the last good one.
    """


class OutputError(Exception):
    """A file of the run could not be written (disk full, a file size limit, no permission, a
    path that is not a directory). The CLI prints it naming the path, without a traceback, exit
    code 1; the writer has removed its temporary file (snnrun/run/files.py)."""

    exit_code = 1

    def __init__(self, path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"cannot write {self.path}: {reason}")
