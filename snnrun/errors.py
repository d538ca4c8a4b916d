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
