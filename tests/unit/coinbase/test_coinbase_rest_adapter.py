"""REST paging covers a range exactly once; adapter messages, signing and registration."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickvault.errors import ExchangeError, UsageError
from tickvault.exchanges.base import get_adapter
from tickvault.exchanges.coinbase.adapter import (
    ADAPTER,
    EXCHANGE_FEED_ADAPTER,
    CoinbaseAdapter,
    ExchangeCredentials,
)
from tickvault.model import Candle, Instrument, Trade

NS = 1_000_000_000
BTC = Instrument("coinbase", "BTC-USD", "BTC-USD", "BTC", "USD")
USDC = Instrument("coinbase", "BTC-USDC", "BTC-USDC", "BTC", "USDC", ws_symbol="BTC-USD")
T0 = 1_710_000_000  # seconds


def _seconds(iso: str) -> int:
    return int(datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())


def candles_endpoint(params: dict[str, str], have: set[int]) -> str:
    """The documented endpoint: rows for buckets in [start, end] that had trades, newest first,
    plus one stray row before ``start`` (the docs warn it may happen); > 300 rows is an error."""
    granularity = int(params["granularity"])
    start, end = _seconds(params["start"]), _seconds(params["end"])
    assert (end - start) // granularity + 1 <= 300, "the exchange rejects > 300 candles"
    opens = [t for t in range(start - granularity, end + 1, granularity) if t in have]
    rows = [[t, 1.5, 2.5, 2, 2.25, 0.001] for t in sorted(opens, reverse=True)]
    return json.dumps(rows)


@settings(max_examples=40, deadline=None)
@given(
    granularity=st.sampled_from([60, 300, 3600, 86400]),
    since_off=st.integers(0, 5000),
    length=st.integers(1, 900),
    missing=st.sets(st.integers(0, 900), max_size=50),
)
def test_candle_paging_covers_range_exactly_once(
    granularity: int, since_off: int, length: int, missing: set[int]
) -> None:
    since_ns = (T0 + since_off * 7) * NS
    until_ns = since_ns + length * granularity * NS + since_off % 3
    first = -(-since_ns // (granularity * NS)) * granularity
    expected = [t for t in range(first, until_ns // NS + 1, granularity) if t * NS < until_ns]
    have = {t for i, t in enumerate(expected) if i not in missing} | {first - granularity}
    kind = {60: "candles:1m", 300: "candles:5m", 3600: "candles:1h", 86400: "candles:1d"}[
        granularity
    ]
    cursor: str | None = None
    seen: list[int] = []
    for _ in range(10_000):
        request = ADAPTER.backfill_request(BTC, kind, cursor, since_ns, until_ns)
        assert request.path == "/products/BTC-USD/candles"
        raw = candles_endpoint(request.params, have)
        page = ADAPTER.parse_backfill_page(BTC, kind, raw, cursor, since_ns, until_ns, until_ns)
        assert page.errors == []
        seen.extend(c.open_ns // NS for c in page.events if isinstance(c, Candle))
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [t for t in expected if t in have]  # each bucket once, in order


def trades_endpoint(params: dict[str, str], ids: list[int]) -> str:
    """Newest first, ``limit`` rows, ``after=<id>`` -> strictly older ids; one trade per second."""
    limit = int(params["limit"])
    older = [
        i for i in sorted(ids, reverse=True) if "after" not in params or i < int(params["after"])
    ]
    rows = [
        {
            "trade_id": i,
            "side": "buy" if i % 2 else "sell",
            "size": "0.01",
            "price": "100.5",
            "time": datetime.fromtimestamp(T0 + i, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        for i in older[:limit]
    ]
    return json.dumps(rows)


@settings(max_examples=25, deadline=None)
@given(total=st.integers(1, 3500), lo=st.integers(0, 3600), span=st.integers(1, 3600))
def test_trade_paging_covers_range_exactly_once(total: int, lo: int, span: int) -> None:
    ids = list(range(1, total + 1))
    since_ns, until_ns = (T0 + lo) * NS, (T0 + lo + span) * NS
    cursor: str | None = None
    seen: list[int] = []
    for _ in range(100):
        request = ADAPTER.backfill_request(BTC, "trades", cursor, since_ns, until_ns)
        page = ADAPTER.parse_backfill_page(
            BTC, "trades", trades_endpoint(request.params, ids), cursor, since_ns, until_ns, 0
        )
        seen.extend(int(t.trade_id) for t in page.events if isinstance(t, Trade))
        cursor = page.next_cursor
        if cursor is None:
            break
    expected = sorted(i for i in ids if since_ns <= (T0 + i) * NS < until_ns)
    assert sorted(seen) == expected and len(seen) == len(set(seen))


def test_trade_sides_are_taker_sides_and_bad_rows_are_errors() -> None:
    raw = json.dumps(
        [
            {
                "trade_id": 3,
                "side": "sell",
                "size": "1",
                "price": "2",
                "time": "2024-03-13T11:00:17Z",
            },
            {
                "trade_id": 2,
                "side": "buy",
                "size": "NaN",
                "price": "2",
                "time": "2024-03-13T11:00:16Z",
            },
            {
                "trade_id": 1,
                "side": "buy",
                "size": "1",
                "price": "2",
                "time": "2024-03-13T11:00:15Z",
            },
        ]
    )
    page = ADAPTER.parse_backfill_page(BTC, "trades", raw, None, 0, 2 * 10**18, 5)
    assert [(t.trade_id, t.side) for t in page.events if isinstance(t, Trade)] == [
        ("1", "sell"),
        ("3", "buy"),
    ]
    assert [e.reason for e in page.errors] == ["bad_decimal"]
    assert page.next_cursor is None  # trade id 1 is the first trade there is


def test_rest_errors_and_bad_kinds() -> None:
    with pytest.raises(ExchangeError):
        ADAPTER.parse_backfill_page(BTC, "trades", '{"message":"NotFound"}', None, 0, 1, 0)
    with pytest.raises(UsageError):
        ADAPTER.backfill_request(BTC, "candles:4h", None, 0, NS)
    with pytest.raises(UsageError):
        ADAPTER.backfill_request(BTC, "klines:1m", None, 0, NS)
    page = ADAPTER.parse_backfill_page(
        BTC, "candles:1m", '[[60,1,2,1,2,"NaN"],[120,"x"]]', None, 0, 600 * NS, 0
    )
    assert [e.reason for e in page.errors] == ["schema", "schema"] and page.events == []
    request = ADAPTER.backfill_request(BTC, "candles:1m", None, 30 * NS, 600 * NS)
    assert request.params == {
        "granularity": "60",
        "start": "1970-01-01T00:01:00Z",
        "end": "1970-01-01T00:09:00Z",
    }


def test_advanced_subscribe_and_resync_messages() -> None:
    messages = [
        json.loads(m)
        for m in ADAPTER.subscribe_messages([BTC, USDC], ["trades", "book", "candles"], 10)
    ]
    assert messages == [
        {"type": "subscribe", "product_ids": ["BTC-USD"], "channel": "market_trades"},
        {"type": "subscribe", "product_ids": ["BTC-USD"], "channel": "level2"},
        {"type": "subscribe", "product_ids": ["BTC-USD"], "channel": "candles"},
        {"type": "subscribe", "channel": "heartbeats"},
    ]
    assert [json.loads(m) for m in ADAPTER.resync_messages(USDC, 10)] == [
        {"type": "unsubscribe", "product_ids": ["BTC-USD"], "channel": "level2"},
        {"type": "subscribe", "product_ids": ["BTC-USD"], "channel": "level2"},
    ]
    assert ADAPTER.book_snapshot_request(BTC) is None
    assert ADAPTER.instruments_request().path == "/products"
    assert get_adapter("coinbase") is ADAPTER
    with pytest.raises(UsageError):
        ADAPTER.subscribe_messages([BTC], ["orders"], 10)


def test_exchange_subscribe_public_and_signed() -> None:
    (public,) = EXCHANGE_FEED_ADAPTER.subscribe_messages(
        [BTC], ["trades", "book", "ticker", "candles"], 10
    )
    assert json.loads(public) == {
        "type": "subscribe",
        "product_ids": ["BTC-USD"],
        "channels": ["matches", "level2_batch", "ticker", "heartbeat"],
    }
    secret = base64.b64encode(b"not a real secret").decode()
    signed_adapter = CoinbaseAdapter(
        ws_feed="exchange",
        credentials=ExchangeCredentials("key-1", secret, "pass-1"),
        clock=lambda: 1700000000.75,
    )
    (signed,) = signed_adapter.subscribe_messages([BTC], ["book"], 10)
    message = json.loads(signed)
    assert message["channels"] == ["level2", "heartbeat"]
    assert (message["key"], message["passphrase"], message["timestamp"]) == (
        "key-1",
        "pass-1",
        "1700000000",
    )
    # the documented recipe: base64(HMAC-SHA256(b64decode(secret), ts + "GET" + path))
    digest = hmac.new(
        b"not a real secret", b"1700000000GET/users/self/verify", hashlib.sha256
    ).digest()
    assert message["signature"] == base64.b64encode(digest).decode()
    unsubscribe, subscribe = (json.loads(m) for m in signed_adapter.resync_messages(BTC, 10))
    assert (unsubscribe["type"], unsubscribe["channels"]) == ("unsubscribe", ["level2"])
    assert (subscribe["type"], subscribe["channels"], subscribe["product_ids"]) == (
        "subscribe",
        ["level2"],
        ["BTC-USD"],
    )
    assert "passphrase='pass-1'" not in repr(signed_adapter.credentials)


def test_usdc_market_is_fed_by_its_usd_alias() -> None:
    feed = ADAPTER.new_feed([USDC], 5)
    raw = (
        '{"channel":"market_trades","timestamp":"2026-09-26T04:15:00.2Z","sequence_num":0,"events":[{"type":"update",'
        '"trades":[{"product_id":"BTC-USD","trade_id":"9","price":"1","size":"2","time":"2026-09-26T04:15:00Z","side":"SELL"}]}]}'
    )
    (trade,) = feed.on_message(raw, 1).events
    assert isinstance(trade, Trade) and trade.symbol == "BTC-USDC" and trade.size == Decimal("2")
    both = ADAPTER.new_feed([BTC, USDC], 5)
    (trade,) = both.on_message(raw, 1).events
    assert trade.symbol == "BTC-USD"
