"""Kraken v2 book decoding: msgspec typed Decimal decoding vs ``json.loads(parse_float=Decimal)``.

Run: ``.venv/bin/python -m bench.kraken_decode``. Prints per-message times and ratios against
the stdlib baseline measured in the same run (the way Kraken's checksum guide decodes), plus
the full feed path (decode + book apply + checksum) on the same messages. A second or two.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path

from tickvault.exchanges.capture import read_capture
from tickvault.exchanges.kraken.decode_v2 import _books, _envelope
from tickvault.exchanges.kraken.feed import KrakenFeed
from tickvault.model import Instrument

FIXTURE = Path(__file__).parents[1] / "tests" / "fixtures" / "kraken" / "ws_v2_book_algo.jsonl"
ROUNDS = 10_000


def _time(label: str, fn: object, messages: list[str]) -> float:
    assert callable(fn)
    start = time.perf_counter()
    for _ in range(ROUNDS):
        for message in messages:
            fn(message)
    per_us = (time.perf_counter() - start) / (ROUNDS * len(messages)) * 1e6
    print(f"{label:<44} {per_us:8.2f} us/message")
    return per_us


def main() -> None:
    _, snapshot, update = (r.raw for r in read_capture(FIXTURE))
    messages = [update]
    baseline = _time(
        "json.loads(parse_float=Decimal) [baseline]",
        lambda m: json.loads(m, parse_float=Decimal),
        messages,
    )
    typed = _time(
        "msgspec Envelope + list[BookData]",
        lambda m: _books.decode(_envelope.decode(m).data),
        messages,
    )
    algo = Instrument("kraken", "ALGOUSD", "ALGO-USD", "ALGO", "USD", Decimal("0.00001"),
                      Decimal("0.00000001"), ws_symbol="ALGO/USD")  # fmt: skip
    feed = KrakenFeed([algo], 10)
    feed.on_message(snapshot, 0)
    # re-applying the same update is idempotent, so it verifies every time
    update_us = _time(
        "feed: update applied + checksum verified", lambda m: feed.on_message(m, 1), messages
    )
    snapshot_us = _time(
        "feed: 10x10 snapshot + checksum", lambda m: feed.on_message(m, 0), [snapshot]
    )
    print(f"msgspec decode / baseline decode: {typed / baseline:.2f}x time")
    print(
        f"feed update (decode+apply+CRC32) / baseline decode only: {update_us / baseline:.2f}x time"
    )
    print(f"feed snapshot / baseline decode of the update: {snapshot_us / baseline:.2f}x time")
    assert feed.counters.checksum_failures == 0


if __name__ == "__main__":
    main()
