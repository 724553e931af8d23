"""``tickvault replay`` end to end on every exchange's recorded fixtures (real messages)."""

from __future__ import annotations

import gzip
import shutil
from collections import Counter
from pathlib import Path

import msgspec

from tickvault.exchanges.binance.adapter import ADAPTER as BINANCE
from tickvault.exchanges.capture import read_capture

from .conftest import (
    BINANCE_RECORDING,
    FIXTURES,
    events_by_type,
    kraken_instruments,
    store_instruments,
    table_row,
)


def _direct_binance_books() -> dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]]:
    """The recording fed straight to a BinanceFeed, as tests/unit/binance does."""
    records = list(read_capture(BINANCE_RECORDING))
    feed = BINANCE.new_feed(BINANCE.parse_instruments(records[0].raw), 10)
    for record in records[1:]:
        if record.kind == "ws":
            feed.on_message(record.raw, record.ts_ns)
        else:
            symbol_id = record.url.split("symbol=")[1].split("&")[0]
            feed.on_rest_snapshot(symbol_id, record.raw, record.ts_ns)
    return feed.books()


def test_binance_recording_gz(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out, books_out = tmp_path / "events.jsonl", tmp_path / "books.json"
    result = run_cli(["replay", BINANCE_RECORDING, "--out", out, "--books-out", books_out])
    assert result.exit_code == 0, result.stderr
    # 177 depth diffs: 172 applied (one book snapshot each, 149/9/13/1 per symbol), 5 older
    # than the REST snapshots dropped; 84 bookTickers, 2 klines, 2 aggTrades.
    assert events_by_type(out) == {"book_snapshot": 172, "candle": 2, "ticker": 84, "trade": 2}
    per_symbol = Counter(
        event["symbol"]
        for event in map(msgspec.json.decode, out.read_bytes().splitlines())
        if event["type"] == "book_snapshot"
    )
    assert per_symbol == {"NKN-USDT": 149, "BLZ-ETH": 9, "LRC-BTC": 13, "RUNE-EUR": 1}
    assert table_row(result.stdout, "messages") == ["265"]
    assert table_row(result.stdout, "REST book snapshots") == ["4"]
    for label in ("decode errors", "sequence gaps", "checksum failures", "resyncs"):
        assert table_row(result.stdout, label) == ["0"]
    assert "270 capture lines in 1 files (0 malformed, 0 truncated)" in result.stdout
    books = msgspec.json.decode(books_out.read_bytes())
    nkn = books["binance"]["NKN-USDT"]
    assert nkn["bids"][0] == ["0.35270000", "9602.00000000"]
    assert nkn["asks"][0] == ["0.35310000", "152.00000000"]
    direct = _direct_binance_books()
    assert set(books["binance"]) == set(direct)
    for symbol, (bids, asks) in direct.items():
        assert books["binance"][symbol] == {"bids": [list(b) for b in bids],
                                            "asks": [list(a) for a in asks]}  # fmt: skip


def test_binance_older_recording_and_documented_examples(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = FIXTURES / "binance"
    files = [
        "exchange_info_2021-08-14.jsonl",
        "streams_2021-08-14.jsonl",
        "documented_examples.jsonl",
    ]
    out = tmp_path / "events.jsonl"
    result = run_cli(["replay", *(folder / f for f in files), "--out", out])
    assert result.exit_code == 0, result.stderr
    # The documented examples are of BNBBTC, which the 2021-08 symbol list lacks: their trade
    # (twice), 24 h ticker and depth20 are unknown_symbol; the REST error shape is an
    # exchange_error. Their URL differs: one reconnect, a disconnect gap per stream seen.
    assert table_row(result.stdout, "messages") == ["56"]
    assert table_row(result.stdout, "reconnects") == ["1"]
    assert table_row(result.stdout, "unknown_symbol") == ["4"]
    assert table_row(result.stdout, "exchange_error") == ["1"]
    assert events_by_type(out) == {"candle": 17, "gap": 8, "ticker": 4, "trade": 28}


def test_coinbase_all_fixtures_with_captured_product_lists(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = FIXTURES / "coinbase"
    files = [folder / "rest.jsonl", *sorted(folder.glob("*_ws_*.jsonl"))]
    out, books_out = tmp_path / "events.jsonl", tmp_path / "books.json"
    result = run_cli(["replay", *files, "--out", out, "--books-out", books_out])
    assert result.exit_code == 0, result.stderr
    # Both product lists (Exchange /products, Advanced /market/products) are read: 5 markets.
    assert table_row(result.stdout, "instruments") == ["5 (capture)"]
    assert table_row(result.stdout, "messages") == ["24"]
    # Markets of the recordings missing from the two lists (BAND-GBP, SKL-BTC, ETH-USD,
    # SOL-USD...) are unknown_product; the docs' Advanced examples all carry sequence_num 0.
    assert table_row(result.stdout, "unknown_product") == ["8"]
    assert table_row(result.stdout, "exchange_error") == ["1"]
    assert table_row(result.stdout, "sequence gaps") == ["8"]
    assert table_row(result.stdout, "reconnects") == ["2"]  # advanced -> pro -> exchange URL
    assert table_row(result.stdout, "checksum failures") == ["0"]
    assert events_by_type(out) == {
        "book_delta": 1, "book_snapshot": 2, "candle": 1, "gap": 37, "ticker": 2, "trade": 4,
    }  # fmt: skip
    books = msgspec.json.decode(books_out.read_bytes())
    assert books == {
        "coinbase": {
            "BTC-USD": {
                "bids": [["10101.80000000", "0.162567"], ["10101.10", "0.45054140"]],
                "asks": [["10102.55", "0.57753524"]],
            }
        }
    }  # the Exchange docs' level2 snapshot with its l2update applied


def test_kraken_checksummed_recordings_with_stored_instruments(  # type: ignore[no-untyped-def]
    run_cli, tmp_path: Path, database_url: str
) -> None:
    store_instruments(database_url, kraken_instruments())
    folder = FIXTURES / "kraken"
    books_out = tmp_path / "books.json"
    files = [folder / "ws_v2_book_algo.jsonl", folder / "ws_v2_book_guide.jsonl"]
    result = run_cli(["replay", *files, "--books-out", books_out], database_url=database_url)
    assert result.exit_code == 0, result.stderr
    assert table_row(result.stdout, "instruments") == ["12 (stored)"]
    assert table_row(result.stdout, "messages") == ["4"]
    assert table_row(result.stdout, "events: book_snapshot") == ["2"]
    assert table_row(result.stdout, "events: book_delta") == ["1"]
    assert table_row(result.stdout, "checksum failures") == ["0"]
    assert table_row(result.stdout, "decode errors") == ["0"]
    books = msgspec.json.decode(books_out.read_bytes())["kraken"]
    assert books["ALGO-USD"]["bids"][6] == ["0.12275", "6597.51731160"]  # the update's level
    assert len(books["ALGO-USD"]["bids"]) == len(books["ALGO-USD"]["asks"]) == 10
    assert len(books["BTC-USD"]["bids"]) == len(books["BTC-USD"]["asks"]) == 10


def test_kraken_v1_recording_with_captured_asset_pairs(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = FIXTURES / "kraken"
    books_out = tmp_path / "books.json"
    files = [folder / "rest_asset_pairs.jsonl", folder / "ws_v1_book_xbtusd.jsonl"]
    result = run_cli(["replay", *files, "--books-out", books_out])
    assert result.exit_code == 0, result.stderr
    assert table_row(result.stdout, "instruments") == ["6 (capture)"]
    assert table_row(result.stdout, "events: book_delta") == ["3"]  # 3 checksummed updates
    assert table_row(result.stdout, "checksum failures") == ["0"]
    bids = msgspec.json.decode(books_out.read_bytes())["kraken"]["BTC-USD"]["bids"]
    assert bids[:3] == [["5711.70000", "0.00749800"], ["5709.40000", "0.30000000"],
                        ["5709.20000", "8.00000000"]]  # fmt: skip
    assert bids[-1] == ["5705.90000", "7.62400000"] and len(bids) == 10


def test_kraken_every_fixture(run_cli, tmp_path: Path, database_url: str) -> None:  # type: ignore[no-untyped-def]
    store_instruments(database_url, kraken_instruments())
    files = sorted((FIXTURES / "kraken").glob("*.jsonl"))
    out = tmp_path / "events.jsonl"
    result = run_cli(["replay", *files, "--out", out], database_url=database_url)
    assert result.exit_code == 0, result.stderr
    # REST answers (AssetPairs, history pages, Depth) are no WebSocket messages; the
    # AssetPairs answers make the capture's instruments win over the stored ones.
    assert table_row(result.stdout, "instruments") == ["6 (capture)"]
    assert table_row(result.stdout, "messages") == ["29"]
    assert table_row(result.stdout, "checksum failures") == ["0"]
    assert table_row(result.stdout, "reconnects") == ["1"]  # v1 URL -> v2 URL
    counts = events_by_type(out)
    assert counts["book_snapshot"] == 2 and counts["book_delta"] == 3


def test_plain_and_gz_give_the_same_replay(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    plain = tmp_path / "recording.jsonl"
    plain.write_bytes(gzip.decompress(BINANCE_RECORDING.read_bytes()))
    results = []
    for path in (plain, BINANCE_RECORDING):
        out = tmp_path / f"{path.name}.events"
        result = run_cli(["replay", path, "--out", out])
        assert result.exit_code == 0, result.stderr
        results.append(out.read_bytes())
    assert results[0] == results[1] and results[0].count(b"\n") == 260


def test_missing_instruments_is_one_clear_line(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli(["replay", FIXTURES / "kraken" / "ws_v1_book_xbtusd.jsonl"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no kraken instruments")
    assert "Traceback" not in result.stderr


def test_database_without_instruments_table_is_the_same_error(run_cli, database_url: str) -> None:  # type: ignore[no-untyped-def]
    result = run_cli(
        ["replay", FIXTURES / "kraken" / "ws_v1_book_xbtusd.jsonl"], database_url=database_url
    )
    assert result.exit_code == 2 and "no kraken instruments" in result.stderr


def test_missing_file_is_a_usage_error(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run_cli(["replay", tmp_path / "nope.jsonl"])
    assert result.exit_code == 2 and "capture file not found" in result.stderr


def test_corrupted_lines_are_counted_not_fatal(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lines = gzip.decompress(BINANCE_RECORDING.read_bytes()).splitlines(keepends=True)
    broken = tmp_path / "broken.jsonl"
    # line 10: garbage; line 20: a record cut in half; then the file ends mid-record (crash)
    body = [*lines[:9], b"\x00not json at all\n", *lines[9:18], lines[18][:40] + b"\n",
            *lines[19:], lines[100][:55]]  # fmt: skip
    broken.write_bytes(b"".join(body))
    out = tmp_path / "events.jsonl"
    result = run_cli(["replay", broken, "--out", out])
    assert result.exit_code == 0, result.stderr
    assert "(2 malformed, 1 truncated)" in result.stdout
    assert f"{broken}:10: malformed capture line" in result.stderr
    assert f"{broken}:20: malformed capture line" in result.stderr
    assert f"{broken}:{len(body)}: truncated last line" in result.stderr
    # the lost line 19 of the recording is a depth diff of one symbol: at most that book
    # breaks; everything else still replays
    assert table_row(result.stdout, "messages") == ["264"]


def test_corrupt_gzip_stream_is_counted(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cut = tmp_path / "cut.jsonl.gz"
    data = BINANCE_RECORDING.read_bytes()
    cut.write_bytes(data[: len(data) // 2])  # a crash before the gzip trailer
    result = run_cli(["replay", cut])
    assert result.exit_code == 0, result.stderr
    assert "compressed stream ends early" in result.stderr
    assert "1 truncated" in result.stdout


def test_events_file_is_tagged_json_lines(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = FIXTURES / "coinbase"
    shutil.copy(src / "rest.jsonl", tmp_path / "rest.jsonl")
    out = tmp_path / "events.jsonl"
    result = run_cli(
        ["replay", tmp_path / "rest.jsonl", src / "exchange_ws_docs.jsonl", "--out", out]
    )
    assert result.exit_code == 0, result.stderr
    first = msgspec.json.decode(out.read_bytes().splitlines()[0])
    assert first["type"] == "book_snapshot" and first["symbol"] == "BTC-USD"
    assert all(isinstance(price, str) for price, _ in first["bids"])  # exact decimal strings
