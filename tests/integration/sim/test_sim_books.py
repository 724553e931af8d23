"""Live books: Binance U/u sync, Kraken CRC32 checksums, Coinbase sequences; each local book,
rebuilt by a plain client following the venue's documented rules, equals the simulator's truth."""

from __future__ import annotations

import asyncio
import zlib
from decimal import Decimal
from typing import Any

import aiohttp
from sim_helpers import as_book, drain, pause, quick_config, recv_json

from tickvault.exchanges.sim import Simulator


def kraken_crc(book: dict[str, dict[Decimal, Decimal]]) -> int:
    """The documented recipe, from the wire text kept by a Decimal parser."""

    def piece(value: Decimal) -> str:
        return str(value).replace(".", "").lstrip("0")

    asks = sorted(book["asks"].items())[:10]
    bids = sorted(book["bids"].items(), reverse=True)[:10]
    return zlib.crc32("".join(piece(p) + piece(q) for p, q in asks + bids).encode())


async def test_binance_depth_diff_follows_snapshot_rules(
    live_sim: Simulator, session: aiohttp.ClientSession
) -> None:
    ep = live_sim.endpoints["binance"]
    async with session.ws_connect(f"{ep.ws_url}/ws/btcusdt@depth@100ms") as ws:
        buffered = [await recv_json(ws)]
        async with session.get(f"{ep.rest_url}/api/v3/depth?symbol=BTCUSDT&limit=5000") as r:
            snapshot = await r.json()
        await asyncio.sleep(0.5)
        await pause(live_sim)
        buffered += await drain(ws)
    last_id = snapshot["lastUpdateId"]
    assert buffered[0]["U"] <= last_id + 1  # socket opened first, so the snapshot is not older
    events = [e for e in buffered if e["u"] > last_id]
    assert len(events) >= 3
    assert events[0]["U"] <= last_id + 1 <= events[0]["u"]
    book = {"bids": as_book(snapshot["bids"]), "asks": as_book(snapshot["asks"])}
    previous_u = last_id
    for event in events:
        assert event["e"] == "depthUpdate" and event["s"] == "BTCUSDT"
        assert event["U"] <= previous_u + 1, "gap in the diff stream"
        for side, key in (("bids", "b"), ("asks", "a")):
            for price, size in event[key]:
                if Decimal(size) == 0:
                    book[side].pop(Decimal(price), None)
                else:
                    book[side][Decimal(price)] = Decimal(size)
        previous_u = event["u"]
    truth = live_sim.truth_book("binance", "BTC-USDT")
    assert previous_u == truth["update_id"]
    assert book == {"bids": as_book(truth["bids"]), "asks": as_book(truth["asks"])}


async def test_kraken_v2_checksums_and_depth_truncation(
    live_sim: Simulator, session: aiohttp.ClientSession
) -> None:
    ep = live_sim.endpoints["kraken"]
    async with session.ws_connect(f"{ep.ws_url}/v2") as ws:
        assert (await recv_json(ws))["channel"] == "status"
        await ws.send_json({"method": "subscribe", "params": {"channel": "book", "symbol": ["BTC/USDT"], "depth": 10}, "req_id": 5})  # fmt: skip
        ack = await recv_json(ws)
        assert ack["success"] is True and ack["req_id"] == 5 and ack["result"]["depth"] == 10
        await ws.send_json({"method": "ping", "req_id": 6})
        messages = [await recv_json(ws)]
        await asyncio.sleep(0.7)
        await pause(live_sim)
        messages += await drain(ws)
    assert any(m.get("method") == "pong" and m["req_id"] == 6 for m in messages)
    books = [m for m in messages if m.get("channel") == "book"]
    assert books[0]["type"] == "snapshot" and len(books) > 5
    book: dict[str, dict[Decimal, Decimal]] = {"bids": {}, "asks": {}}
    for message in books:
        data = message["data"][0]
        for side in ("bids", "asks"):
            for level in data[side]:
                if level["qty"] == 0:
                    book[side].pop(level["price"], None)
                else:
                    book[side][level["price"]] = level["qty"]
            keep = sorted(book[side], reverse=side == "bids")[:10]  # truncate to depth
            book[side] = {p: book[side][p] for p in keep}
        assert kraken_crc(book) == data["checksum"]
    truth = live_sim.truth_book("kraken", "BTC-USDT", depth=10)
    assert book == {"bids": as_book(truth["bids"]), "asks": as_book(truth["asks"])}


