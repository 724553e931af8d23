import gzip
from pathlib import Path

import pytest

from tickvault.exchanges.capture import (
    CaptureFormatError,
    CaptureRecord,
    CaptureWriter,
    read_capture,
    read_captures,
    write_capture,
)

RECORDS = [
    CaptureRecord(1, "binance", "ws", "wss://x/ws", '{"e":"trade","p":"0.001"}'),
    CaptureRecord(2, "kraken", "rest", "https://k/0/public/Time", '{"error":[]}'),
]


@pytest.mark.parametrize("name", ["c.jsonl", "c.jsonl.gz"])
def test_round_trip_plain_and_gzip(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    write_capture(path, RECORDS)
    assert list(read_capture(path)) == RECORDS


def test_rotating_writer_and_truncated_tail(tmp_path: Path) -> None:
    with CaptureWriter(tmp_path, compress=True, max_bytes=100) as writer:
        for record in RECORDS * 3:
            writer.write(record)
    assert len(writer.paths) >= 2
    assert list(read_captures(writer.paths)) == RECORDS * 3

    torn = tmp_path / "torn.jsonl"
    torn.write_bytes(
        b'{"ts_ns":1,"exchange":"binance","kind":"ws","url":"u","raw":"x"}\n{"ts_ns":2,"exch'
    )
    assert [r.ts_ns for r in read_capture(torn)] == [1]


def test_malformed_line_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl.gz"
    with gzip.open(bad, "wb") as handle:
        handle.write(b'{"ts_ns":"x"}\n{"ts_ns":1,"exchange":"b","kind":"ws","url":"u","raw":"r"}\n')
    with pytest.raises(CaptureFormatError, match=r"bad\.jsonl\.gz:1"):
        list(read_capture(bad))
    assert len(list(read_capture(bad, strict=False))) == 1
