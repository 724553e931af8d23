"""The cryptofeed side of ``bench/replay.py``; runs in a venv that has cryptofeed (not tickvault).

Usage: ``<cryptofeed venv>/bin/python bench/replay_cryptofeed.py EXCHANGE CAPTURE ROUNDS``.
Prints one JSON object: messages, best time in seconds, counts and the final top of the books.

Offline and through cryptofeed's own parsing code: the symbol map comes from the capture's
recorded instrument list through the exchange class's ``_parse_symbol_data``; the REST depth
snapshot Binance's ``_snapshot`` would download is served from the capture; every WebSocket
message goes through ``Feed.message_handler`` exactly as cryptofeed's connection loop calls it.
Checks on: Binance update-id continuity (always on), crossed-book check (``cross_check``) on
all three, Kraken CRC32 (``checksum_validation``). Callbacks are no-ops that count.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from importlib import metadata
from typing import Any

from cryptofeed.defines import CANDLES, L2_BOOK, TICKER, TRADES
from cryptofeed.exchanges import Binance, Coinbase, Kraken
from cryptofeed.symbols import Symbols

CLASSES = {"binance": Binance, "coinbase": Coinbase, "kraken": Kraken}
CHANNELS = {
    "binance": [L2_BOOK, TRADES, TICKER, CANDLES],
    "coinbase": [L2_BOOK, TRADES],
    "kraken": [L2_BOOK, TRADES, TICKER],
}
SYMBOLS = {
    "binance": ["NKN-USDT", "BLZ-ETH", "LRC-BTC", "RUNE-EUR"],
    "coinbase": ["BTC-USD"],
    "kraken": ["BTC-USD"],
}


def load(path: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, str]]:
    """(instrument answers, WebSocket records, REST depth snapshots by Binance id)."""
    instruments, ws, depth = [], [], {}
    with open(path) as handle:
        for line in handle:
            record = json.loads(line)
            if record["kind"] == "ws":
                ws.append(record)
            elif "/depth" in record["url"]:
                depth[record["url"].split("symbol=")[1].split("&")[0]] = record["raw"]
            else:
                instruments.append(record)
    return instruments, ws, depth


def build(
    exchange: str, instruments: list[dict[str, Any]], depth: dict[str, str]
) -> tuple[Any, dict[str, int]]:
    cls = CLASSES[exchange]
    syms, info = cls._parse_symbol_data(json.loads(instruments[0]["raw"]))
    Symbols.set(cls.id, syms, info)
    counts = {"book": 0, "trade": 0, "ticker": 0, "candle": 0}

    def counter(kind: str) -> Any:
        async def callback(obj: Any, receipt_timestamp: float) -> None:
            counts[kind] += 1

        return callback

    callbacks = {L2_BOOK: counter("book"), TRADES: counter("trade"), TICKER: counter("ticker"),
                 CANDLES: counter("candle")}  # fmt: skip
    options: dict[str, Any] = {"cross_check": True}
    if exchange == "kraken":
        options.update(checksum_validation=True, max_depth=10)  # book-10, CRC32 on
    if exchange == "binance":
        options.update(candle_closed_only=False)  # tickvault emits every kline update too
    feed = cls(symbols=SYMBOLS[exchange], channels=CHANNELS[exchange],
               callbacks={c: callbacks[c] for c in CHANNELS[exchange]}, **options)  # fmt: skip

    async def read(url: str, **_: Any) -> str:  # Binance _snapshot's download, from the capture
        return depth[url.split("symbol=")[1].split("&")[0]]

    feed.http_conn.read = read
    return feed, counts


def top(feed: Any) -> dict[str, list[list[str]]]:
    books = {}
    for symbol, book in feed._l2_book.items():
        bids, asks = book.book.bids.to_list(), book.book.asks.to_list()
        books[symbol] = [[f"{p:f}", f"{q:f}"] for p, q in (*bids[:1], *asks[:1])]
    return books


async def run(feed: Any, messages: list[tuple[str, float]]) -> float:
    handler = feed.message_handler
    start = time.process_time()
    for raw, timestamp in messages:
        await handler(raw, None, timestamp)
    return time.process_time() - start


def main() -> None:
    exchange, path, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    instruments, ws, depth = load(path)
    messages = [(r["raw"], r["ts_ns"] / 1e9) for r in ws]
    best = float("inf")
    for _ in range(rounds):  # a fresh feed each round: the books start empty every time
        feed, counts = build(exchange, instruments, depth)
        best = min(best, asyncio.run(run(feed, messages)))
    print(json.dumps({"messages": len(messages), "seconds": best, "counts": counts,
                      "top": top(feed), "version": metadata.version("cryptofeed")}))  # fmt: skip


if __name__ == "__main__":
    main()
