"""Query-string parameters of the HTTP API (pure: no I/O).

Every problem is a :class:`ParamError` whose one-line message names the parameter, so a client
sees ``{"error": "parameter 'timeframe': unknown timeframe '7m'; known: ..."}`` with HTTP 400.
Unknown parameters are refused too: a typo (``symbl=``) should not silently mean "default".
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, datetime

from tickvault.errors import UsageError
from tickvault.model import EXCHANGES, TIMEFRAMES, split_symbol
from tickvault.query import parse_time


class ParamError(UsageError):
    """A query parameter is missing, unknown or malformed (HTTP 400)."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"parameter '{name}': {problem}")
        self.param = name


class Params:
    """Typed access to one request's query string; each getter validates one parameter."""

    def __init__(self, query: Mapping[str, str], allowed: Collection[str]) -> None:
        self.query = query
        for name in query:
            if name not in allowed:
                raise ParamError(name, f"unknown parameter; this endpoint takes {_names(allowed)}")

    def text(self, name: str, default: str | None = None) -> str:
        value = self.query.get(name)
        if value is None or value == "":
            if default is None:
                raise ParamError(name, "missing")
            return default
        return value

    def optional(self, name: str) -> str | None:
        value = self.query.get(name)
        return value if value else None

    def exchange(self, name: str = "exchange") -> str:
        value = self.text(name)
        if value not in EXCHANGES:
            raise ParamError(name, f"unknown exchange {value!r}; known: {', '.join(EXCHANGES)}")
        return value

    def symbol(self, name: str = "symbol") -> str:
        value = self.text(name)
        try:
            split_symbol(value)
        except ValueError as exc:
            raise ParamError(name, str(exc)) from None
        return value

    def timeframe(self, name: str = "timeframe") -> str:
        value = self.text(name)
        check_timeframe(name, value)
        return value

    def choice(self, name: str, choices: Collection[str], default: str) -> str:
        value = self.text(name, default)
        if value not in choices:
            raise ParamError(name, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.text(name, str(default))
        try:
            value = int(raw)
        except ValueError:
            raise ParamError(name, f"{raw!r} is not an integer") from None
        if not low <= value <= high:
            raise ParamError(name, f"{value} is out of range {low}..{high}")
        return value

    def time(self, name: str, default: datetime | None = None) -> datetime:
        """ISO-8601 date or time (naive = UTC) or integer nanoseconds since the epoch."""
        raw = self.query.get(name)
        if not raw:
            if default is None:
                raise ParamError(name, "missing (ISO-8601 time or ns since the epoch)")
            return default
        try:
            return parse_time(int(raw) if raw.isdigit() else raw, name)
        except UsageError as exc:
            raise ParamError(name, str(exc).removeprefix(f"{name} ")) from None
        except (OverflowError, ValueError, OSError):
            raise ParamError(name, f"{raw!r} is out of range") from None

    def time_range(self) -> tuple[datetime, datetime]:
        """``start`` (required) and ``end`` (default: now), half-open ``[start, end)``."""
        start = self.time("start")
        end = self.time("end", datetime.now(UTC))
        if start >= end:
            raise ParamError("end", f"{end.isoformat()} is not after start {start.isoformat()}")
        return start, end


def check_timeframe(name: str, value: str) -> None:
    if value not in TIMEFRAMES:
        raise ParamError(name, f"unknown timeframe {value!r}; known: {', '.join(TIMEFRAMES)}")


def _names(names: Collection[str]) -> str:
    return ", ".join(sorted(names)) if names else "no parameters"
