"""One exception hierarchy, so callers (and the CLI) can catch at any level.

Every error carries a message meant for a person: what went wrong and, where possible, how to
fix it. The CLI prints ``str(error)`` on one line and exits non-zero.
"""

from __future__ import annotations


class TickvaultError(Exception):
    """Base class of every error tickvault raises on purpose."""

    exit_code = 1


class ConfigError(TickvaultError):
    """Settings are missing, malformed or inconsistent."""

    exit_code = 2


class UsageError(TickvaultError):
    """A command was given arguments that cannot work (unknown exchange, bad time range)."""

    exit_code = 2


class StorageError(TickvaultError):
    """PostgreSQL or Redis is unreachable, of the wrong version, or refused a write."""

    exit_code = 3


class SchemaError(StorageError):
    """The database schema is missing or of a version this tickvault does not know."""


class EmbeddedServerError(StorageError):
    """The embedded PostgreSQL or Redis server could not be started."""


class ExchangeError(TickvaultError):
    """An exchange (or the simulator) answered with an error or could not be reached."""

    exit_code = 4


class RateLimitError(ExchangeError):
    """The exchange asked us to slow down (HTTP 429) or banned us (HTTP 418)."""

    def __init__(self, message: str, retry_after_s: float, banned: bool = False) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.banned = banned


class ValidationError(TickvaultError):
    """A record failed validation; carried with its reason to the quarantine."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
