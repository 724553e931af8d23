"""Instruments, rate-limit facts, REST backfill paging and the adapter's stream plumbing."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from tickvault.errors import ExchangeError, UsageError
from tickvault.exchanges.base import RestRequest, get_adapter
from tickvault.exchanges.binance.adapter import ADAPTER, BinanceAdapter, split_instruments
from tickvault.exchanges.binance.decode import parse_depth_snapshot
from tickvault.exchanges.binance.rest import depth_weight
from tickvault.model import Candle, Instrument, Side, Trade

from .helpers import RECORDING, find, find_url, records

D = Decimal
MS = 1_000_000
CCXT = "rest_ccxt_recorded.jsonl"
FAR = 2_000_000_000_000 * MS  # a receive time / range end long after every fixture


def _by(instruments: list[Instrument], symbol: str) -> Instrument:
    return next(i for i in instruments if i.symbol == symbol)


def test_instruments_from_exchange_info(instruments: list[Instrument]) -> None:
    nkn = _by(instruments, "NKN-USDT")
    assert nkn == Instrument(
        exchange="binance", exchange_symbol="NKNUSDT", symbol="NKN-USDT", base="NKN",
        quote="USDT", tick_size=D("0.00010000"), lot_size=D("1.00000000"),
        status="trading", ws_symbol="nknusdt",
    )  # fmt: skip
    assert _by(instruments, "BCC-BTC").status == "break"
    assert _by(instruments, "RUNE-EUR").tick_size == D("0.001")
    assert len(instruments) == 12
    with pytest.raises(ExchangeError, match="malformed"):
        ADAPTER.parse_instruments('{"symbols": [{"symbol": "X"}]}')


def test_rate_limit_facts() -> None:
    info = records(RECORDING)[0].raw
    assert ADAPTER.weight_limit(info) == (1200, 60)  # the 2021 value; read, never hard-coded
    assert ADAPTER.used_weight({"X-MBX-USED-WEIGHT-1M": "31", "Date": "x"}) == 31
    assert ADAPTER.used_weight({"x-mbx-used-weight-1m": "7"}) == 7
    assert ADAPTER.used_weight({"x-mbx-used-weight-1m": "lots"}) is None
    assert ADAPTER.used_weight({}) is None
    assert ADAPTER.instruments_request() == RestRequest("/api/v3/exchangeInfo", {}, 20)


def test_snapshot_request_and_weights(instruments: list[Instrument]) -> None:
    nkn = _by(instruments, "NKN-USDT")
    request = ADAPTER.book_snapshot_request(nkn)
    assert request == RestRequest("/api/v3/depth", {"symbol": "NKNUSDT", "limit": "1000"}, 50)
    assert [depth_weight(n) for n in (5, 100, 101, 500, 1000, 5000)] == [5, 5, 25, 25, 50, 250]
    assert ADAPTER.resync_messages(nkn, 10) == []
    last_id, bids, asks = parse_depth_snapshot(find(CCXT, "lastUpdateId").raw)
    assert last_id == 25445101
    assert bids == [(D("42574.30000000"), D("0.01070000")), (D("42574.20000000"), D("0.00646000"))]
    assert asks[0] == (D("42574.31000000"), D("0.00870000"))


# ---- backfill ------------------------------------------------------------------------------


def _serve_klines(rows: list[list[Any]], params: dict[str, str]) -> str:
    """Answers like /api/v3/klines: open time in [startTime, endTime], oldest first."""
    start, end, limit = int(params["startTime"]), int(params["endTime"]), int(params["limit"])
    return json.dumps([r for r in rows if start <= r[0] <= end][:limit])


def _serve_agg_trades(rows: list[dict[str, Any]], params: dict[str, str]) -> str:
    """Answers like /api/v3/aggTrades: by fromId, else from startTime; oldest first."""
    limit = int(params["limit"])
    if "fromId" in params:
        chosen = [r for r in rows if r["a"] >= int(params["fromId"])]
    else:
        chosen = [r for r in rows if r["T"] >= int(params["startTime"])]
    return json.dumps(chosen[:limit])


def _run(adapter: BinanceAdapter, instrument: Instrument, kind: str, serve: Any, since: int,
         until: int, recv: int = FAR) -> tuple[list[Any], list[RestRequest]]:  # fmt: skip
    events: list[Any] = []
    requests: list[RestRequest] = []
    cursor: str | None = None
    while True:
        request = adapter.backfill_request(instrument, kind, cursor, since, until)
        requests.append(request)
        raw = serve(request.params)
        page = adapter.parse_backfill_page(instrument, kind, raw, cursor, since, until, recv)
        assert not page.errors
        events.extend(page.events)
        if page.next_cursor is None:
            return events, requests
        cursor = page.next_cursor


KLINES = json.loads(find_url(CCXT, "/api/v3/klines").raw)  # BTCUSDT 1h, 3 bars (ccxt recording)


def test_kline_page_exact_values(instruments: list[Instrument]) -> None:
    btc = _by(instruments, "BTC-USDT")
    since = 1706628191000 * MS
    page = ADAPTER.parse_backfill_page(
        btc, "candles:1h", find_url(CCXT, "/api/v3/klines").raw, None, since, FAR, FAR
    )
    assert page.next_cursor is None and not page.errors  # 3 rows < 1000: range exhausted
    assert page.events[0] == Candle(
        "binance", "BTC-USDT", "1h", 1706630400000 * MS, D("43519.34000000"),
        D("43936.00000000"), D("43171.00000000"), D("43488.71000000"), D("20.55495000"),
        True, 1706633999999 * MS, FAR, trade_count=3743, quote_volume=D("891428.42858070"),
        buy_volume=D("10.91428000"), sell_volume=D("9.64067000"),
    )  # fmt: skip
    assert [c.open_ns // MS for c in page.events] == [r[0] for r in KLINES]


@pytest.mark.parametrize("page_limit", [1, 2, 1000])
def test_kline_paging_yields_each_bar_once(instruments: list[Instrument], page_limit: int) -> None:
    adapter = BinanceAdapter(page_limit=page_limit)
    btc = _by(instruments, "BTC-USDT")
    events, requests = _run(
        adapter, btc, "candles:1h", lambda p: _serve_klines(KLINES, p), 1706628191000 * MS, FAR
    )
    assert [c.open_ns // MS for c in events] == [r[0] for r in KLINES]
    assert all(r.path == "/api/v3/klines" and r.weight == 2 for r in requests)
    assert requests[0].params["startTime"] == "1706628191000"
    if page_limit == 1:  # each next page starts one ms after the last open time
        assert [r.params["startTime"] for r in requests[1:3]] == ["1706630400001", "1706634000001"]


def test_kline_range_end_and_still_forming_bar(instruments: list[Instrument]) -> None:
    btc = _by(instruments, "BTC-USDT")
    raw = find_url(CCXT, "/api/v3/klines").raw
    since = 1706630400000 * MS
    # until = open of the third bar: only the first two are inside the range.
    page = ADAPTER.parse_backfill_page(btc, "candles:1h", raw, None, since, 1706637600000 * MS, FAR)
    assert len(page.events) == 2 and page.next_cursor is None
    # Received while the third bar was still forming: it is not stored as final.
    page = ADAPTER.parse_backfill_page(btc, "candles:1h", raw, None, since, FAR, 1706640000000 * MS)
    assert len(page.events) == 2 and page.next_cursor is None


AGG_ROWS = [  # the recording's FTMUSDT aggTrade payloads, in the REST row layout
    {k: v for k, v in json.loads(r.raw)["data"].items() if k not in ("e", "E", "s")}
    for r in records("streams_2021-08-14.jsonl")
    if "ftmusdt@aggTrade" in r.raw
]


@pytest.mark.parametrize("page_limit", [1, 3, 1000])
def test_trade_paging_by_id_yields_each_trade_once(
    instruments: list[Instrument], page_limit: int
) -> None:
    adapter = BinanceAdapter(page_limit=page_limit)
    ftm = _by(instruments, "FTM-USDT")
    since, until = AGG_ROWS[1]["T"] * MS, AGG_ROWS[-2]["T"] * MS  # drop the first and last
    events, requests = _run(adapter, ftm, "trades", lambda p: _serve_agg_trades(AGG_ROWS, p),
                            since, until)  # fmt: skip
    expected = [str(r["a"]) for r in AGG_ROWS if since <= r["T"] * MS < until]
    assert [t.trade_id for t in events] == expected and len(expected) >= 8
    assert requests[0].params == {"symbol": "FTMUSDT", "startTime": str(since // MS),
                                  "limit": str(page_limit)}  # fmt: skip
    assert all("fromId" in r.params for r in requests[1:])
    assert all(r.weight == 4 for r in requests)


def test_agg_trade_row_exact_and_bad_rows(instruments: list[Instrument]) -> None:
    btc = _by(instruments, "BTC-USDT")
    raw = find_url(CCXT, "/api/v3/aggTrades").raw
    page = ADAPTER.parse_backfill_page(btc, "trades", raw, None, 0, FAR, 5)
    assert page.events == [
        Trade("binance", "BTC-USDT", "2913537567", D("73238.70000000"), D("0.00109000"),
              Side.BUY, 1710327661939 * MS, 5)
    ]  # fmt: skip
    row = json.loads(raw)[0]
    bad = json.dumps(
        [{**row, "p": "7.3e4"}, {**row, "T": "1710327661939"}, {**row, "a": row["a"] + 1}]
    )
    page = ADAPTER.parse_backfill_page(btc, "trades", bad, None, 0, FAR, 5)
    assert [e.reason for e in page.errors] == ["bad_decimal", "schema"]
    assert [t.trade_id for t in page.events] == ["2913537568"]
    with pytest.raises(ExchangeError, match="non-list"):
        ADAPTER.parse_backfill_page(btc, "trades", '{"code":-1121,"msg":"Invalid symbol."}',
                                    None, 0, FAR, 5)  # fmt: skip


def test_bad_kinds_and_cursors(instruments: list[Instrument]) -> None:
    btc = _by(instruments, "BTC-USDT")
    for kind in ("candles:5s", "candles:1M", "book", "candles"):
        with pytest.raises(UsageError):
            ADAPTER.backfill_request(btc, kind, None, 0, FAR)
    with pytest.raises(UsageError):
        ADAPTER.backfill_request(btc, "trades", "12345", 0, FAR)
    with pytest.raises(UsageError):
        ADAPTER.backfill_request(btc, "candles:1m", "soon", 0, FAR)


# ---- streams -------------------------------------------------------------------------------


def test_ws_url_and_subscribe(instruments: list[Instrument]) -> None:
    assert get_adapter("binance") is ADAPTER
    url = ADAPTER.ws_url("wss://stream.binance.com:9443/", ["NKN-USDT", "BLZETH"], ["book"])
    assert (
        url == "wss://stream.binance.com:9443/stream?streams=nknusdt@depth@100ms/blzeth@depth@100ms"
    )
    assert ADAPTER.ws_url("wss://x", [], ["book"]) == "wss://x/stream"
    nkn = _by(instruments, "NKN-USDT")
    (message,) = ADAPTER.subscribe_messages([nkn], ["trades", "book", "ticker", "candles:5m"], 10)
    assert json.loads(message) == {
        "method": "SUBSCRIBE",
        "params": ["nknusdt@aggTrade", "nknusdt@depth@100ms", "nknusdt@bookTicker",
                   "nknusdt@ticker", "nknusdt@kline_5m"],
        "id": 1,
    }  # fmt: skip
    with pytest.raises(UsageError):
        ADAPTER.subscribe_messages([nkn], ["orders"], 10)


def test_stream_limit_per_connection(instruments: list[Instrument]) -> None:
    many = [instruments[0]] * 300  # 300 symbols x 4 streams = 1200 > 1024
    channels = ["trades", "book", "ticker"]
    with pytest.raises(UsageError, match="1024"):
        ADAPTER.subscribe_messages(many, channels, 10)
    groups = split_instruments(many, channels)
    assert [len(g) for g in groups] == [256, 44]
    assert all(len(json.loads(ADAPTER.subscribe_messages(g, channels, 10)[0])["params"]) <= 1024
               for g in groups)  # fmt: skip
