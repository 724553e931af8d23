"""AssetPairs -> instruments, symbol names, subscription messages, registry."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tickvault.errors import UsageError
from tickvault.exchanges.base import get_adapter
from tickvault.exchanges.kraken.adapter import ADAPTER, ping_message
from tickvault.exchanges.kraken.symbols import (
    SymbolMap,
    normalize_asset,
    price_decimals,
    qty_decimals,
)
from tickvault.model import Instrument

from .conftest import records

D = Decimal


def test_asset_pairs_to_instruments() -> None:
    listed = ADAPTER.parse_instruments(records("rest_asset_pairs.jsonl")[0].raw)
    by_key = {i.exchange_symbol: i for i in listed}
    assert list(by_key) == ["XXBTZUSD", "XDGUSD", "XETHXXBT", "SOLUSD", "ACAEUR"]
    assert by_key["XXBTZUSD"] == Instrument(
        "kraken", "XXBTZUSD", "BTC-USD", "BTC", "USD", D("0.1"), D("1E-8"),
        "trading", "BTC/USD", ("XBTUSD", "XBT/USD"),
    )  # fmt: skip
    doge = by_key["XDGUSD"]
    assert (doge.symbol, doge.ws_symbol, doge.tick_size) == ("DOGE-USD", "DOGE/USD", D("1E-7"))
    assert by_key["XETHXXBT"].symbol == "ETH-BTC" and by_key["XETHXXBT"].ws_symbol == "ETH/BTC"
    assert by_key["SOLUSD"].symbol == "SOL-USD" and by_key["SOLUSD"].aliases == ("SOL/USD",)
    assert by_key["ACAEUR"].status == "cancel_only" and by_key["ACAEUR"].symbol == "ACA-EUR"
    assert price_decimals(by_key["XDGUSD"]) == 7 and qty_decimals(by_key["XDGUSD"]) == 8
    (usdt,) = ADAPTER.parse_instruments(records("rest_asset_pairs.jsonl")[1].raw)
    assert (usdt.symbol, usdt.ws_symbol, usdt.aliases) == ("BTC-USDT", "BTC/USDT", ("XBT/USDT",))


def test_dark_pools_skipped_and_names_resolve() -> None:
    body = json.loads(records("rest_asset_pairs.jsonl")[0].raw)
    body["result"]["XXBTZUSD.d"] = body["result"]["XXBTZUSD"]  # a dark-pool key
    listed = ADAPTER.parse_instruments(json.dumps(body))
    assert "XXBTZUSD.d" not in {i.exchange_symbol for i in listed}
    names = SymbolMap(listed)
    for name in ("XXBTZUSD", "XBTUSD", "XBT/USD", "BTC/USD"):
        assert names.get(name) is not None and names.get(name).symbol == "BTC-USD"  # type: ignore[union-attr]


def test_asset_table_is_explicit() -> None:
    assert [normalize_asset(c) for c in ("XXBT", "XBT", "XXDG", "XETH", "ZUSD", "ZEUR")] == [
        "BTC", "BTC", "DOGE", "ETH", "USD", "EUR",
    ]  # fmt: skip
    for real_code in ("XTZ", "XRP", "ZRX", "ZEC", "XLM", "SOL", "USDT"):
        assert normalize_asset(real_code) == real_code  # no prefix stripping


def test_subscribe_resync_ping_and_url(instruments: list[Instrument]) -> None:
    btc = next(i for i in instruments if i.symbol == "BTC-USD")
    sol = next(i for i in instruments if i.symbol == "SOL-USD")
    messages = [
        json.loads(m)
        for m in ADAPTER.subscribe_messages(
            [btc, sol], ["book", "trades", "ticker", "candles", "candles:1h"], 20
        )
    ]
    params = [m["params"] for m in messages]
    assert params[0] == {
        "channel": "book",
        "depth": 25,
        "snapshot": True,
        "symbol": ["BTC/USD", "SOL/USD"],
    }
    assert params[1]["channel"] == "trade" and params[2]["channel"] == "ticker"
    assert params[3]["interval"] == 1 and params[4]["interval"] == 60
    assert all(p["channel"] != "heartbeat" for p in params)  # sent unasked once subscribed
    assert [m["req_id"] for m in messages] == [1, 2, 3, 4, 5]
    unsub, sub = (json.loads(m) for m in ADAPTER.resync_messages(btc, 20))
    assert unsub["method"] == "unsubscribe" and unsub["params"]["depth"] == 25
    assert sub["method"] == "subscribe" and sub["params"]["symbol"] == ["BTC/USD"]
    assert json.loads(ping_message(101)) == {"method": "ping", "req_id": 101}
    assert ADAPTER.ws_url("wss://ws.kraken.com", [], []) == "wss://ws.kraken.com/v2"
    assert ADAPTER.ws_url("ws://127.0.0.1:9000/v2/", [], []) == "ws://127.0.0.1:9000/v2"
    assert ADAPTER.book_snapshot_request(btc) is None
    with pytest.raises(UsageError):
        ADAPTER.subscribe_messages([btc], ["candles:3m"], 10)
    assert get_adapter("kraken") is ADAPTER
