"""Per-exchange I/O limits: REST budgets and WebSocket session rules, as data.

The figures come from the exchanges' documentation (see docs/connectors.md and
/work/shared/reference/exchange_apis.md §5); every one can be overridden, which is how the tests
run with windows and lifetimes of a second.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class RestPolicy:
    limit: int  # request weight the exchange allows per window, per IP
    window_s: float  # the exchange's counting window
    safety: float = 0.9  # use only this share of the limit: headroom for clock skew and others
    weight_header: str | None = None  # response header reporting the weight used in the window
    timeout_s: float = 10.0
    max_retries: int = 5  # for timeouts, connection errors and 5xx
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    max_ban_wait_s: float = 900.0  # a longer 418 ban stops the run with RateLimitError
    throttle_wait_s: float | None = None  # pause after an in-band throttle (None: the venue's)

    @property
    def budget(self) -> int:
        """Weight tickvault lets itself spend per window."""
        return max(1, int(self.limit * self.safety))

    def with_(self, **changes: object) -> RestPolicy:
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class WsPolicy:
    max_streams_per_connection: int  # symbols x channels on one socket
    silence_timeout_s: float  # watchdog: no message for this long => reconnect and record a gap
    max_lifetime_s: float | None = None  # planned replacement (overlapping) after this long
    overlap_timeout_s: float = 10.0  # wait this long for the new socket's first message
    send_interval_s: float = 0.0  # spacing of our own messages (Binance: 5 per second)
    ping_interval_s: float | None = (
        20.0  # WebSocket ping frames; pongs to server pings are automatic
    )
    ping_timeout_s: float | None = 20.0
    app_ping_message: str | None = None  # application-level ping, for protocols that want one
    app_ping_interval_s: float = 30.0
    connect_timeout_s: float = 10.0
    reconnect_base_s: float = 0.5
    reconnect_cap_s: float = 30.0
    max_message_bytes: int = 16 * 1024 * 1024

    def with_(self, **changes: object) -> WsPolicy:
        return replace(self, **changes)  # type: ignore[arg-type]


REST_POLICIES: dict[str, RestPolicy] = {
    # 6000 weight / minute / IP, used weight reported on every response (read rateLimits of
    # exchangeInfo to confirm; it has changed before).
    "binance": RestPolicy(limit=6000, window_s=60.0, weight_header="x-mbx-used-weight-1m"),
    # public endpoints: 10 requests/s per IP (bursts of 15).
    "coinbase": RestPolicy(limit=10, window_s=1.0),
    # about 1 call/s per IP for public endpoints.
    "kraken": RestPolicy(limit=1, window_s=1.0, safety=1.0),
}

WS_POLICIES: dict[str, WsPolicy] = {
    # 1024 streams per connection, 24 h lifetime, server pings every 20 s, 5 messages/s inbound.
    "binance": WsPolicy(
        max_streams_per_connection=1024,
        silence_timeout_s=60.0,
        max_lifetime_s=23.5 * 3600,
        send_interval_s=0.25,
    ),
    # heartbeat channel keeps a healthy feed talking at least once a second.
    "coinbase": WsPolicy(
        max_streams_per_connection=300, silence_timeout_s=30.0, send_interval_s=0.02
    ),
    # heartbeat ~1/s when idle.
    "kraken": WsPolicy(max_streams_per_connection=300, silence_timeout_s=30.0, send_interval_s=0.1),
}

_DEFAULT_REST = RestPolicy(limit=10, window_s=1.0)
_DEFAULT_WS = WsPolicy(max_streams_per_connection=100, silence_timeout_s=30.0)


def rest_policy(exchange: str) -> RestPolicy:
    return REST_POLICIES.get(exchange, _DEFAULT_REST)


def ws_policy(exchange: str) -> WsPolicy:
    return WS_POLICIES.get(exchange, _DEFAULT_WS)
