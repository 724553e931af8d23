"""Every fault kind produces its documented effect; REST rate limits answer 429/418."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from sim_helpers import collect, drain, quick_config, recv_json

from tickvault.errors import UsageError
from tickvault.exchanges.sim import Fault, Simulator


async def _binance_stream(
    session: aiohttp.ClientSession, sim: Simulator, stream: str
) -> aiohttp.ClientWebSocketResponse:
    return await session.ws_connect(f"{sim.endpoints['binance'].ws_url}/ws/{stream}")


async def test_drop_and_duplicate_messages_break_sequences(
    live_sim: Simulator, session: aiohttp.ClientSession
) -> None:
    ws = await _binance_stream(session, live_sim, "btcusdt@depth@100ms")
    events = [await recv_json(ws)]
    live_sim.inject(Fault("binance", "drop_messages", count=1, channel="depth"))
    events += [await recv_json(ws) for _ in range(4)]
    await ws.close()
    gaps = [b["U"] - a["u"] - 1 for a, b in itertools.pairwise(events)]
    assert sum(1 for g in gaps if g > 0) == 1  # exactly one event (a range of ids) missing

    async with session.ws_connect(live_sim.endpoints["coinbase"].ws_url) as cb:
        await cb.send_json(
            {"type": "subscribe", "product_ids": ["BTC-USDT"], "channels": ["matches"]}
        )
        for _ in range(3):
            await recv_json(cb)
        live_sim.inject(
            {"exchange": "coinbase", "kind": "duplicate_messages", "count": 2, "channel": "matches"}
        )
        seqs: list[int] = []
        # Inject the drop only once both duplicates went out, so it cannot hit a duplicate.
        while live_sim.faults.applied[("coinbase", "duplicate_messages")] < 2 and len(seqs) < 50:
            seqs.append((await recv_json(cb))["sequence"])
        seqs += [(await recv_json(cb))["sequence"] for _ in range(4)]  # duplicates in flight
        live_sim.inject(
            {"exchange": "coinbase", "kind": "drop_messages", "count": 1, "channel": "matches"}
        )
        seqs += [(await recv_json(cb))["sequence"] for _ in range(7)]
    steps = [b - a for a, b in itertools.pairwise(seqs)]
    assert steps.count(0) == 2 and steps.count(2) == 1  # two repeats, one gap
    assert live_sim.faults.applied[("coinbase", "duplicate_messages")] == 2


async def test_advanced_drop_leaves_sequence_num_gap(
    live_sim: Simulator, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(live_sim.endpoints["coinbase"].ws_url) as ws:
        await ws.send_json(
            {"type": "subscribe", "product_ids": ["BTC-USDT"], "channel": "market_trades"}
        )
        nums = [(await recv_json(ws))["sequence_num"] for _ in range(2)]
        live_sim.inject(Fault("coinbase", "drop_messages", count=1, channel="market_trades"))
        nums += [(await recv_json(ws))["sequence_num"] for _ in range(4)]
    assert nums[-1] - nums[0] == len(nums)  # one number spent on the dropped message


async def test_bad_checksum_and_malformed_json(
    live_sim: Simulator, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(f"{live_sim.endpoints['kraken'].ws_url}/v2") as ws:
        await ws.send_json(
            {"method": "subscribe", "params": {"channel": "book", "symbol": ["BTC/USDT"]}}
        )
        for _ in range(3):  # status, ack, snapshot
            await recv_json(ws)
        live_sim.inject(Fault("kraken", "bad_checksum", count=1))
        live_sim.inject(Fault("kraken", "malformed_json", count=1, channel="book"))
        raw = [(await ws.receive(timeout=3)).data for _ in range(6)]
    broken = []
    for text in raw:
        try:
            json.loads(text)
        except ValueError:
            broken.append(text)
    assert len(broken) == 1
    assert live_sim.faults.applied[("kraken", "bad_checksum")] == 1

    base = live_sim.endpoints["binance"].rest_url
    live_sim.inject(Fault("binance", "malformed_json", count=1, scope="rest"))
    async with session.get(f"{base}/api/v3/exchangeInfo") as r:
        text = await r.text()
    with pytest.raises(ValueError):
        json.loads(text)
    async with session.get(f"{base}/api/v3/ping") as r:
        assert await r.json() == {}


async def test_wrong_checksum_is_detectable(session: aiohttp.ClientSession) -> None:
    async with Simulator(quick_config(exchanges=("kraken",))) as sim:
        sim.inject(Fault("kraken", "bad_checksum", count=1))
        async with session.ws_connect(f"{sim.endpoints['kraken'].ws_url}/v2") as ws:
            await ws.send_json(
                {"method": "subscribe", "params": {"channel": "book", "symbol": ["BTC/USDT"]}}
            )
            messages = [await recv_json(ws) for _ in range(3)]
        from test_sim_books import kraken_crc

        data = messages[2]["data"][0]
        book = {s: {lv["price"]: lv["qty"] for lv in data[s]} for s in ("bids", "asks")}
        assert kraken_crc(book) != data["checksum"]
        assert kraken_crc(book) == data["checksum"] ^ 0xFFFFFFFF


async def test_drop_connection_stall_and_bad_values(
    live_sim: Simulator, session: aiohttp.ClientSession
) -> None:
    ws = await _binance_stream(session, live_sim, "btcusdt@trade")
    await recv_json(ws)
    async with session.post(f"{live_sim.endpoints['binance'].rest_url}/_sim/faults",
                            json={"kind": "drop_connection", "symbol": "BTC-USDT"}) as r:  # fmt: skip
        assert r.status == 200
    with pytest.raises(AssertionError):  # the socket closes while the client reads
        while True:
            await recv_json(ws)
    assert ws.closed

    async with session.ws_connect(f"{live_sim.endpoints['kraken'].ws_url}/v2") as kr:
        await kr.send_json(
            {"method": "subscribe", "params": {"channel": "trade", "symbol": ["BTC/USDT"]}}
        )
        await recv_json(kr), await recv_json(kr)
        live_sim.inject(Fault("kraken", "stall", duration_s=1.6, symbol="BTC-USDT"))
        await drain(kr, 0.1)
        during = await collect(kr, 1.3)
        assert during and all(m == {"channel": "heartbeat"} for m in during)  # alive, but no data
        after = await recv_json(kr)
        assert after["channel"] == "trade"

    live_sim.inject(Fault("binance", "bad_values", count=1, mode="negative_price"))
    ws = await _binance_stream(session, live_sim, "btcusdt@trade")
    trades = [await recv_json(ws) for _ in range(5)]
    await ws.close()
    injected = [t for t in live_sim.truth_trades("binance", "BTC-USDT") if t["injected"]]
    assert len(injected) == 1 and Decimal(injected[0]["price"]) < 0
    # the connection may open after the bad trade went out; then REST history still shows it
    seen = [t for t in trades if Decimal(t["p"]) < 0]
    if not seen:
        async with session.get(
            f"{live_sim.endpoints['binance'].rest_url}/api/v3/trades?symbol=BTCUSDT&limit=1000"
        ) as r:
            seen = [t for t in await r.json() if Decimal(t["price"]) < 0]
    assert len(seen) == 1


async def test_rate_limits_429_then_418_with_retry_after(session: aiohttp.ClientSession) -> None:
    config = quick_config(binance_weight_limit=45, binance_429s_before_ban=2, binance_ban_s=7,
                          coinbase_burst=3, coinbase_rps=0.01)  # fmt: skip
    async with Simulator(config) as sim:
        base = sim.endpoints["binance"].rest_url
        statuses: list[tuple[int, Any, Any]] = []
        for _ in range(8):
            async with session.get(f"{base}/api/v3/exchangeInfo") as r:
                statuses.append((r.status, r.headers.get("Retry-After"), await r.json()))
            if r.status == 418:
                break
        codes = [s for s, _, _ in statuses]
        assert codes[:2] == [200, 200] and 429 in codes and codes[-1] == 418
        first_429 = statuses[codes.index(429)]
        assert 1 <= int(first_429[1]) <= 60 and first_429[2]["code"] == -1003
        assert int(statuses[-1][1]) == 7 and "banned until" in statuses[-1][2]["msg"]

        cb = sim.endpoints["coinbase"].rest_url
        cb_codes = []
        for _ in range(4):
            async with session.get(f"{cb}/products") as r:
                cb_codes.append((r.status, r.headers.get("Retry-After")))
        assert [c for c, _ in cb_codes] == [200, 200, 200, 429] and int(cb_codes[-1][1]) >= 1

        sim.inject(Fault("kraken", "rate_limit_429", count=1))
        async with session.get(f"{sim.endpoints['kraken'].rest_url}/0/public/Time") as r:
            assert r.status == 200 and (await r.json())["error"] == ["EGeneral:Too many requests"]


async def test_injected_418_slow_responses_and_validation(session: aiohttp.ClientSession) -> None:
    async with Simulator(quick_config(rate_limits=False)) as sim:
        base = sim.endpoints["binance"].rest_url
        sim.inject(Fault("binance", "ban_418", duration_s=0.5))
        async with session.get(f"{base}/api/v3/time") as r:
            assert r.status == 418 and r.headers["Retry-After"] == "1"
        await asyncio.sleep(0.55)
        async with session.get(f"{base}/api/v3/time") as r:
            assert r.status == 200
        sim.inject(Fault("binance", "rate_limit_429", count=1, retry_after_s=3))
        async with session.get(f"{base}/api/v3/time") as r:
            assert r.status == 429 and r.headers["Retry-After"] == "3"
        sim.inject(Fault("coinbase", "slow_responses", count=1, delay_s=0.3))
        started = time.monotonic()
        async with session.get(f"{sim.endpoints['coinbase'].rest_url}/time") as r:
            assert r.status == 200
        assert time.monotonic() - started >= 0.3
        with pytest.raises(UsageError):
            sim.inject(Fault("coinbase", "bad_checksum"))
        async with session.post(f"{base}/_sim/faults", json={"kind": "nope"}) as r:
            assert r.status == 400 and "unknown fault kind" in (await r.json())["error"]
        async with session.get(f"{base}/_sim/faults") as r:
            body = await r.json()
        assert body["applied"]["binance:ban_418"] == 1 and "stall" in body["kinds"]


async def test_delete_faults_withdraws_queued_bad_values(
    live_sim: Simulator, session: aiohttp.ClientSession
) -> None:
    before = len(live_sim.truth_trades("binance", "BTC-USDT"))
    live_sim.inject(Fault("binance", "bad_values", count=100_000, mode="negative_price"))
    async with session.delete(f"{live_sim.endpoints['binance'].rest_url}/_sim/faults") as r:
        assert r.status == 200
    ws = await _binance_stream(session, live_sim, "btcusdt@trade")
    for _ in range(5):
        await recv_json(ws)
    await ws.close()
    later = live_sim.truth_trades("binance", "BTC-USDT")[before:]
    assert len(later) >= 5
    # at most the trades generated between inject and delete carry the fault
    assert sum(1 for t in later if t["injected"]) < len(later)
    assert not any(t["injected"] for t in later[-5:])