async def test_kraken_formatter_reproduces_documented_checksum(
    session: aiohttp.ClientSession,
) -> None:
    asks = "45285.2/0.00100000 45286.4/1.54571953 45286.6/1.54571109 45289.6/1.54560911 45290.2/0.15890660 45291.8/1.54553491 45294.7/0.04454749 45296.1/0.35380000 45297.5/0.09945542 45299.5/0.18772827"  # fmt: skip
    bids = "45283.5/0.10000000 45283.4/1.54582015 45282.1/0.10000000 45281.0/0.10000000 45280.3/1.54592586 45279.0/0.07990000 45277.6/0.03310103 45277.5/0.30000000 45277.3/1.54602737 45276.6/0.15445238"  # fmt: skip

    def levels(text: str) -> list[tuple[int, int]]:
        out = []
        for pair in text.split():
            price, qty = pair.split("/")
            out.append((int(price.replace(".", "")), int(qty.replace(".", ""))))
        return out

    async with Simulator(quick_config(symbols=["BTC-USD"], exchanges=("kraken",))) as sim:
        sim.market("kraken", "BTC-USD").set_book(levels(bids), levels(asks))
        async with session.ws_connect(f"{sim.endpoints['kraken'].ws_url}/v2") as ws:
            await recv_json(ws)
            await ws.send_json(
                {"method": "subscribe", "params": {"channel": "book", "symbol": ["BTC/USD"]}}
            )
            await recv_json(ws)
            raw = (await ws.receive(timeout=3)).data
    assert '{"price":45285.2,"qty":0.00100000}' in raw
    import json

    data = json.loads(raw, parse_float=Decimal)["data"][0]
    assert data["checksum"] == 3310070434
    book = {s: {lv["price"]: lv["qty"] for lv in data[s]} for s in ("bids", "asks")}
    assert kraken_crc(book) == 3310070434


def _apply_changes(book: dict[str, dict[Decimal, Decimal]], changes: list[Any]) -> None:
    for side, price, size in changes:
        levels = book["bids" if side in ("buy", "bid") else "asks"]
        if Decimal(size) == 0:
            levels.pop(Decimal(price), None)
        else:
            levels[Decimal(price)] = Decimal(size)


async def test_coinbase_exchange_sequences_and_level2_batch(
    live_sim: Simulator, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(live_sim.endpoints["coinbase"].ws_url) as ws:
        await ws.send_json({"type": "subscribe", "product_ids": ["BTC-USDT"],
                            "channels": ["matches", "level2_batch", {"name": "ticker", "product_ids": ["BTC-USDT"]}]})  # fmt: skip
        first = await recv_json(ws)
        assert first["type"] == "subscriptions"
        await asyncio.sleep(0.6)
        await pause(live_sim)
        messages = await drain(ws)
    by_type: dict[str, list[Any]] = {}
    for m in messages:
        by_type.setdefault(m["type"], []).append(m)
    assert by_type["last_match"] and len(by_type["match"]) > 10
    for kind in ("match", "ticker"):
        sequences = [m["sequence"] for m in by_type[kind]]
        assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))
    assert by_type["match"][0]["sequence"] == by_type["last_match"][0]["sequence"] + 1
    ids = [int(m["trade_id"]) for m in by_type["match"]]
    truth = {t["trade_id"]: t for t in live_sim.truth_trades("coinbase", "BTC-USDT")}
    for m in by_type["match"]:
        t = truth[str(m["trade_id"])]
        assert (Decimal(m["price"]), Decimal(m["size"])) == (
            Decimal(t["price"]),
            Decimal(t["size"]),
        )
    assert ids == sorted(ids)
    snapshot = by_type["snapshot"][0]
    book = {"bids": as_book(snapshot["bids"]), "asks": as_book(snapshot["asks"])}
    for update in by_type["l2update"]:
        _apply_changes(book, update["changes"])
    truth_book = live_sim.truth_book("coinbase", "BTC-USDT")
    assert book == {"bids": as_book(truth_book["bids"]), "asks": as_book(truth_book["asks"])}


async def test_coinbase_advanced_sequence_num_and_l2_data(
    live_sim: Simulator, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(live_sim.endpoints["coinbase"].ws_url) as ws:
        for channel in ("level2", "market_trades", "heartbeats"):
            await ws.send_json(
                {"type": "subscribe", "product_ids": ["BTC-USDT"], "channel": channel}
            )
        await asyncio.sleep(1.1)
        await pause(live_sim)
        messages = await drain(ws)
    assert [m["sequence_num"] for m in messages] == list(range(len(messages)))
    channels = {m["channel"] for m in messages}
    assert {"subscriptions", "l2_data", "market_trades", "heartbeats"} <= channels
    book: dict[str, dict[Decimal, Decimal]] = {"bids": {}, "asks": {}}
    for m in messages:
        if m["channel"] == "l2_data":
            for event in m["events"]:
                _apply_changes(
                    book,
                    [(u["side"], u["price_level"], u["new_quantity"]) for u in event["updates"]],
                )
    truth_book = live_sim.truth_book("coinbase", "BTC-USDT")
    assert book == {"bids": as_book(truth_book["bids"]), "asks": as_book(truth_book["asks"])}
