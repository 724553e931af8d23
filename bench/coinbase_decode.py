"""Coinbase decode throughput against a baseline measured in the same run.

Baseline: ``json.loads`` of the same messages (parsing only, no validation, no events).
Run: ``.venv/bin/python -m bench.coinbase_decode`` (about a second).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tickvault.exchanges.capture import read_capture
from tickvault.exchanges.coinbase.feed import CoinbaseFeed
from tickvault.model import Instrument

FIXTURES = Path(__file__).parents[1] / "tests" / "fixtures" / "coinbase"
INSTRUMENTS = [
    Instrument("coinbase", p, p, p.split("-")[0], p.split("-")[1])  # test ids, all BASE-QUOTE
    for p in ("BTC-USD", "ETH-USD", "SOL-USD", "BAND-GBP", "SKL-BTC")
]


def _rate(fn: object, messages: list[str], rounds: int) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        for raw in messages:
            fn(raw)  # type: ignore[operator]
    return rounds * len(messages) / (time.perf_counter() - start)


def main() -> None:
    names = ("advanced_ws_sol_session.jsonl", "advanced_ws_docs.jsonl", "exchange_ws_docs.jsonl")
    messages = [r.raw for n in names for r in read_capture(FIXTURES / n)]
    rounds = 2000
    baseline = _rate(json.loads, messages, rounds)

    def feed_one(raw: str) -> None:
        CoinbaseFeed(INSTRUMENTS, 10).on_message(raw, 0)

    feed = CoinbaseFeed(INSTRUMENTS, 10)
    stateful = _rate(lambda raw: feed.on_message(raw, 0), messages, rounds)
    fresh = _rate(feed_one, messages, rounds // 4)
    print(f"json.loads baseline      {baseline:12,.0f} msg/s  1.00x")
    print(f"CoinbaseFeed.on_message  {stateful:12,.0f} msg/s  {stateful / baseline:.2f}x")
    print(f"  (+ new feed per msg)   {fresh:12,.0f} msg/s  {fresh / baseline:.2f}x")


if __name__ == "__main__":
    main()
