"""Pure REST builders and page parsers for Coinbase Exchange backfill (no HTTP client here).

Candles, ``GET /products/{id}/candles``: granularity in {60, 300, 900, 3600, 21600, 86400} s,
at most 300 rows per request (a wider range is rejected), rows ``[time, low, high, open, close,
volume]`` newest first, no row for empty intervals, and rows before ``start`` may appear. The
range ``[since, until)`` is walked forward in windows of 300 buckets; ``start``/``end`` are both
bucket opens and both inclusive (as ccxt sends them); the cursor is the next window's first
bucket open in ns. Rows outside the window or the range are dropped, so overlapping answers
cannot produce a candle twice.

Trades, ``GET /products/{id}/trades``: newest first, cursor pagination only (no time filter).
``after=<trade_id>`` returns the trades older than that id. The exchange puts the cursor in the
``CB-AFTER`` header, which is the oldest ``trade_id`` of the page; the parser only sees the body,
so it takes the smallest ``trade_id`` of the page, the same value. Paging stops once a page
reaches back before ``since_ns``. The first request (no cursor) starts from the newest trades,
so trades newer than ``until_ns`` are fetched and dropped: the API offers no way to start at a
time.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from tickvault.errors import ExchangeError, UsageError
from tickvault.exchanges.base import BackfillPage, RestRequest
from tickvault.exchanges.coinbase.decode import EXCHANGE, BadMessage, error, parse_time_ns, positive
from tickvault.exchanges.coinbase.decode_exchange import taker_side
from tickvault.exchanges.coinbase.schemas import ExCandleRow, ExRestTrade
from tickvault.model import (
    NS_PER_S,
    TIMEFRAMES,
    Candle,
    DecodeError,
    Instrument,
    MarketEvent,
    Trade,
    parse_decimal,
)

GRANULARITIES_S = frozenset({60, 300, 900, 3600, 21600, 86400})
MAX_CANDLES = 300
TRADES_LIMIT = 1000

_rows = msgspec.json.Decoder(list[msgspec.Raw])
_candle_row = msgspec.json.Decoder(ExCandleRow)
_trade_row = msgspec.json.Decoder(ExRestTrade)


def candle_granularity_s(kind: str) -> int:
    """``candles:<timeframe>`` -> Coinbase granularity in seconds; ``UsageError`` otherwise."""
    _, sep, timeframe = kind.partition(":")
    seconds = TIMEFRAMES.get(timeframe) if sep and kind.startswith("candles") else None
    if seconds not in GRANULARITIES_S or seconds is None:
        known = ", ".join(tf for tf, s in TIMEFRAMES.items() if s in GRANULARITIES_S)
        raise UsageError(f"coinbase has no {kind!r} history; candle timeframes: {known}")
    return seconds


def _ceil(value: int, step: int) -> int:
    return -(-value // step) * step


def candle_window(
    cursor: str | None, since_ns: int, until_ns: int, granularity_s: int
) -> tuple[int, int]:
    """(first, last) bucket open in ns of the next request, both inclusive; ``first > last``
    means the range holds no bucket."""
    step = granularity_s * NS_PER_S
    first = int(cursor) if cursor is not None else _ceil(since_ns, step)
    last_in_range = _ceil(until_ns, step) - step  # the last bucket opening before until_ns
    return first, min(first + (MAX_CANDLES - 1) * step, last_in_range)


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns // NS_PER_S, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def candles_request(
    instrument: Instrument, kind: str, cursor: str | None, since_ns: int, until_ns: int
) -> RestRequest:
    granularity_s = candle_granularity_s(kind)
    first, last = candle_window(cursor, since_ns, until_ns, granularity_s)
    params = {
        "granularity": str(granularity_s),
        "start": _iso(first),
        "end": _iso(max(first, last)),
    }
    return RestRequest(f"/products/{instrument.exchange_symbol}/candles", params)


def trades_request(instrument: Instrument, cursor: str | None) -> RestRequest:
    params = {"limit": str(TRADES_LIMIT)}
    if cursor is not None:
        params["after"] = cursor
    return RestRequest(f"/products/{instrument.exchange_symbol}/trades", params)


def _rows_of(raw: bytes | str, what: str) -> list[msgspec.Raw]:
    try:
        return _rows.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError):
        # Coinbase answers errors as {"message": "..."}: the I/O layer reports or retries.
        text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
        raise ExchangeError(f"coinbase {what} page is not a list: {text[:200]}") from None


def parse_candles_page(
    instrument: Instrument,
    kind: str,
    raw: bytes | str,
    cursor: str | None,
    since_ns: int,
    until_ns: int,
    recv_ns: int,
) -> BackfillPage:
    granularity_s = candle_granularity_s(kind)
    step = granularity_s * NS_PER_S
    first, last = candle_window(cursor, since_ns, until_ns, granularity_s)
    timeframe = kind.partition(":")[2]
    candles: list[Candle] = []
    errors: list[DecodeError] = []
    for row in _rows_of(raw, "candles"):
        try:
            time_s, low, high, open_, close, volume = _candle_row.decode(row)
            values = [parse_decimal(v) for v in (low, high, open_, close, volume)]
        except (msgspec.DecodeError, ValueError) as exc:
            errors.append(
                error(
                    bytes(row),
                    recv_ns,
                    "schema",
                    f"candle row: {exc}",
                    instrument.symbol,
                    "candles",
                )
            )
            continue
        open_ns = time_s * NS_PER_S
        if not (first <= open_ns <= last and since_ns <= open_ns < until_ns):
            continue  # outside this window: another page owns it
        low, high, open_, close, volume = values
        candles.append(
            Candle(
                exchange=EXCHANGE,
                symbol=instrument.symbol,
                timeframe=timeframe,
                open_ns=open_ns,
                open=open_,
                high=high,
                low=low,
                close=close,
                volume=volume,
                closed=open_ns + step <= recv_ns,
                ts_ns=open_ns,
                recv_ns=recv_ns,
            )
        )
    candles.sort(key=lambda c: c.open_ns)
    nxt = last + step
    next_cursor = str(nxt) if first <= last and nxt < until_ns else None
    return BackfillPage(events=list(candles), next_cursor=next_cursor, errors=errors)


def parse_trades_page(
    instrument: Instrument,
    raw: bytes | str,
    since_ns: int,
    until_ns: int,
    recv_ns: int,
) -> BackfillPage:
    trades: list[Trade] = []
    errors: list[DecodeError] = []
    oldest_id: int | None = None
    oldest_ns: int | None = None
    for row in _rows_of(raw, "trades"):
        try:
            wire = _trade_row.decode(row)
            trade_id = int(str(wire.trade_id))
            ts_ns = parse_time_ns(wire.time)
            trade = Trade(
                exchange=EXCHANGE,
                symbol=instrument.symbol,
                trade_id=str(trade_id),
                price=positive(wire.price, "price"),
                size=positive(wire.size, "size"),
                side=taker_side(wire.side),
                ts_ns=ts_ns,
                recv_ns=recv_ns,
            )
        except msgspec.DecodeError as exc:
            errors.append(
                error(
                    bytes(row), recv_ns, "schema", f"trade row: {exc}", instrument.symbol, "trades"
                )
            )
            continue
        except BadMessage as exc:
            errors.append(
                error(bytes(row), recv_ns, exc.reason, exc.detail, instrument.symbol, "trades")
            )
            continue
        except ValueError as exc:  # a trade_id that is not a number
            errors.append(
                error(bytes(row), recv_ns, "schema", str(exc), instrument.symbol, "trades")
            )
            continue
        if oldest_id is None or trade_id < oldest_id:
            oldest_id, oldest_ns = trade_id, ts_ns
        if since_ns <= ts_ns < until_ns:
            trades.append(trade)
    trades.sort(key=lambda t: (t.ts_ns, int(t.trade_id)))
    done = oldest_id is None or oldest_ns is None or oldest_ns < since_ns or oldest_id <= 1
    events: list[MarketEvent] = list(trades)
    return BackfillPage(events=events, next_cursor=None if done else str(oldest_id), errors=errors)
