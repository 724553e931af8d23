"""Pure REST request builders and page parsers (no HTTP client here).

Weights are Binance Spot's (``rest-api.md``): exchangeInfo 20, klines 2, aggTrades 4, depth
5 / 25 / 50 / 250 by limit. The I/O layer charges ``RestRequest.weight`` against the budget it
reads from exchangeInfo ``rateLimits`` and corrects it with ``X-MBX-USED-WEIGHT-1M``.

Backfill kinds and their cursors (the opaque string the checkpoint stores):

* ``candles:<tf>`` - ``GET /api/v3/klines``, up to 1000 bars a page, oldest first. The cursor
  is the next ``startTime`` in ms (last open time + 1, the documented way to page: bars are
  identified by open time). A page keeps only bars fully inside ``[since, until)`` that had
  closed by the receive time, so the still-forming bar is never stored as final.
* ``trades`` - ``GET /api/v3/aggTrades``. The first page asks ``startTime=since`` (no
  ``endTime``, which would cap the window at one hour); later pages page by id: the cursor is
  ``id:<next fromId>``. Trade ids are contiguous, so paging by id never skips or repeats a
  trade, even when thousands share one millisecond. The range ends at the first trade at or
  after ``until`` or at a short page (the newest trade).

Rows that fail validation become DecodeErrors on the page and the others are kept; a body that
is not a list at all (an ``{"code", "msg"}`` error) raises :class:`ExchangeError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from tickvault.errors import ExchangeError, UsageError
from tickvault.exchanges.base import BackfillPage, RestRequest
from tickvault.exchanges.binance import schemas
from tickvault.exchanges.binance.decode import NS_PER_MS, _dec, _Reject, trade_event
from tickvault.exchanges.binance.symbols import EXCHANGE
from tickvault.model import TIMEFRAMES, Candle, DecodeError, Instrument, MarketEvent

PAGE_LIMIT = 1000
KLINES_WEIGHT = 2
AGG_TRADES_WEIGHT = 4
EXCHANGE_INFO_WEIGHT = 20

# Kline intervals Binance serves that tickvault also knows ("1M" is not a fixed length).
BINANCE_INTERVALS = frozenset(
    ["1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w"]
)

_ROWS = msgspec.json.Decoder(list[msgspec.Raw])
_KLINE_ROW = msgspec.json.Decoder(schemas.KlineRow)
_AGG_ROW = msgspec.json.Decoder(schemas.AggTradeRow)


def depth_weight(limit: int) -> int:
    """Request weight of ``GET /api/v3/depth`` for ``limit`` levels."""
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


def instruments_request() -> RestRequest:
    return RestRequest("/api/v3/exchangeInfo", {}, EXCHANGE_INFO_WEIGHT)


def depth_request(instrument: Instrument, limit: int) -> RestRequest:
    params = {"symbol": instrument.exchange_symbol, "limit": str(limit)}
    return RestRequest("/api/v3/depth", params, depth_weight(limit))


def _ms_ceil(ts_ns: int) -> int:
    return -(-ts_ns // NS_PER_MS)


def _timeframe(kind: str) -> str | None:
    """``None`` for ``trades``, the timeframe for ``candles:<tf>``; UsageError otherwise."""
    if kind == "trades":
        return None
    prefix, _, timeframe = kind.partition(":")
    if prefix == "candles" and timeframe in BINANCE_INTERVALS and timeframe in TIMEFRAMES:
        return timeframe
    raise UsageError(
        f"binance backfill kind {kind!r} is not supported; use 'trades' or 'candles:<tf>' "
        f"with tf one of {', '.join(sorted(BINANCE_INTERVALS & TIMEFRAMES.keys()))}"
    )


def backfill_request(
    instrument: Instrument,
    kind: str,
    cursor: str | None,
    since_ns: int,
    until_ns: int,
    limit: int = PAGE_LIMIT,
) -> RestRequest:
    timeframe = _timeframe(kind)
    symbol = instrument.exchange_symbol
    if timeframe is not None:
        start_ms = _int_cursor(cursor) if cursor is not None else _ms_ceil(since_ns)
        params = {
            "symbol": symbol,
            "interval": timeframe,
            "startTime": str(start_ms),
            "endTime": str((until_ns - 1) // NS_PER_MS),
            "limit": str(limit),
        }
        return RestRequest("/api/v3/klines", params, KLINES_WEIGHT)
    if cursor is None:
        params = {"symbol": symbol, "startTime": str(_ms_ceil(since_ns)), "limit": str(limit)}
    else:
        if not cursor.startswith("id:"):
            raise UsageError(f"binance trades cursor {cursor!r} is not 'id:<fromId>'")
        params = {"symbol": symbol, "fromId": str(_int_cursor(cursor[3:])), "limit": str(limit)}
    return RestRequest("/api/v3/aggTrades", params, AGG_TRADES_WEIGHT)


def _int_cursor(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"binance backfill cursor {text!r} is not an integer") from None


def _rows(raw: bytes | str, url: str) -> list[msgspec.Raw]:
    try:
        return _ROWS.decode(raw)
    except msgspec.DecodeError:
        text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
        raise ExchangeError(f"binance {url} answered with a non-list body: {text[:200]}") from None


def _row(
    decoder: msgspec.json.Decoder[Any],
    row: msgspec.Raw,
    recv_ns: int,
    instrument: Instrument,
    channel: str,
    errors: list[DecodeError],
    build: Callable[[Any], MarketEvent],
) -> tuple[Any, MarketEvent | None]:
    """One row decoded and built. A failure appends a DecodeError and gives None for the
    event; the wire row is still returned when only building failed (its id/time let the
    cursor move past it)."""
    try:
        wire = decoder.decode(row)
    except msgspec.DecodeError as exc:
        reason = "schema" if isinstance(exc, msgspec.ValidationError) else "malformed_json"
        _row_error(reason, str(exc), row, recv_ns, instrument, channel, errors)
        return None, None
    try:
        return wire, build(wire)
    except _Reject as exc:
        _row_error(exc.reason, exc.detail, row, recv_ns, instrument, channel, errors)
        return wire, None


def _row_error(
    reason: str,
    detail: str,
    row: msgspec.Raw,
    recv_ns: int,
    instrument: Instrument,
    channel: str,
    errors: list[DecodeError],
) -> None:
    text = bytes(row).decode("utf-8", "replace")
    errors.append(DecodeError(EXCHANGE, reason, detail, text, recv_ns, instrument.symbol, channel))


def parse_backfill_page(
    instrument: Instrument,
    kind: str,
    raw: bytes | str,
    cursor: str | None,
    since_ns: int,
    until_ns: int,
    recv_ns: int,
    limit: int = PAGE_LIMIT,
) -> BackfillPage:
    timeframe = _timeframe(kind)
    if timeframe is not None:
        return _klines_page(instrument, timeframe, raw, since_ns, until_ns, recv_ns, limit)
    return _trades_page(instrument, raw, since_ns, until_ns, recv_ns, limit)


def _klines_page(
    instrument: Instrument,
    timeframe: str,
    raw: bytes | str,
    since_ns: int,
    until_ns: int,
    recv_ns: int,
    limit: int,
) -> BackfillPage:
    rows = _rows(raw, "/api/v3/klines")
    events: list[MarketEvent] = []
    errors: list[DecodeError] = []
    last_open_ms: int | None = None
    reached_end = len(rows) < limit

    def build(row: schemas.KlineRow) -> MarketEvent:
        volume = _dec(row[5])
        buy_volume = _dec(row[9])
        return Candle(
            EXCHANGE, instrument.symbol, timeframe, row[0] * NS_PER_MS,
            _dec(row[1]), _dec(row[2]), _dec(row[3]), _dec(row[4]), volume,
            True, row[6] * NS_PER_MS, recv_ns,
            trade_count=row[8], quote_volume=_dec(row[7]),
            buy_volume=buy_volume, sell_volume=volume - buy_volume,
        )  # fmt: skip

    for item in rows:
        bar, candle = _row(_KLINE_ROW, item, recv_ns, instrument, "candles", errors, build)
        if bar is None:
            continue
        last_open_ms = bar[0]
        open_ns, end_ns = bar[0] * NS_PER_MS, (bar[6] + 1) * NS_PER_MS
        if end_ns > until_ns or end_ns > recv_ns:  # beyond the range, or still forming
            reached_end = True
            continue
        if open_ns >= since_ns and candle is not None:
            events.append(candle)
    next_cursor = None
    if not reached_end and last_open_ms is not None:
        next_ms = last_open_ms + 1
        if next_ms * NS_PER_MS < until_ns:
            next_cursor = str(next_ms)
    return BackfillPage(events, next_cursor, errors)


def _trades_page(
    instrument: Instrument,
    raw: bytes | str,
    since_ns: int,
    until_ns: int,
    recv_ns: int,
    limit: int,
) -> BackfillPage:
    rows = _rows(raw, "/api/v3/aggTrades")
    events: list[MarketEvent] = []
    errors: list[DecodeError] = []
    last_id: int | None = None
    reached_end = len(rows) < limit

    def build(row: schemas.AggTradeRow) -> MarketEvent:
        return trade_event(instrument.symbol, row.agg_id, row, recv_ns)

    for item in rows:
        agg, trade = _row(_AGG_ROW, item, recv_ns, instrument, "trades", errors, build)
        if agg is None:
            continue
        last_id = agg.agg_id
        ts_ns = agg.trade_ms * NS_PER_MS
        if ts_ns >= until_ns:
            reached_end = True
            break
        if ts_ns >= since_ns and trade is not None:
            events.append(trade)
    next_cursor = None if reached_end or last_id is None else f"id:{last_id + 1}"
    return BackfillPage(events, next_cursor, errors)
