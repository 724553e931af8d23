"""Quarantine by binary COPY: exact payloads, idempotent on the table's key, bursts in one go."""

from __future__ import annotations

import psycopg

from tickvault.model import DecodeError
from tickvault.storage.postgres import PostgresStore, QuarantineRecord
from tickvault.storage.postgres.partitions import us_to_datetime

from .helpers import JAN_2024_NS, count

AWKWARD = 'tab\there, newline\nthere, back\\slash, quote " and \u00e9\u20ac\U0001f600'


def _records(n: int) -> list[QuarantineRecord]:
    return [
        QuarantineRecord("binance", "price_outlier", f"price {i} far from median",
                         f'{{"trade_id":"{i}","price":"{i}.5"}}', JAN_2024_NS + i * 1_000_123,
                         "BTC-USDT", "trades")
        for i in range(n)
    ]  # fmt: skip


async def test_burst_is_stored_once_and_resend_adds_nothing(
    store: PostgresStore, db_url: str
) -> None:
    records = _records(5000)
    batch = [*records, records[7], records[4999]]  # the same reject twice in one batch
    assert await store.quarantine(batch) == 5000
    assert count(db_url, "SELECT count(*) FROM quarantine") == 5000
    assert await store.quarantine(records[:2500]) == 0  # replayed after an outage
    fresh = _records(5002)[5000:]
    assert await store.quarantine([*records[2500:], *fresh]) == 2
    assert count(db_url, "SELECT count(*) FROM quarantine") == 5002


async def test_payloads_round_trip_exactly(store: PostgresStore, db_url: str) -> None:
    held = QuarantineRecord("kraken", "malformed", AWKWARD, AWKWARD, JAN_2024_NS + 123_456_789)
    error = DecodeError("coinbase", "bad_json", "cut off", '{"type":"match",', JAN_2024_NS,
                        "ETH-USD", "matches")  # fmt: skip
    assert await store.quarantine([held, error]) == 2
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT exchange, symbol, channel, reason, detail, raw, recv_ts FROM quarantine"
            " ORDER BY exchange"
        ).fetchall()
    assert rows == [
        ("coinbase", "ETH-USD", "matches", "bad_json", "cut off", '{"type":"match",',
         us_to_datetime(JAN_2024_NS // 1000)),
        ("kraken", None, None, "malformed", AWKWARD, AWKWARD,
         us_to_datetime((JAN_2024_NS + 123_456_789) // 1000)),  # microseconds kept
    ]  # fmt: skip
    listed = await store.list_quarantine("kraken")
    assert listed == [
        QuarantineRecord("kraken", "malformed", AWKWARD, AWKWARD, JAN_2024_NS + 123_456_000)
    ]


async def test_rows_stored_by_the_former_insert_path_are_recognised(
    store: PostgresStore, db_url: str
) -> None:
    old = _records(3)
    with psycopg.connect(db_url) as conn:  # as the previous executemany INSERT stored them
        conn.cursor().executemany(
            "INSERT INTO quarantine (exchange, symbol, channel, reason, detail, raw, recv_ts)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [(q.exchange, q.symbol, q.channel, q.reason, q.detail, q.raw,
              us_to_datetime(q.recv_ns // 1000)) for q in old],
        )  # fmt: skip
    assert await store.quarantine(_records(4)) == 1
    assert count(db_url, "SELECT count(*) FROM quarantine") == 4
    assert await store.quarantine([]) == 0
