"""Batched WebSocket writes: messages of every frame-length class, pushed together, arrive
whole and in order at a real client (aiohttp), between aiohttp's own control frames."""

from __future__ import annotations

import asyncio

import aiohttp
from sim_helpers import recv_json

from tickvault.exchanges.sim import Simulator
from tickvault.exchanges.sim.hub import text_frames


def test_frame_headers_follow_rfc6455_length_classes() -> None:
    for size, header in ((0, b"\x81\x00"), (125, b"\x81\x7d"), (126, b"\x81\x7e\x00\x7e"),
                         (65535, b"\x81\x7e\xff\xff"),
                         (65536, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00")):  # fmt: skip
        frame = text_frames(["x" * size])
        assert frame == header + b"x" * size
    assert text_frames(["é", "ab"]) == b"\x81\x02\xc3\xa9\x81\x02ab"


async def test_one_batch_of_mixed_sizes_arrives_whole_and_in_order(
    live_sim: Simulator, session: aiohttp.ClientSession
) -> None:
    live_sim.rate = 0.0
    ws = await session.ws_connect(f"{live_sim.endpoints['kraken'].ws_url}/v2", max_msg_size=0)
    status = await recv_json(ws)
    assert status["channel"] == "status"
    (client,) = live_sim.venues["kraken"].clients
    sizes = [1, 125, 126, 4000, 65535, 65536, 300_000, 7]
    messages = [f'"{"é" * 3}{"x" * (n - 8)}"' if n > 8 else "7" for n in sizes]
    client.push_many(messages)
    await ws.ping()  # a control frame of aiohttp's between two batches
    client.push("[1]")
    for expected in [*messages, "[1]"]:
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.TEXT
        assert msg.data == expected
    assert client.sent == len(messages) + 2  # with the status message
    await ws.close()
    await asyncio.sleep(0)
