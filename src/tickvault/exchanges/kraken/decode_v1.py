"""WebSocket v1: data arrays ``[channelID, payload..., channelName, pair]`` and event objects.

All v1 decimals are strings with the pair's fixed precision, so the checksum can use them
verbatim. Book updates may carry two payload objects (asks, then bids) with the checksum
``c`` in the last one, and levels may carry a 4th element ``"r"`` (republish: a level coming
back into scope), which is applied like any other level.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from tickvault.exchanges.kraken.symbols import SymbolMap
from tickvault.exchanges.kraken.wire import (
    EXCHANGE,
    INTERVAL_TIMEFRAMES,
    BookMessage,
    CandleUpdate,
    Decoded,
    WireError,
    error,
    seconds_text_ns,
)
from tickvault.exchanges.numbers import plain_decimal, remember
from tickvault.model import Level, Side, Ticker, Trade, parse_decimal

# float_hook keeps any stray JSON float exact; v1 should send none
_decoder = msgspec.json.Decoder(float_hook=Decimal)
_SIDES = {"b": Side.BUY, "s": Side.SELL}
_QUIET_EVENTS = frozenset({"heartbeat", "systemStatus", "pong"})
_PLAIN: dict[str, Decimal] = {}  # plain (hence non-negative) wire strings already parsed


def _dec(value: Any, name: str, *, allow_zero: bool = True) -> Decimal:
    if type(value) is str:  # the common plain shape, already validated or built directly
        number = _PLAIN.get(value)
        if number is None:
            number = plain_decimal(value)
            if number is not None:
                remember(_PLAIN, value, number)
        if number is not None and (allow_zero or number):
            return number
    if not isinstance(value, str):
        raise WireError("schema", f"{name} must be a decimal string, got {value!r}")
    try:
        number = parse_decimal(value)
    except ValueError as exc:
        raise WireError("bad_number", f"{name}: {exc}") from None
    if number < 0 or (not allow_zero and number == 0):
        raise WireError("bad_number", f"{name} out of range: {value!r}")
    return number


def _list(value: Any, name: str, min_len: int = 0) -> list[Any]:
    if not isinstance(value, list) or len(value) < min_len:
        raise WireError("schema", f"{name} must be an array of at least {min_len}, got {value!r}")
    return value


def decode_event(data: bytes, raw: bytes | str, recv_ns: int) -> Decoded:
    out = Decoded()
    try:
        message = _decoder.decode(data)
    except msgspec.DecodeError as exc:
        out.errors.append(error(raw, recv_ns, "malformed_json", str(exc)))
        return out
    event = message.get("event") if isinstance(message, dict) else None
    if event in _QUIET_EVENTS:
        return out
    if event == "subscriptionStatus":
        if message.get("status") == "error":
            detail = f"subscription refused: {message.get('errorMessage')}"
            out.errors.append(error(raw, recv_ns, "subscription_error", detail))
        return out
    out.errors.append(error(raw, recv_ns, "unknown_event", f"event {event!r}"))
    return out


def decode_array(data: bytes, raw: bytes | str, recv_ns: int, symbols: SymbolMap) -> Decoded:
    out = Decoded()
    try:
        message = _decoder.decode(data)
    except msgspec.DecodeError as exc:
        out.errors.append(error(raw, recv_ns, "malformed_json", str(exc)))
        return out
    if len(message) < 4 or not isinstance(message[-2], str) or not isinstance(message[-1], str):
        out.errors.append(error(raw, recv_ns, "schema", "not [id, payload, channel, pair]"))
        return out
    channel, pair = message[-2], message[-1]
    payloads = message[1:-2]
    kind = channel.partition("-")[0]
    instrument = symbols.get(pair)
    try:
        if instrument is None:
            raise WireError("unknown_symbol", f"pair {pair!r} is not a known instrument")
        symbol = instrument.symbol
        if kind == "book":
            out.books.append(_book(payloads, symbol, _suffix(channel), recv_ns))
        elif kind == "trade":
            out.events.extend(trades_v1(payloads, symbol, recv_ns))
        elif kind == "ticker":
            out.events.append(_ticker(payloads, symbol, recv_ns))
        elif kind == "ohlc":
            out.candles.append(_ohlc(payloads, symbol, _suffix(channel)))
        else:
            raise WireError("unknown_channel", f"channel {channel!r}")
    except WireError as exc:
        name = instrument.symbol if instrument else None
        out.errors.append(error(raw, recv_ns, exc.reason, str(exc), symbol=name, channel=kind))
    return out


def _suffix(channel: str) -> int:
    """``book-25`` -> 25, ``ohlc-5`` -> 5."""
    number = channel.partition("-")[2]
    if not number.isdigit():
        raise WireError("schema", f"channel {channel!r} lacks its number")
    return int(number)


def _levels(rows: Any, name: str) -> tuple[list[Level], int]:
    levels: list[Level] = []
    ts_ns = 0
    for row in _list(rows, name):
        row = _list(row, f"{name} level", 3)
        levels.append((_dec(row[0], "price"), _dec(row[1], "volume")))
        ts_ns = max(ts_ns, seconds_text_ns(_str(row[2], "level time")))
    return levels, ts_ns


def _str(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise WireError("schema", f"{name} must be a string, got {value!r}")
    return value


def _book(payloads: list[Any], symbol: str, depth: int, recv_ns: int) -> BookMessage:
    if not payloads or not all(isinstance(p, dict) for p in payloads):
        raise WireError("schema", "book payload must be objects")
    first = payloads[0]
    if "as" in first or "bs" in first:
        asks, asks_ns = _levels(first.get("as", []), "as")
        bids, bids_ns = _levels(first.get("bs", []), "bs")
        ts_ns = max(asks_ns, bids_ns) or recv_ns
        return BookMessage(symbol, True, bids, asks, None, ts_ns, depth, version=1)
    asks, bids = [], []
    ts_ns = 0
    for payload in payloads:
        if not set(payload) <= {"a", "b", "c"}:
            raise WireError("schema", f"book update keys {sorted(payload)}")
        side_asks, asks_ns = _levels(payload.get("a", []), "a")
        side_bids, bids_ns = _levels(payload.get("b", []), "b")
        asks.extend(side_asks)
        bids.extend(side_bids)
        ts_ns = max(ts_ns, asks_ns, bids_ns)
    checksum_text = payloads[-1].get("c")
    if not isinstance(checksum_text, str) or not (
        checksum_text.isdigit() and checksum_text.isascii()
    ):
        raise WireError("schema", f"book update checksum {checksum_text!r}")
    checksum = int(checksum_text)
    return BookMessage(symbol, False, bids, asks, checksum, ts_ns or recv_ns, depth, version=1)


def trades_v1(payloads: list[Any], symbol: str, recv_ns: int) -> list[Trade]:
    """The trades of a v1 ``trade`` message; raises :class:`WireError`."""
    if len(payloads) != 1:
        raise WireError("schema", "trade message must hold one row list")
    trades = []
    for index, row in enumerate(_list(payloads[0], "trades")):
        row = _list(row, "trade", 6)
        time_text = _str(row[2], "trade time")
        side = _SIDES.get(row[3])
        if side is None:
            raise WireError("schema", f"trade side {row[3]!r}")
        # v1 trades carry no id: a synthetic one, unique within the stream, keeps them apart
        trade_id = str(row[6]) if len(row) > 6 else f"{time_text}:{index}"
        trades.append(
            Trade(
                EXCHANGE,
                symbol,
                trade_id,
                _dec(row[0], "price", allow_zero=False),
                _dec(row[1], "volume", allow_zero=False),
                side,
                seconds_text_ns(time_text),
                recv_ns,
            )
        )
    return trades


def _ticker(payloads: list[Any], symbol: str, recv_ns: int) -> Ticker:
    body = payloads[0] if len(payloads) == 1 else None
    if not isinstance(body, dict):
        raise WireError("schema", "ticker payload must be one object")
    ask = _list(body.get("a"), "a", 3)
    bid = _list(body.get("b"), "b", 3)
    last = _list(body.get("c"), "c", 1)
    volume = _list(body.get("v"), "v", 2)
    return Ticker(  # v1 tickers carry no time: the receive time stands in
        exchange=EXCHANGE,
        symbol=symbol,
        ts_ns=recv_ns,
        recv_ns=recv_ns,
        bid_price=_dec(bid[0], "bid"),
        bid_size=_dec(bid[2], "bid lot volume"),
        ask_price=_dec(ask[0], "ask"),
        ask_size=_dec(ask[2], "ask lot volume"),
        last_price=_dec(last[0], "last"),
        volume_24h=_dec(volume[1], "volume 24h"),
    )


def _ohlc(payloads: list[Any], symbol: str, interval: int) -> CandleUpdate:
    timeframe = INTERVAL_TIMEFRAMES.get(interval)
    if timeframe is None:
        raise WireError("unsupported_interval", f"ohlc interval {interval} minutes")
    row = _list(payloads[0] if len(payloads) == 1 else None, "ohlc", 9)
    end_ns = seconds_text_ns(_str(row[1], "ohlc end time"))
    length_ns = interval * 60_000_000_000
    count = row[8]
    if not isinstance(count, int) or isinstance(count, bool):
        raise WireError("schema", f"ohlc count {count!r}")
    return CandleUpdate(
        symbol=symbol,
        timeframe=timeframe,
        open_ns=end_ns - 1 - (end_ns - 1) % length_ns,  # the bucket ending at etime
        open=_dec(row[2], "open"),
        high=_dec(row[3], "high"),
        low=_dec(row[4], "low"),
        close=_dec(row[5], "close"),
        volume=_dec(row[7], "volume"),
        ts_ns=seconds_text_ns(_str(row[0], "ohlc time")),
        trade_count=count,
        vwap=_dec(row[6], "vwap"),
    )
