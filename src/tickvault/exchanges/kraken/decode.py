"""Pure decoding of one Kraken WebSocket message (v2 objects or v1 arrays).

:func:`decode_message` turns raw text plus its receive time into a :class:`Decoded`:
finished events (trades, tickers), book messages and candle updates (which still need the
per-symbol state kept by :mod:`feed`), and decode errors. It never raises on bad input:
malformed JSON, an unknown channel, a wrong type, NaN or exponent numbers, an unknown pair
or a truncated frame each become a :class:`DecodeError` with a reason.

v2 (``wss://ws.kraken.com/v2``) is the live protocol; v1 is decoded too because the public
real recordings are v1. The version is told by the first character: ``[`` is a v1 data
array, an object with ``event`` is v1 control, anything else is v2.
"""

from __future__ import annotations

from tickvault.exchanges.kraken import decode_v1, decode_v2
from tickvault.exchanges.kraken.symbols import SymbolMap
from tickvault.exchanges.kraken.wire import Decoded

__all__ = ["Decoded", "decode_message"]


def decode_message(raw: bytes | str, recv_ns: int, symbols: SymbolMap) -> Decoded:
    """Decode one WebSocket message of either protocol version."""
    data = raw.encode() if isinstance(raw, str) else raw
    head = data.lstrip()[:1]
    if head == b"[":
        return decode_v1.decode_array(data, raw, recv_ns, symbols)
    if head == b"{" and b'"event"' in data and b'"channel"' not in data:
        return decode_v1.decode_event(data, raw, recv_ns)
    return decode_v2.decode(data, raw, recv_ns, symbols)
