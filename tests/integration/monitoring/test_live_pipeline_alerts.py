"""The whole alerting chain on real processes: ``tickvault sim`` → ``tickvault run`` (real
PostgreSQL/Redis, /metrics) → Prometheus (Debian package, the project's rule files) →
Alertmanager (the project's routing) → a webhook in this test.

One stream's quality is degraded (bad trade prices from the simulator) and another market is
stalled; DataQualityLow, DataStale and FeedSilent must arrive with the stream's labels, and
arrive again as resolved once the simulator is healthy. What the test changes in the
project's files, and nothing else (docs/operations.md, "The live alert test"):

* rules: every ``for:`` → 1 s; DataStale's and FeedSilent's ``> 300`` → ``> STALE_AFTER_S``;
* Alertmanager: webhook URLs → this test, ``group_wait`` 0 s, ``group_interval`` 1 s;
* Prometheus scrapes and evaluates every second;
* tickvault: quality scores every second over a QUALITY_WINDOW_S window (``[quality]``).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from live_kit import (
    STALENESS_RULES,
    Spawn,
    Webhook,
    alertmanager_config,
    binary,
    poll,
    prometheus_config,
    short_rules,
    wait_for,
)

from tickvault.storage.embedded import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

TICKVAULT = str(Path(sys.executable).with_name("tickvault"))
SYMBOLS = ("BTC-USDT", "ETH-USDT", "SOL-USDT")  # simulated on both exchanges
SIM_RATE = 600  # events/s over 6 markets: ~100 per market, ~30 trades/s
BAD_TRADES_PER_S = 40  # injected while degraded: most trades of the market, not all
DEGRADED = ("binance", "BTC-USDT", "trades")  # (exchange, symbol, channel)
HEALTHY = ("binance", "ETH-USDT", "trades")  # the control
STALLED = ("kraken", "SOL-USDT")  # every channel of this market goes stale
STALE_AFTER_S = 6  # replaces the rules' 300 s (healthy streams are stored within ~0.5 s)
QUALITY_WINDOW_S = 8  # replaces the default 300 s window of the quality scores
BUDGET_S = 60  # the whole test, from starting the processes to the last resolved alert


def run_config(
    tmp: Path,
    database_url: str,
    redis_url: str,
    metrics_port: int,
    endpoints: dict[str, tuple[str, str]],
) -> str:
    """tickvault.toml: the simulator's endpoints, the test's storage, every channel that goes
    stale when a market stalls. Binance collects two markets (one degraded, one control),
    Kraken one (stalled): no symbol is on two exchanges, so no cross-venue price check."""
    q = json.dumps  # a JSON string is a valid TOML basic string
    lines = [
        f"database_url = {q(database_url)}",
        f"redis_url = {q(redis_url)}",
        f"data_dir = {q(str(tmp / 'data'))}",
        f"metrics_port = {metrics_port}",
        'timeframes = ["1m"]',
        "[quality]",
        f"window_s = {QUALITY_WINDOW_S}",
        "slot_s = 1",
    ]
    for exchange, (rest_url, ws_url) in endpoints.items():
        lines += [f"[endpoints.{exchange}]", f"rest_url = {q(rest_url)}", f"ws_url = {q(ws_url)}"]
    feeds = {"binance": [DEGRADED[1], HEALTHY[1]], "kraken": [STALLED[1]]}
    for exchange, symbols in feeds.items():
        lines += [
            "[[feeds]]",
            f"exchange = {q(exchange)}",
            f"symbols = {q(symbols)}",
            'channels = ["trades", "book"]',
        ]
    return "\n".join(lines) + "\n"


def parse_endpoints(text: str) -> dict[str, tuple[str, str]]:
    """(REST, WS) base URL per exchange, from what ``tickvault sim`` printed so far."""
    pattern = r"TICKVAULT_ENDPOINTS__([A-Z]+)__(REST|WS)_URL=(\S+)"
    urls = {(ex.lower(), kind): url for ex, kind, url in re.findall(pattern, text)}
    return {
        ex: (urls[(ex, "REST")], urls[(ex, "WS")])
        for ex in ("binance", "kraken")
        if (ex, "REST") in urls and (ex, "WS") in urls
    }


def stream_key(alert: dict[str, Any]) -> tuple[str, str, str, str]:
    labels = alert["labels"]
    return (labels["alertname"], labels.get("exchange", ""), labels.get("symbol", ""),
            labels.get("channel", ""))  # fmt: skip


# What must arrive, firing and then resolved: (alertname, exchange, symbol, channel).
EXPECTED = {
    ("DataQualityLow", *DEGRADED),
    *(
        (name, *STALLED, channel)
        for name in ("DataStale", "FeedSilent")
        for channel in ("trades", "book")
    ),
}


async def alerts_arrive(
    webhook: Webhook, status: str, since: int, timeout_s: float, run_log: Path
) -> None:
    """Wait until every EXPECTED alert arrived with ``status`` in ``webhook.alerts[since:]``."""

    def missing() -> set[tuple[str, str, str, str]]:
        arrived = {stream_key(a) for a in webhook.alerts[since:] if a["status"] == status}
        return EXPECTED - arrived

    try:
        await poll(lambda: not missing(), timeout_s, f"{status} alerts")
    except AssertionError:
        seen = sorted({(*stream_key(a), a["status"]) for a in webhook.alerts})
        log = run_log.read_text()[-2000:]
        raise AssertionError(
            f"never {status}: {sorted(missing())}; received: {seen}; tickvault run log:\n{log}"
        ) from None


@pytest.fixture
async def webhook() -> AsyncIterator[Webhook]:
    hook = Webhook()
    await hook.start()
    yield hook
    await hook.stop()


@pytest.mark.timeout(90)
async def test_quality_and_staleness_alerts_fire_and_resolve(
    database_url: str, redis_url: str, tmp_path: Path, spawn: Spawn, webhook: Webhook
) -> None:
    # (storage fixtures first: they are torn down after `spawn` has stopped tickvault)
    prometheus, alertmanager = binary("prometheus"), binary("prometheus-alertmanager")
    deadline_s = time.monotonic() + BUDGET_S

    def left(phase_s: float) -> float:
        """A phase's timeout: its own cap, within what is left of the test's budget."""
        return max(1.0, min(phase_s, deadline_s - time.monotonic()))

    metrics_port, prom_port, am_port = free_port(), free_port(), free_port()
    spawn(TICKVAULT, "sim", "--port-base", "0", "--exchanges", "binance,kraken",
          "--symbols", ",".join(SYMBOLS), "--rate", str(SIM_RATE), "--history-s", "60",
          "--no-rate-limits", env={"PYTHONUNBUFFERED": "1"}, log_name="sim.log")  # fmt: skip
    am_yml = tmp_path / "alertmanager.yml"
    am_yml.write_text(yaml.safe_dump(alertmanager_config(webhook.url)))
    short_rules(tmp_path / "rules", staleness_s=STALE_AFTER_S)
    prom_yml = tmp_path / "prometheus.yml"
    prom_yml.write_text(
        yaml.safe_dump(prometheus_config(tmp_path / "rules", am_port, metrics_port))
    )
    spawn(alertmanager, f"--config.file={am_yml}", f"--storage.path={tmp_path / 'am'}",
          f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address=")  # fmt: skip
    spawn(prometheus, f"--config.file={prom_yml}", f"--storage.tsdb.path={tmp_path / 'prom'}",
          f"--web.listen-address=127.0.0.1:{prom_port}")  # fmt: skip

    sim_log = tmp_path / "sim.log"
    endpoints = await poll(
        lambda: len(found := parse_endpoints(sim_log.read_text())) == 2 and found,
        left(15),
        "the simulator's endpoints",
    )
    config = tmp_path / "tickvault.toml"
    config.write_text(run_config(tmp_path, database_url, redis_url, metrics_port, endpoints))
    run = spawn(TICKVAULT, "run", "--config", str(config), "--quiet", "--quality-interval", "1",
                log_name="run.log")  # fmt: skip
    control = f"{endpoints['binance'][0]}/_sim/faults"  # every simulator port serves /_sim/
    prom = f"http://127.0.0.1:{prom_port}"
    run_log = tmp_path / "run.log"

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:

        async def series(expr: str) -> dict[tuple[str, str, str], float]:
            """(exchange, symbol, channel) -> value of ``expr`` in Prometheus, now."""
            if run.poll() is not None:
                log = run_log.read_text()[-3000:]
                raise AssertionError(f"tickvault run exited with {run.returncode}:\n{log}")
            try:
                async with session.get(f"{prom}/api/v1/query", params={"query": expr}) as resp:
                    body = await resp.json()
            except (aiohttp.ClientError, TimeoutError, ValueError):
                return {}
            return {
                (r["metric"]["exchange"], r["metric"].get("symbol", ""), r["metric"]["channel"]):
                    float(r["value"][1])
                for r in body.get("data", {}).get("result", [])
            }  # fmt: skip

        async def fault(method: str, body: dict[str, Any] | None = None) -> None:
            async with session.request(method, control, json=body) as resp:
                assert resp.status == 200, await resp.text()

        # The chain works before anything breaks: Prometheus has every watched stream,
        # healthy. (Scores come from the first second of data on.)
        async def healthy() -> bool:
            scores = await series("tickvault_quality_score")
            stored = await series('tickvault_stream_freshness_seconds{stage="stored"}')
            watched = [DEGRADED, HEALTHY, (*STALLED, "trades"), (*STALLED, "book")]
            return all(scores.get(k, 0) >= 0.8 for k in watched[:3]) and all(
                stored.get(k, 1e9) < STALE_AFTER_S for k in watched
            )

        await poll(healthy, left(30), "healthy streams in Prometheus")
        await wait_for(session, f"http://127.0.0.1:{am_port}/-/ready", lambda _: True, left(10))

        # Break: most BTC-USDT trades on Binance carry a negative price from now on, and the
        # Kraken SOL-USDT market produces nothing (connections and heartbeats go on).
        stop_bad = asyncio.Event()

        async def bad_trades() -> None:
            loop = asyncio.get_running_loop()
            last_s = loop.time()
            while not stop_bad.is_set():
                await asyncio.sleep(0.25)
                now_s = loop.time()
                # per elapsed time, so a slow event loop does not dilute the degradation
                count = min(20, max(1, round(BAD_TRADES_PER_S * (now_s - last_s))))
                last_s = now_s
                await fault("POST", {"exchange": "binance", "kind": "bad_values",
                                     "symbol": DEGRADED[1], "mode": "negative_price",
                                     "count": count})  # fmt: skip

        broken_at = len(webhook.alerts)
        await fault("POST", {"exchange": "kraken", "kind": "stall",
                             "symbol": STALLED[1], "duration_s": 300})  # fmt: skip
        degrading = asyncio.create_task(bad_trades())
        try:
            await alerts_arrive(webhook, "firing", broken_at, left(30), run_log)
            firing_at = len(webhook.alerts)  # resolutions count from here on
        finally:
            stop_bad.set()
            await degrading
        # Only the broken streams alerted, with the project's labels and annotations.
        firing = [a for a in webhook.alerts if a["status"] == "firing"]
        quality = {stream_key(a) for a in firing if stream_key(a)[0] == "DataQualityLow"}
        assert quality == {k for k in EXPECTED if k[0] == "DataQualityLow"}, quality
        stale = {stream_key(a)[1:3] for a in firing if stream_key(a)[0] in STALENESS_RULES}
        assert stale == {STALLED}, stale
        low = webhook.matching("DataQualityLow", "firing", exchange="binance", symbol="BTC-USDT")[0]
        assert low["labels"]["severity"] == "warning"
        summary = re.fullmatch(
            r"quality (\d\.\d\d) on binance BTC-USDT trades", low["annotations"]["summary"]
        )
        assert summary and float(summary.group(1)) <= 0.8, low["annotations"]
        stored = webhook.matching("DataStale", "firing", exchange="kraken", channel="trades")[0]
        assert "no data stored for kraken SOL-USDT trades" in stored["annotations"]["summary"]
        assert stored["annotations"]["runbook"] == "docs/operations.md#datastale"

        # Recover: no more bad trades (the last ones drain within a generator tick or two),
        # the stall is lifted; every alert arrives resolved.
        await fault("DELETE")
        await alerts_arrive(webhook, "resolved", firing_at, left(30), run_log)
        scores = await series("tickvault_quality_score")
        assert scores[DEGRADED] >= 0.8, scores
