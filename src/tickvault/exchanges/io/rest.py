"""The REST client: sends :class:`RestRequest` data through the exchange's shared budget.

Order of business for every request: wait for the budget (and any pause: a 429's
``Retry-After``, a 418 ban), send, read the weight the exchange reports, then

* 2xx: capture the body (optional) and return it;
* 429 (or a throttle answer inside a 200 body, Kraken's ``EGeneral:Too many requests``): pause
  the whole exchange for ``Retry-After`` (shared with other processes), try again;
* 418: the IP is banned: pause until the ban ends, or raise :class:`RateLimitError` when the ban
  is longer than ``max_ban_wait_s`` (bans grow from minutes to days for repeat offenders);
* 5xx, timeouts, connection errors: retry with jittered exponential backoff, up to
  ``max_retries`` (``Retry-After`` honoured when longer);
* other 4xx: a request the exchange will never accept: :class:`ExchangeError` at once.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from tickvault.errors import ExchangeError, RateLimitError
from tickvault.exchanges.base import RestRequest
from tickvault.exchanges.capture import CaptureRecord, CaptureWriter
from tickvault.exchanges.io.backoff import Backoff
from tickvault.exchanges.io.counters import IoCounters, bump, counters_for
from tickvault.exchanges.io.limits import Throttle, in_band_throttle
from tickvault.exchanges.io.policy import RestPolicy
from tickvault.exchanges.io.ratelimit import RateBudget


@dataclass(frozen=True, slots=True)
class RestResponse:
    url: str
    status: int
    text: str
    recv_ns: int


def parse_retry_after(value: str | None, now_s: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds or an HTTP date); None if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = datetime.fromtimestamp(now_s if now_s is not None else time.time(), UTC)
    return max(0.0, (when - now).total_seconds())


class RestClient:
    """HTTP GETs against one exchange, within its budget. Use as an async context manager."""

    def __init__(
        self,
        exchange: str,
        base_url: str,
        budget: RateBudget,
        policy: RestPolicy,
        *,
        counters: IoCounters | None = None,
        capture: CaptureWriter | None = None,
        http: httpx.AsyncClient | None = None,
        rng: random.Random | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        self.exchange = exchange
        self.base_url = base_url.rstrip("/")
        self.budget = budget
        self.policy = policy
        self.counters = counters if counters is not None else counters_for(exchange)
        self.capture = capture
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=policy.timeout_s, follow_redirects=True)
        self._rng = rng
        self._throttle = throttle if throttle is not None else in_band_throttle(exchange)
        self.counters.weight_limit = policy.limit

    def apply_limit(self, limit: int, window_s: float) -> None:
        """The exchange announced its limit: budget ``limit × safety`` per ``window_s`` from now."""
        self.policy = self.policy.with_(limit=limit, window_s=window_s)
        self.budget.set_limit(self.policy.budget, window_s)
        self.counters.weight_limit = limit

    async def __aenter__(self) -> RestClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def get(self, request: RestRequest) -> RestResponse:
        """The response body of a successful call; raises ExchangeError / RateLimitError."""
        url = f"{self.base_url}/{request.path.lstrip('/')}"
        backoff = Backoff(self.policy.backoff_base_s, self.policy.backoff_cap_s, rng=self._rng)
        failures = 0
        while True:
            # a budget refuses while paused: a ban longer than max_ban_wait_s raises there,
            # also one that begins while this request waits
            await self.budget.acquire(request.weight, self.counters, self._check_ban)
            self.counters.rest_requests += 1
            problem: str
            retry_after: float | None = None
            try:
                response = await self._http.get(
                    url, params=request.params, timeout=self.policy.timeout_s
                )
            except httpx.TimeoutException:
                self.counters.rest_timeouts += 1
                problem = f"timed out after {self.policy.timeout_s:g} s"
            except httpx.TransportError as exc:
                problem = f"connection failed ({type(exc).__name__}: {exc})"
            else:
                recv_ns = time.time_ns()
                await self._observe_weight(response)
                status = response.status_code
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                if status < 300:
                    throttled_s = self._throttle(response.text) if self._throttle else None
                    if throttled_s is None:
                        bump(self.counters.rest_status, status)
                        return self._success(response, recv_ns)
                    bump(self.counters.rest_status, 429)  # a 429 in all but the status line
                    self.counters.in_band_limited += 1
                    if self.policy.throttle_wait_s is not None:
                        throttled_s = self.policy.throttle_wait_s
                    await self._rate_limited(429, throttled_s, backoff)
                    continue
                bump(self.counters.rest_status, status)
                if status in (418, 429):
                    await self._rate_limited(status, retry_after, backoff)
                    continue
                if status < 500:
                    raise ExchangeError(
                        f"{self.exchange}: HTTP {status} on {request.path}: {response.text[:300]}"
                    )
                self.counters.rest_server_errors += 1
                problem = f"HTTP {status}"
            failures += 1
            if failures > self.policy.max_retries:
                raise ExchangeError(
                    f"{self.exchange}: {request.path} failed {failures} times, last: {problem}"
                )
            self.counters.rest_retries += 1
            delay = max(backoff.next_delay(), retry_after or 0.0)
            await asyncio.sleep(delay)

    def _success(self, response: httpx.Response, recv_ns: int) -> RestResponse:
        text = response.text
        self.counters.rest_bytes += len(response.content)
        url = str(response.url)
        if self.capture is not None:
            self.capture.write(CaptureRecord(recv_ns, self.exchange, "rest", url, text))
            self.counters.captured += 1
        return RestResponse(url=url, status=response.status_code, text=text, recv_ns=recv_ns)

    async def _observe_weight(self, response: httpx.Response) -> None:
        header = self.policy.weight_header
        if header is None:
            return
        value = response.headers.get(header)
        if value is None or not value.strip().isdigit():
            return
        used = int(value)
        self.counters.weight_used = used
        # Compared as is against our (smaller) budget: the exchange's count includes traffic we
        # cannot see, and the headroom stays headroom.
        await self.budget.observe_used(used)

    async def _rate_limited(self, status: int, retry_after: float | None, backoff: Backoff) -> None:
        wait_s = retry_after if retry_after is not None else backoff.next_delay() + 1.0
        if status == 418:
            self.counters.bans += 1
            await self.budget.pause(wait_s)
            if wait_s > self.policy.max_ban_wait_s:
                raise RateLimitError(
                    f"{self.exchange}: IP banned for {wait_s:.0f} s (HTTP 418); "
                    "requests to this exchange stop until the ban ends",
                    retry_after_s=wait_s,
                    banned=True,
                )
        else:
            self.counters.rate_limited += 1
            await self.budget.pause(wait_s)

    async def _check_ban(self) -> None:
        paused_s = await self.budget.paused_for()
        if paused_s > self.policy.max_ban_wait_s:
            raise RateLimitError(
                f"{self.exchange}: requests paused for another {paused_s:.0f} s (rate limit ban)",
                retry_after_s=paused_s,
                banned=True,
            )
