"""Fixture access for the Binance tests: every fixture holds real recorded messages (see
tests/fixtures/binance/README.md for where each comes from)."""

from __future__ import annotations

from pathlib import Path

from tickvault.exchanges.capture import CaptureRecord, read_capture

FIXTURES = Path(__file__).parents[2] / "fixtures" / "binance"
RECORDING = "recording_2021-10-12.jsonl.gz"


def records(name: str) -> list[CaptureRecord]:
    return list(read_capture(FIXTURES / name))


def find(name: str, needle: str) -> CaptureRecord:
    """The first record of a fixture whose raw text contains ``needle``."""
    return next(r for r in records(name) if needle in r.raw)


def find_url(name: str, needle: str) -> CaptureRecord:
    """The first record of a fixture whose URL contains ``needle``."""
    return next(r for r in records(name) if needle in r.url)
