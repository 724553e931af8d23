"""Kraken REST as data: request builders and response parsers (no HTTP client here).

Every response is ``{"error": [...], "result": {...}}`` and ``error`` must be checked even
on HTTP 200; :func:`result_of` raises :class:`RateLimitError` for the throttling errors
(``EGeneral:Too many requests``, ...) so the I/O layer backs off, and
:class:`ExchangeError` for the rest. Result keys are not always the requested pair name
(``pair=XBTUSD`` answers under ``XXBTZUSD``, newer answers under ``BTC/USD``): the single
key other than ``last`` is taken.

Backfill: ``trades`` pages ``Trades`` forward with ``since`` = the previous page's ``last``
(nanoseconds; the cursor). ``candles:<tf>`` pages ``Trades`` too and aggregates the trades
into derived candles (:mod:`aggregate`), because ``OHLC`` never returns more than the latest
720 bars.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from tickvault.errors import ExchangeError, RateLimitError
from tickvault.exchanges.base import BackfillPage, RestRequest
from tickvault.exchanges.kraken.aggregate import (
    CandleCursor,
    aggregate,
    decode_cursor,
    encode_cursor,
    to_candle,
)
from tickvault.exchanges.kraken.schemas import DepthSide, RestEnvelope
from tickvault.exchanges.kraken.wire import (
    EXCHANGE,
    TIMEFRAME_INTERVALS,
    WireError,
    error,
    seconds_decimal_ns,
)
from tickvault.model import (
    NS_PER_S,
    BookSnapshot,
    Candle,
    CandleSource,
    DecodeError,
    Instrument,
    MarketEvent,
    Side,
    Trade,
    bucket_start_ns,
    parse_decimal,
    timeframe_ns,
)

PUBLIC = "/0/public/"
TRADES_PAGE = 1000  # Kraken's maximum ``count``
# Throttling errors: Kraken restricts the IP for a few seconds, longer if calls continue.
RATE_LIMIT_ERRORS = {
    "EGeneral:Too many requests": 5.0,
    "EAPI:Rate limit exceeded": 5.0,
    "EGeneral:Temporary lockout": 60.0,
}
RETRYABLE_ERRORS = frozenset({"EService:Unavailable", "EService:Busy"})

_envelope = msgspec.json.Decoder(RestEnvelope)
_any = msgspec.json.Decoder(float_hook=Decimal)  # REST trade times are JSON floats: keep them exact
_depth = msgspec.json.Decoder(dict[str, DepthSide])


class KrakenRetryableError(ExchangeError):
    """Kraken is busy or unavailable (``EService:*``): retry later."""


def rest_error(errors: list[str]) -> ExchangeError:
    """The exception for a non-empty ``error`` array, rate limits recognisable by type."""
    text = "; ".join(errors)
    for message in errors:
        prefix = message.split(":", 2)[:2]
        retry_after_s = RATE_LIMIT_ERRORS.get(":".join(prefix))
        if retry_after_s is not None:
            return RateLimitError(f"kraken: {text}", retry_after_s=retry_after_s)
        if ":".join(prefix) in RETRYABLE_ERRORS:
            return KrakenRetryableError(f"kraken: {text}")
    return ExchangeError(f"kraken: {text}")


def is_rate_limited(raw: bytes | str) -> bool:
    """Whether a response body is Kraken's throttling answer (for the I/O layer's budget)."""
    try:
        return isinstance(rest_error(_envelope.decode(raw).error), RateLimitError)
    except msgspec.DecodeError:
        return False


def result_of(raw: bytes | str) -> bytes:
    """The raw ``result`` object of a response; raises on an ``error`` entry or bad JSON."""
    try:
        envelope = _envelope.decode(raw)
    except msgspec.DecodeError as exc:
        raise ExchangeError(f"kraken: response is not a Kraken envelope: {exc}") from None
    if envelope.error:
        raise rest_error(envelope.error)
    if not envelope.result:
        raise ExchangeError("kraken: response has neither error nor result")
    return bytes(envelope.result)


def _pair_result(raw: bytes | str) -> tuple[Any, Any]:
    """(the pair's data, ``last``) of a one-pair result."""
    result = _any.decode(result_of(raw))
    if not isinstance(result, dict):
        raise ExchangeError("kraken: result is not an object")
    keys = [k for k in result if k != "last"]
    if len(keys) != 1:
        raise ExchangeError(f"kraken: expected one pair in result, got {keys}")
    return result[keys[0]], result.get("last")


def instruments_request() -> RestRequest:
    return RestRequest(PUBLIC + "AssetPairs", {})


def depth_request(instrument: Instrument, count: int = 100) -> RestRequest:
    return RestRequest(PUBLIC + "Depth", {"pair": instrument.exchange_symbol, "count": str(count)})


def parse_depth(raw: bytes | str, instrument: Instrument, recv_ns: int) -> BookSnapshot:
    """A ``Depth`` answer as a book snapshot; ``ts_ns`` is the newest level's time."""
    try:
        books = _depth.decode(result_of(raw))
        (book,) = books.values()
        bids = tuple((parse_decimal(p), parse_decimal(q)) for p, q, _ in book.bids)
        asks = tuple((parse_decimal(p), parse_decimal(q)) for p, q, _ in book.asks)
    except (msgspec.DecodeError, ValueError) as exc:
        raise ExchangeError(f"kraken Depth: unexpected response: {exc}") from None
    newest_s = max((t for *_, t in (*book.bids, *book.asks)), default=0)
    ts_ns = newest_s * NS_PER_S if newest_s else recv_ns
    return BookSnapshot(EXCHANGE, instrument.symbol, bids, asks, ts_ns, recv_ns)


def trades_request(instrument: Instrument, since_ns: int) -> RestRequest:
    params = {"pair": instrument.exchange_symbol, "since": str(since_ns), "count": str(TRADES_PAGE)}
    return RestRequest(PUBLIC + "Trades", params)


def _trade(row: Any, symbol: str, recv_ns: int) -> Trade:
    if not isinstance(row, list) or len(row) < 6:
        raise WireError("schema", f"trade row {row!r}")
    price, volume, time_s, side = row[0], row[1], row[2], row[3]
    if not isinstance(price, str) or not isinstance(volume, str):
        raise WireError("schema", f"trade price/volume must be strings: {row!r}")
    if not isinstance(time_s, Decimal | int) or isinstance(time_s, bool):
        raise WireError("schema", f"trade time {time_s!r}")
    sides = {"b": Side.BUY, "s": Side.SELL}
    if side not in sides:
        raise WireError("schema", f"trade side {side!r}")
    trade_id = row[6] if len(row) > 6 else None
    ts_ns = seconds_decimal_ns(Decimal(time_s))
    try:
        size = parse_decimal(volume)
        value = parse_decimal(price)
    except ValueError as exc:
        raise WireError("bad_number", str(exc)) from None
    if value <= 0 or size <= 0:
        raise WireError("bad_number", f"non-positive price/volume: {row!r}")
    return Trade(
        exchange=EXCHANGE,
        symbol=symbol,
        trade_id=str(trade_id) if trade_id is not None else f"{ts_ns}:{price}:{volume}",
        price=value,
        size=size,
        side=sides[side],
        ts_ns=ts_ns,
        recv_ns=recv_ns,
    )


def parse_trades(
    raw: bytes | str, instrument: Instrument, recv_ns: int
) -> tuple[list[Trade], int | None, list[DecodeError]]:
    """(trades in time order, ``last`` cursor in ns, errors for rows that failed)."""
    rows, last = _pair_result(raw)
    if not isinstance(rows, list):
        raise ExchangeError("kraken Trades: pair data is not a list")
    trades: list[Trade] = []
    errors: list[DecodeError] = []
    for row in rows:
        try:
            trades.append(_trade(row, instrument.symbol, recv_ns))
        except WireError as exc:
            text = msgspec.json.encode(row).decode()
            errors.append(error(text, recv_ns, exc.reason, str(exc), symbol=instrument.symbol))
    last_ns = int(last) if isinstance(last, str) and last.isdigit() else None
    return trades, last_ns, errors


def ohlc_request(
    instrument: Instrument, timeframe: str, since_ns: int | None = None
) -> RestRequest:
    """The latest (at most 720) exchange bars; ``since`` in seconds returns bars after it."""
    interval = TIMEFRAME_INTERVALS.get(timeframe)
    if interval is None:
        raise ValueError(f"kraken has no {timeframe!r} OHLC interval")
    params = {"pair": instrument.exchange_symbol, "interval": str(interval)}
    if since_ns is not None:
        params["since"] = str(since_ns // NS_PER_S)
    return RestRequest(PUBLIC + "OHLC", params)


def parse_ohlc(
    raw: bytes | str, instrument: Instrument, timeframe: str, recv_ns: int
) -> list[Candle]:
    """Exchange bars, oldest first; the newest row is the uncommitted bar (``closed=False``).

    Rows: ``[time s, open, high, low, close, vwap, volume, count]``.
    """
    rows, _ = _pair_result(raw)
    if not isinstance(rows, list):
        raise ExchangeError("kraken OHLC: pair data is not a list")
    candles: list[Candle] = []
    length = timeframe_ns(timeframe)
    try:
        for index, row in enumerate(rows):
            open_ns = int(row[0]) * NS_PER_S
            o, h, lo, c, vwap, volume = (parse_decimal(v) for v in row[1:7])
            candles.append(
                Candle(
                    EXCHANGE, instrument.symbol, timeframe, open_ns, o, h, lo, c, volume,
                    closed=index < len(rows) - 1, ts_ns=open_ns + length - 1, recv_ns=recv_ns,
                    source=CandleSource.EXCHANGE, trade_count=int(row[7]),
                    vwap=vwap if volume else None,
                )
            )  # fmt: skip
    except (TypeError, ValueError, IndexError) as exc:
        raise ExchangeError(f"kraken OHLC: unexpected row: {exc}") from None
    return candles


# --- backfill -----------------------------------------------------------------------------


def backfill_request(
    instrument: Instrument, kind: str, cursor: str | None, since_ns: int, until_ns: int
) -> RestRequest:
    if kind == "trades":
        return trades_request(instrument, int(cursor) if cursor else since_ns)
    timeframe = _candle_timeframe(kind)
    start_ns = bucket_start_ns(since_ns, timeframe)
    return trades_request(instrument, decode_cursor(cursor).since_ns if cursor else start_ns)


def _candle_timeframe(kind: str) -> str:
    name, _, timeframe = kind.partition(":")
    if name != "candles" or not timeframe:
        raise ValueError(f"unknown backfill kind {kind!r}; use trades or candles:<timeframe>")
    timeframe_ns(timeframe)  # raises for an unknown timeframe
    return timeframe


def parse_backfill_page(
    instrument: Instrument,
    kind: str,
    raw: bytes | str,
    cursor: str | None,
    since_ns: int,
    until_ns: int,
    recv_ns: int,
) -> BackfillPage:
    trades, last_ns, errors = parse_trades(raw, instrument, recv_ns)
    if kind == "trades":
        page_since = int(cursor) if cursor else since_ns
        inside = [t for t in trades if since_ns <= t.ts_ns < until_ns]
        done = _done(trades, last_ns, page_since, until_ns)
        return BackfillPage(list[MarketEvent](inside), None if done else str(last_ns), errors)
    timeframe = _candle_timeframe(kind)
    state = decode_cursor(cursor) if cursor else CandleCursor(bucket_start_ns(since_ns, timeframe))
    seen_id = state.last_trade_id
    # a page may repeat the trade at its ``since`` edge: trade ids are sequential per pair
    fresh = [t for t in trades if t.ts_ns < until_ns and not _seen(t, seen_id)]
    symbol = instrument.symbol
    finished, bar = aggregate(
        fresh, timeframe, state.bar, exchange=EXCHANGE, symbol=symbol, recv_ns=recv_ns
    )
    done = _done(trades, last_ns, state.since_ns, until_ns)
    events: list[MarketEvent] = [c for c in finished if c.open_ns < until_ns]
    if done:
        if bar is not None:
            # complete when the page shows time at or beyond the bar's end; else still forming
            horizon = max([last_ns or 0, *(t.ts_ns for t in trades)])
            closed = horizon >= bar.open_ns + timeframe_ns(timeframe)
            events.append(to_candle(bar, symbol, timeframe, closed, recv_ns, EXCHANGE))
        return BackfillPage(events, None, errors)
    ids = [int(t.trade_id) for t in fresh if t.trade_id.isdigit()]
    next_state = CandleCursor(last_ns or state.since_ns, bar, max(ids, default=seen_id))
    return BackfillPage(events, encode_cursor(next_state), errors)


def _seen(trade: Trade, seen_id: int | None) -> bool:
    return seen_id is not None and trade.trade_id.isdigit() and int(trade.trade_id) <= seen_id


def _done(trades: list[Trade], last_ns: int | None, page_since: int, until_ns: int) -> bool:
    """The range is complete: no trades left, the range end reached, or no progress."""
    if not trades or last_ns is None or last_ns <= page_since:
        return True
    return last_ns >= until_ns or trades[-1].ts_ns >= until_ns
