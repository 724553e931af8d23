"""The replay engine's API: machine-readable stats, the instrument source hook, routing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickvault.errors import UsageError
from tickvault.exchanges.capture import CaptureRecord, read_capture, write_capture
from tickvault.exchanges.replay import Replay, replay_files
from tickvault.model import Gap, MarketEvent

from .conftest import BINANCE_RECORDING, FIXTURES, kraken_instruments


def test_stats_dataclass_and_event_sink() -> None:
    seen: list[MarketEvent | Gap] = []
    stats, books = replay_files([BINANCE_RECORDING], event_sink=seen.extend)
    binance = stats.exchanges["binance"]
    assert (binance.messages, binance.snapshot_records, binance.instrument_records) == (265, 4, 1)
    assert binance.events_by_type == {"book_snapshot": 172, "candle": 2, "ticker": 84, "trade": 2}
    assert stats.events_by_type == binance.events_by_type and len(seen) == 260
    assert (stats.decode_errors, stats.sequence_gaps, stats.checksum_failures) == (0, 0, 0)
    assert stats.messages_per_s > 0 and stats.lines == 270
    assert sorted(books["binance"]) == ["BLZ-ETH", "LRC-BTC", "NKN-USDT", "RUNE-EUR"]


def test_instrument_source_is_asked_only_without_a_captured_list() -> None:
    asked: list[str] = []

    def source(exchange: str) -> list:  # type: ignore[type-arg]
        asked.append(exchange)
        return kraken_instruments()

    kraken = FIXTURES / "kraken"
    replay_files([kraken / "rest_asset_pairs.jsonl", kraken / "ws_v1_book_xbtusd.jsonl"],
                 instrument_source=source)  # fmt: skip
    assert asked == []
    stats, _ = replay_files([kraken / "ws_v2_book_algo.jsonl"], instrument_source=source)
    assert asked == ["kraken"] and stats.exchanges["kraken"].instruments_from == "stored"
    assert stats.exchanges["kraken"].checksum_failures == 0


def test_instrument_list_after_the_messages_is_still_used(tmp_path: Path) -> None:
    """Instruments are read in a first pass: their position in the capture does not matter."""
    kraken = FIXTURES / "kraken"
    records = [*read_capture(kraken / "ws_v1_book_xbtusd.jsonl"),
               *read_capture(kraken / "rest_asset_pairs.jsonl")]  # fmt: skip
    capture = tmp_path / "late.jsonl.gz"
    write_capture(capture, records)
    stats, books = replay_files([capture])
    assert stats.exchanges["kraken"].events_by_type == {"book_delta": 3, "book_snapshot": 1}
    assert len(books["kraken"]["BTC-USD"]["bids"]) == 10


def test_snapshot_of_an_unknown_symbol_is_a_counted_error(tmp_path: Path) -> None:
    # the 2021-08 symbol list holds no BTCUSDT
    info = next(read_capture(FIXTURES / "binance" / "exchange_info_2021-08-14.jsonl"))
    depth = next(
        r for r in read_capture(FIXTURES / "binance" / "rest_ccxt_recorded.jsonl")
        if "/depth" in r.url
    )  # fmt: skip
    capture = tmp_path / "c.jsonl"
    write_capture(capture, [info, depth])
    stats, _ = replay_files([capture])
    assert stats.exchanges["binance"].errors_by_reason == {"unknown_symbol": 1}
    assert stats.exchanges["binance"].snapshot_records == 1


def test_unknown_exchange_records_are_counted(tmp_path: Path) -> None:
    capture = tmp_path / "c.jsonl"
    write_capture(capture, [CaptureRecord(1, "bitmex", "ws", "wss://x", "{}")])
    warnings: list[str] = []
    stats, books = replay_files([capture], on_warning=warnings.append)
    assert stats.unknown_exchange_records == 1 and books == {}
    assert warnings == ["records of unknown exchange 'bitmex' skipped"]


def test_no_instruments_names_the_exchange() -> None:
    with pytest.raises(UsageError, match="no kraken instruments"):
        Replay(instrument_source=lambda exchange: []).run(
            [FIXTURES / "kraken" / "ws_v1_book_xbtusd.jsonl"]
        )
