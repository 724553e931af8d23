"""The venue's own latency: exchange timestamp → received by an idle client (its own process).

    python -m bench._venue_probe <binance ws base url> <seconds> [symbol]

Subscribes to one Binance trade stream of the simulator and does nothing but note, per trade,
how long after its exchange time (``T``, milliseconds) it arrived; prints one JSON line with
the count, p50 and p99 in ms. What the runner sees beyond this is its own doing (socket backlog,
loop stalls); this part is the venue's publish cadence and send, which a real exchange has too.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import numpy as np
import websockets


async def probe(base_url: str, seconds: float, symbol: str) -> dict[str, float]:
    url = f"{base_url.rstrip('/')}/stream?streams={symbol.replace('-', '').lower()}@trade"
    samples: list[int] = []
    async with websockets.connect(url, max_size=1 << 22, compression=None, open_timeout=30) as ws:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                raw = await asyncio.wait_for(ws.recv(), left)
            except TimeoutError:
                break
            now_ns = time.time_ns()
            data = json.loads(raw).get("data", {})
            if data.get("e") == "trade":
                samples.append(now_ns - int(data["T"]) * 1_000_000)
    if not samples:
        return {"trades": 0}
    p50, p99 = np.percentile(np.array(samples, dtype=np.int64), [50, 99]) / 1e6
    return {"trades": len(samples), "p50_ms": float(p50), "p99_ms": float(p99)}


def main() -> None:
    base_url, seconds = sys.argv[1], float(sys.argv[2])
    symbol = sys.argv[3] if len(sys.argv) > 3 else "BTC-USDT"
    try:
        result: dict[str, object] = dict(asyncio.run(probe(base_url, seconds, symbol)))
    except (OSError, TimeoutError, websockets.WebSocketException) as exc:
        result = {"error": repr(exc)}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
